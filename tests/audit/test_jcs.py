import collections
import enum
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import RecordError, canonicalize
from gateway.audit.jcs import (
    canonicalize_around,
    parse_canonical,
    parse_json,
    serialize_number,
)
from gateway.jcs import _encode_simple, _serialize

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


@pytest.mark.parametrize("name", _names())
def test_rfc8785_vector_through_the_full_serialiser(name: str) -> None:
    # The reference path must pass the vectors on its own, whichever path
    # `canonicalize` picks for them.
    source = (JCS / "input" / f"{name}.json").read_bytes()
    expected = (JCS / "output" / f"{name}.json").read_bytes()
    assert expected == _full(json.loads(source))


@pytest.mark.parametrize("name", _names())
def test_rfc8785_vector_output_is_accepted_as_canonical(name: str) -> None:
    expected = (JCS / "output" / f"{name}.json").read_bytes()
    assert expected == canonicalize(parse_canonical(expected))


def _full(value: Any) -> bytes:
    return "".join(_serialize(value, [])).encode("utf-8")


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
_simple = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | _bmp_text,
    lambda children: (
        st.lists(children) | st.lists(children).map(tuple) | st.dictionaries(_bmp_text, children)
    ),
    max_leaves=30,
)


@settings(max_examples=300)
@given(_simple)
def test_fast_path_equals_full_serialiser_for_simple_values(value: Any) -> None:
    fast = _encode_simple(value)
    assert fast is not None  # the fast path really is taken for these values
    assert _full(value) == fast


@given(_simple)
def test_fast_path_output_is_accepted_as_canonical_and_reads_back(value: Any) -> None:
    data = canonicalize(value)
    assert parse_json(data) == parse_canonical(data)


@given(st.floats(), st.sampled_from([lambda x: x, lambda x: [x], lambda x: {"a": {"b": x}}]))
def test_floats_never_take_the_fast_path(number: float, wrap: Any) -> None:
    assert _encode_simple(wrap(number)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1.0, "b": [100.0, 1e21, 1e-7]}, b'{"a":1,"b":[100,1e+21,1e-7]}'),
        (2**53, b"9007199254740992"),
        (-(2**60), b"-1152921504606847000"),
        ({"emoji": "\U0001f602"}, '{"emoji":"\U0001f602"}'.encode()),
        ({"\U0001f602": [{"\ufb33": 1, "\U0001f602": 2}]}, None),
    ],
)
def test_values_outside_the_fast_path_are_canonical(value: Any, expected: bytes | None) -> None:
    assert _encode_simple(value) is None
    assert (expected if expected is not None else _full(value)) == canonicalize(value)


@pytest.mark.parametrize("number", [2**53 - 1, -(2**53) + 1])
def test_the_largest_i_json_integers_take_the_fast_path(number: int) -> None:
    assert str(number).encode() == _encode_simple(number)


class _Colour(enum.IntEnum):
    RED = 1


class _Name(str):
    __slots__ = ()


@pytest.mark.parametrize(
    "value",
    [
        {"nested": [float("nan")]},
        {"nested": {"deeper": float("-inf")}},
        {"colour": _Colour.RED},
        {"name": _Name("x")},
        {_Name("key"): 1},
        collections.OrderedDict(a=1),
        {"id": uuid.UUID(int=1)},
        {"big": -(2**53) - 1},
        {"text": "ok", "surrogate": ["\udc00"]},
    ],
)
def test_values_the_fast_encoder_would_accept_are_still_refused(value: Any) -> None:
    # orjson writes NaN as null and serialises enums, str subclasses and UUIDs; the
    # log accepts exactly the JSON values the full serialiser accepts.
    with pytest.raises(RecordError):
        canonicalize(value)


_member_names = st.sampled_from(["index", "a", "kind", "\ufb33", "\U0001f602"]) | _bmp_text
_objects = st.recursive(
    st.none() | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1) | _bmp_text,
    lambda children: st.lists(children) | st.dictionaries(_member_names, children),
    max_leaves=20,
)


@given(
    st.dictionaries(_member_names.filter(lambda name: name != "index"), _objects),
    st.integers(min_value=0, max_value=2**53 - 1),
)
def test_canonicalize_around_splits_where_the_member_sorts(value: Any, index: int) -> None:
    head, tail = canonicalize_around(value, "index")
    joined = head + b'"index":' + str(index).encode() + tail
    assert canonicalize({**value, "index": index}) == joined


def test_canonicalize_around_with_a_nested_member_of_the_same_name() -> None:
    value = {"kind": "x", "principal": {"index": 0}, "a": [{"index": 0}]}
    head, tail = canonicalize_around(value, "index")
    expected = b'{"a":[{"index":0}],"index":7,"kind":"x","principal":{"index":0}}'
    assert expected == head + b'"index":7' + tail


def test_canonicalize_around_refuses_an_object_that_has_the_member() -> None:
    with pytest.raises(RecordError):
        canonicalize_around({"index": 1}, "index")


def test_canonicalize_around_refuses_a_non_string_name() -> None:
    with pytest.raises(RecordError):
        canonicalize_around({1: "a", "b": 2}, "index")


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1.0}',
        b'{"a":100.0}',
        b'{"a":1E2}',
        b'{"a":1e21}',
        b'{"a":-0}',
        b'{"b":1,"a":2}',
        b'{"a": 1}',
        b'{"a":1,"a":1}',
        b'{"a":"\\u0041"}',
        b'{"a":9007199254740993}',
        b'{"\xef\xac\xb3":1,"\xf0\x9f\x98\x82":2}',
        b'{"a":1}\n',
    ],
)
def test_non_canonical_text_is_refused(data: bytes) -> None:
    with pytest.raises(RecordError) as caught:
        parse_canonical(data)
    assert caught.value.reason == "is not in canonical form"


@pytest.mark.parametrize("data", [b"", b"{", b'{"a":NaN}', b'"\\ud800"', b"\xff", b"[1e400]"])
def test_invalid_json_is_refused_as_invalid(data: bytes) -> None:
    with pytest.raises(RecordError) as caught:
        parse_canonical(data)
    assert caught.value.reason == "is not valid JSON"


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_orjson_float_text_is_accepted_only_when_it_is_the_ecmascript_form(number: float) -> None:
    text = json.dumps({"a": number}, separators=(",", ":")).encode()
    canonical = canonicalize({"a": number})
    if text == canonical:
        assert {"a": number} == parse_canonical(text)
    else:
        with pytest.raises(RecordError):
            parse_canonical(text)


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
