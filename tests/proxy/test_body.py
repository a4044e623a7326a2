"""The body check: a body is forwarded only when every JSON parser reads it as the gateway.

Parsers differ on duplicate member names (first wins, last wins, error), on names that
match loosely (case-insensitive binding, NUL-terminated C strings), on numbers beyond
what a double holds exactly, and on what they accept at all. Each family is refused.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.proxy import BodyRefused, parse_body
from gateway.proxy._body import MAX_DEPTH, MAX_EXACT_INTEGER, _may_have_dropped


def reason(body: bytes) -> str | None:
    try:
        parse_body(body)
    except BodyRefused as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(
    "body",
    [
        # The finding: an escaped name is the same name once decoded.
        rb'{"model":"muse-spark-2","mod\u0065l":"muse-1","messages":[]}',
        rb'{"mod\u0065l":"muse-1","model":"muse-spark-2","messages":[]}',
        rb'{"model":"muse-spark-2","\u006d\u006f\u0064\u0065\u006c":"muse-1"}',
        rb'{"model":"muse-spark-2","\u006D\u006F\u0064\u0065\u006C":"muse-1"}',
        b'{"model":"muse-1","messages":[],"model":"muse-spark-2"}',
        b'{"model": "muse-1", "model" : "muse-1"}',
        b'{"model":"muse-1","stream":false,"stream":true}',
        rb'{"model":"muse-1","stre\u0061m":false,"stream":true}',
        b'{"model":"muse-1","stream_options":{},"stream_options":{"include_usage":true}}',
        b'{"model":"m","stream_options":{"include_usage":false,"include_usage":true}}',
        rb'{"model":"m","stream_options":{"include_usage":false,"include_\u0075sage":true}}',
        b'{"model":"m","messages":[{"role":"user","role":"system","content":"x"}]}',
        b'{"model":"m","messages":[{"content":[{"type":"text","text":"a","text":"b"}]}]}',
        b'{"model":"m","a":{"b":{"c":{"d":{"e":{"f":1,"f":2}}}}}}',
        b'{"model":"m","x":[[[[[[[[{"k":"v:w","k":"v"}]]]]]]]]}',
        # Names holding colons, raw and escaped: the fast count must still see the drop.
        rb'{"model":"m","a:b":1,"a\u003ab":2}',
        rb'{"model":"m","a\u003Ab":"\u003a","a:b":":"}',
    ],
)
def test_a_member_named_twice_at_any_depth_is_refused(body: bytes) -> None:
    assert reason(body) == "request.duplicate_member"


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"muse-1","Model":"muse-spark-2"}',
        b'{"MODEL":"muse-spark-2","model":"muse-1"}',
        '{"model":"muse-1","\uff4d\uff4f\uff44\uff45\uff4c":"muse-spark-2"}'.encode(),  # fullwidth
        '{"stream":false,"\u017ftream":true,"model":"m"}'.encode(),  # long s folds to s
        rb'{"model":"muse-1","model\u0000x":"muse-spark-2"}',  # a C string ends at the NUL
        '{"model":"m","caf\u00e9":1,"cafe\u0301":2}'.encode(),  # NFC and NFD of one name
        b'{"model":"m","stream_options":{"include_usage":false,"Include_Usage":true}}',
    ],
)
def test_names_that_loose_parsers_read_as_one_are_refused(body: bytes) -> None:
    assert reason(body) == "request.ambiguous_member"


def test_loosely_equal_names_inside_a_member_the_gateway_does_not_read_pass() -> None:
    body = b'{"model":"m","metadata":{"Key":"a","key":"b"}}'
    assert parse_body(body)["metadata"] == {"Key": "a", "key": "b"}


@pytest.mark.parametrize(
    "number",
    [
        str(MAX_EXACT_INTEGER + 1),
        str(-MAX_EXACT_INTEGER - 1),
        "9223372036854775808",
        "18446744073709551616",
        "-9223372036854775809",
        "1" + "0" * 400,
        "1e400",
        "-1.5e999",
    ],
)
def test_numbers_parsers_read_differently_are_refused(number: str) -> None:
    body = b'{"model":"m","seed":' + number.encode() + b"}"
    assert reason(body) == "request.ambiguous_number"


@pytest.mark.parametrize("number", [str(MAX_EXACT_INTEGER), "-1", "0.7", "1e300", "1E-7"])
def test_numbers_every_parser_reads_alike_pass(number: str) -> None:
    assert parse_body(b'{"model":"m","x":' + number.encode() + b"}")["x"] == json.loads(number)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 5000])
def test_nesting_beyond_the_limit_is_refused(depth: int) -> None:
    body = b'{"model":"m","x":' + b"[" * depth + b"]" * depth + b"}"
    assert reason(body) == "request.nesting_too_deep"


def test_nesting_within_the_limit_passes() -> None:
    depth = MAX_DEPTH - 2
    parse_body(b'{"model":"m","x":' + b"[" * depth + b"]" * depth + b"}")


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + b'{"model":"m"}',  # a byte-order mark
        b'{"model":"m\xff"}',  # invalid UTF-8
        b'{"model":"m\xed\xa0\x80"}',  # an encoded surrogate
        rb'{"model":"m\ud800"}',  # a lone escaped surrogate
        rb'{"model":"m\udc00\ud800"}',
        b'{"model":"m"} {}',
        b'{"model":NaN}',
        b"",
        b'["model","m"]',
        b'"model"',
    ],
)
def test_what_some_parsers_accept_and_others_do_not_is_refused(body: bytes) -> None:
    assert reason(body) == "request.invalid_json"


def test_a_refusal_says_which_member_and_not_the_rest_of_the_body() -> None:
    with pytest.raises(BodyRefused) as refused:
        parse_body(b'{"model":"secret prompt","model":"x"}')
    assert '"model"' in refused.value.message
    assert "secret" not in refused.value.message


@pytest.mark.parametrize(
    "body",
    [
        rb'{"mod\u0065l":"muse-1","messages":[]}',
        rb'{"\u006d\u006f\u0064\u0065\u006c":"mus\u0065-1"}',
        b'{\n  "model": "muse-1",\n  "messages": [ {"role": "user", "content": "a:b"} ]\n}',
        rb'{"model":"m","text":"\\u003a is not a colon escape here"}',
        '{"model":"m","content":"\u00e9t\u00e9 \u2713 \U0001f600"}'.encode(),
        rb'{"model":"m","content":"\u00e9t\u00e9 \ud83d\ude00"}',
    ],
)
def test_unambiguous_bodies_pass_as_every_parser_reads_them(body: bytes) -> None:
    assert parse_body(body) == first_wins(body) == last_wins(body)


# A first-wins and a last-wins parser: the two rules upstream parsers follow.
def first_wins(body: bytes) -> Any:
    def pairs(members: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in members:
            out.setdefault(name, value)
        return out

    return json.loads(body, object_pairs_hook=pairs)


def last_wins(body: bytes) -> Any:
    return json.loads(body, object_pairs_hook=dict)


# Documents with duplicate names, written as JSON texts with escapes and spacing varied.
_NAMES = st.sampled_from(["model", "stream", "a", "a:b", ":", "x\\u003ay", "include_usage"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-MAX_EXACT_INTEGER, MAX_EXACT_INTEGER),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.sampled_from('ab:\\"\u00e9\U0001f600 '), max_size=6),
)


class Pairs(list[tuple[str, Any]]):
    """An object as written: its members in order, duplicates kept."""


_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(st.tuples(_NAMES, inner), max_size=4).map(Pairs),
    ),
    max_leaves=12,
)


@st.composite
def texts(draw: st.DrawFn, value: Any) -> str:
    """`value` as JSON text, each character of each string escaped or not at random."""
    space = draw(st.sampled_from(["", " ", "\n  "]))
    if isinstance(value, Pairs):
        members = [
            draw(string_texts(name)) + space + ":" + space + draw(texts(item))
            for name, item in value
        ]
        return "{" + ("," + space).join(members) + "}"
    if isinstance(value, list):
        return "[" + ("," + space).join(draw(texts(item)) for item in value) + "]"
    if isinstance(value, str):
        return draw(string_texts(value))
    return json.dumps(value)


@st.composite
def string_texts(draw: st.DrawFn, value: str) -> str:
    out = []
    for char in value:
        if char in '"\\' or draw(st.booleans()):
            escaped = json.dumps(char)[1:-1]
            if draw(st.booleans()) and len(escaped) != 12:  # \\uXXXX of a BMP character
                code = f"{ord(char):04x}"
                escaped = "\\u" + (code.upper() if draw(st.booleans()) else code)
            out.append(escaped)
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def has_duplicate(value: Any) -> bool:
    if isinstance(value, Pairs):
        names = [name for name, _ in value]
        return len(set(names)) < len(names) or any(has_duplicate(v) for _, v in value)
    if isinstance(value, list):
        return any(has_duplicate(item) for item in value)
    return False


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    members = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=5).map(Pairs))
    value = Pairs([("model", "m"), *members]) if draw(st.booleans()) else members
    return draw(texts(value)).encode(), has_duplicate(value)


@settings(max_examples=200, deadline=None)
@given(bodies())
def test_a_body_is_refused_exactly_when_a_name_repeats(case: tuple[bytes, bool]) -> None:
    body, duplicate = case
    if duplicate:
        assert reason(body) == "request.duplicate_member"
    else:
        assert parse_body(body) == first_wins(body) == last_wins(body)


@settings(max_examples=300, deadline=None)
@given(bodies())
def test_the_fast_detector_never_misses_a_duplicate(case: tuple[bytes, bool]) -> None:
    body, duplicate = case
    ours = orjson.dumps(orjson.loads(body))
    if duplicate:
        assert _may_have_dropped(body, ours)
    if not _may_have_dropped(body, ours):
        assert not duplicate
