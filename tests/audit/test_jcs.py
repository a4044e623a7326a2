import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit import RecordError, canonicalize
from gateway.audit.jcs import _ENCODER, _serialize, parse_json, serialize_number

from .conftest import VECTORS

JCS = VECTORS / "jcs"


def _names() -> list[str]:
    # A missing vector folder must fail the suite, not shrink it to nothing.
    names = sorted(path.stem for path in (JCS / "input").glob("*.json"))
    return names or ["<no vectors found>"]


@pytest.mark.parametrize("name", _names())
def test_rfc8785_vector(name: str) -> None:
    source = (JCS / "input" / f"{name}.json").read_bytes()
    expected = (JCS / "output" / f"{name}.json").read_bytes()
    assert expected == canonicalize(json.loads(source))


@pytest.mark.parametrize("name", _names())
def test_rfc8785_vector_hex_form_agrees(name: str) -> None:
    source = (JCS / "input" / f"{name}.json").read_bytes()
    hex_text = (JCS / "outhex" / f"{name}.txt").read_text()
    assert bytes.fromhex("".join(hex_text.split())) == canonicalize(json.loads(source))


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (0.000001, "0.000001"),
        (0.0000001, "1e-7"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (9007199254740992.0, "9007199254740992"),
        (333333333.33333329, "333333333.3333333"),
        (4.35, "4.35"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_numbers_serialise_as_ecmascript_does(number: float, expected: str) -> None:
    assert expected == serialize_number(number)


def test_names_outside_the_bmp_sort_by_utf16_code_units() -> None:
    # U+1F602 is D83D DE02 in UTF-16, which sorts before U+FB33; code point order disagrees.
    value = {"\ufb33": 1, "\U0001f602": 2}
    assert '{"\U0001f602":2,"\ufb33":1}'.encode() == canonicalize(value)


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("inf"),
        {1: "integer name"},
        {"big": 2**53 + 1},
        {"huge": 10**400},
        {"set": {1, 2}},
        {"bytes": b"x"},
        "\ud800",
    ],
)
def test_values_outside_i_json_are_rejected(value: Any) -> None:
    with pytest.raises(RecordError):
        canonicalize(value)


def test_a_value_that_contains_itself_is_rejected() -> None:
    value: list[Any] = []
    value.append(value)
    with pytest.raises(RecordError):
        canonicalize(value)


_bmp_text = st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]))
_plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | _bmp_text,
    lambda children: st.lists(children) | st.dictionaries(_bmp_text, children),
    max_leaves=30,
)


@given(_plain)
def test_fast_path_equals_full_serialiser_without_floats_and_astral_names(value: Any) -> None:
    assert "".join(_serialize(value, [])) == _ENCODER.encode(value)


_any_text = st.text(st.characters(exclude_categories=["Cs"]))
_any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _any_text,
    lambda children: st.lists(children) | st.dictionaries(_any_text, children),
    max_leaves=30,
)


@given(_any)
def test_canonical_form_is_stable_when_parsed_and_canonicalised_again(value: Any) -> None:
    once = canonicalize(value)
    assert once == canonicalize(parse_json(once))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_serialised_numbers_read_back_to_the_same_double(number: float) -> None:
    assert number == float(serialize_number(number))


def test_vectors_folder_is_present() -> None:
    assert Path(JCS / "input").is_dir()
