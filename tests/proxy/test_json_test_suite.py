"""The public JSONTestSuite through the gateway's body check.

`test_parsing/i_*` and `test_transform/*` are exactly the texts that parsers read in
different ways; `y_*` and `n_*` check that the ordinary and the invalid stay so. For
each, the gateway either refuses the body or a first-wins parser, a last-wins parser
and orjson all read the same document from it. Each vector is tried as the whole body
and as the value of a member of a request object (the suite's texts are mostly arrays,
which the gateway refuses as bodies anyway).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.proxy import BodyRefused, parse_body
from tests.proxy.test_body import first_wins, last_wins

SUITE = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "json-test-suite"


def _vectors(folder: str, prefix: str = "") -> list[Path]:
    found = sorted((SUITE / folder).glob(f"{prefix}*.json"))
    return found or [SUITE / folder / "<no vectors found>"]


def _accepted(body: bytes) -> dict[str, Any] | None:
    try:
        return parse_body(body)
    except BodyRefused:
        return None


def _read_alike(body: bytes) -> None:
    """Refused, or every parser reads the same document as the gateway."""
    accepted = _accepted(body)
    if accepted is None:
        return
    assert accepted == orjson.loads(body) == first_wins(body) == last_wins(body)
    # The same kinds too: a parser that read 1 where another read 1.0 is a differential.
    assert json.dumps(accepted) == json.dumps(first_wins(body))


def _as_member(vector: bytes) -> bytes:
    return b'{"model":"muse-1","input":' + vector + b"}"


@pytest.mark.parametrize(
    "path",
    _vectors("test_parsing", "i_") + _vectors("test_transform"),
    ids=lambda path: path.name,
)
def test_texts_parsers_read_differently_are_refused_or_read_alike(path: Path) -> None:
    vector = path.read_bytes()
    _read_alike(vector)
    _read_alike(_as_member(vector))


@pytest.mark.parametrize("path", _vectors("test_parsing", "y_"), ids=lambda path: path.name)
def test_valid_texts_are_refused_or_read_alike(path: Path) -> None:
    vector = path.read_bytes()
    _read_alike(vector)
    _read_alike(_as_member(vector))


@pytest.mark.parametrize("path", _vectors("test_parsing", "n_"), ids=lambda path: path.name)
def test_invalid_texts_are_refused(path: Path) -> None:
    vector = path.read_bytes()
    assert _accepted(vector) is None
    _read_alike(_as_member(vector))


def test_the_suite_is_there_in_full() -> None:
    assert len(_vectors("test_parsing", "i_")) == 35
    assert len(_vectors("test_transform")) >= 20
    assert len(_vectors("test_parsing")) == 318


def test_the_suites_duplicate_names_are_refused() -> None:
    for name in ("object_same_key_different_values", "object_same_key_unclear_values"):
        vector = (SUITE / "test_transform" / f"{name}.json").read_bytes()
        with pytest.raises(BodyRefused) as refused:
            parse_body(vector)
        assert refused.value.reason == "request.duplicate_member"


def test_ordinary_valid_objects_are_accepted() -> None:
    # Refusing everything would pass the tests above: most valid texts must still pass.
    accepted = [
        path.name
        for path in _vectors("test_parsing", "y_")
        if _accepted(_as_member(path.read_bytes())) is not None
    ]
    assert len(accepted) >= 90
