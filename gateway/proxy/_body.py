"""Request bodies that every JSON parser reads as the gateway does.

The gateway decides on the document orjson reads from the caller's bytes and forwards
those same bytes. That is safe only when any parser the upstream may use (first member
wins, last member wins, case-insensitive field binding, doubles or big integers) reads
the same document from them. So a body is accepted only inside a profile where they all
agree: I-JSON (RFC 7493) with two additions, checked here:

- RFC 8259 JSON text in UTF-8 without a byte-order mark, no lone surrogates, nesting
  at most `MAX_DEPTH` deep (orjson refuses the rest);
- no object, at any depth, with two members of the same decoded name;
- at the top level and in `stream_options` (the members the gateway acts on), no two
  member names that are equal once case-folded, NFKC-normalised and cut at a NUL, as
  parsers that bind fields case-insensitively (Go's encoding/json, ASP.NET) or through
  C strings read them;
- no integer literal beyond +-(2^53 - 1): parsers read those as int64, as doubles or
  exactly, and disagree.

Finding duplicates without walking the document in Python: in a JSON text every `:`
outside strings separates one member, and inside strings a colon is either the byte
itself or the escape `\\u003a`. orjson keeps one member per distinct name and writes
colons in strings as bytes, so with `raw` the caller's text and `ours` orjson's
serialisation of what it read:

    colons(raw) + escaped_colons(raw) - colons(ours)
        = members dropped as duplicates + colons inside the dropped members  (>= 0)

which is zero exactly when nothing was dropped. Counting every `\\u003` in the raw bytes
can overcount (the escapes of `0`..`?`, or an escaped backslash before `u003a`), never
undercount, so a non-zero result only sends the body to the exact (slower) check; zero
proves there is no duplicate (tests/proxy/test_body.py holds the property).
Integers beyond 64 bits, which orjson reads as doubles, always serialise with `e+`;
its presence sends the body to the exact check too. Most clients (the OpenAI SDKs,
httpx, JavaScript's JSON.stringify) send compact JSON that is byte for byte what orjson
writes back: such a body has nothing left to check.

Errors:

    BodyRefused     the body is not acceptable; `reason` is the audit code,
                    `message` one sentence for the caller
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import orjson

# Nesting orjson writes back (it reads up to 1024); far deeper than any request needs.
MAX_DEPTH = 254
# The largest integer every JSON parser reads exactly (RFC 7493 section 2.2).
MAX_EXACT_INTEGER = 2**53 - 1
_MAX_INTEGER_DIGITS = len(str(MAX_EXACT_INTEGER))
# Objects whose member names the gateway reads, besides the top level.
_READ_OBJECTS = ("stream_options",)


class BodyRefused(Exception):
    """A request body the gateway does not forward; `reason` goes to the audit record."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


_NOT_JSON = BodyRefused(
    "request.invalid_json",
    "The request body is not valid JSON (UTF-8 without a byte-order mark, no lone surrogates).",
)
_NOT_OBJECT = BodyRefused("request.invalid_json", "The request body must be a JSON object.")
_TOO_DEEP = BodyRefused(
    "request.nesting_too_deep", f"The request body nests deeper than {MAX_DEPTH} levels."
)
_BIG_NUMBER = BodyRefused(
    "request.ambiguous_number",
    f"The request body has an integer beyond +-{MAX_EXACT_INTEGER} or a number beyond "
    "the range of a double, which JSON parsers read differently.",
)


def parse_body(body: bytes) -> dict[str, Any]:
    """The caller's JSON object, or BodyRefused when some parser could read it otherwise."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson's messages only pick the reason code; any refusal is a refusal.
        if "depth" in exc.msg:
            raise _refusal(_TOO_DEEP) from None
        if "infinity" in exc.msg:
            raise _refusal(_BIG_NUMBER) from None
        raise _refusal(_NOT_JSON) from None
    if type(document) is not dict:
        raise _refusal(_NOT_OBJECT)
    try:
        ours = orjson.dumps(document, option=orjson.OPT_STRICT_INTEGER)
    except orjson.JSONEncodeError as exc:
        # The only two things orjson will not write back: a wide integer, or deep nesting.
        raise _refusal(_BIG_NUMBER if "Integer" in str(exc) else _TOO_DEEP) from None
    if body != ours and (_may_have_dropped(body, ours) or (b"+" in ours and b"e+" in ours)):
        _check_exactly(body)
    check_names(document)
    for name in _READ_OBJECTS:
        value = document.get(name)
        if type(value) is dict:
            check_names(value)
    return document


def _may_have_dropped(body: bytes, ours: bytes) -> bool:
    """False only when orjson provably kept every member of `body` (see the module doc)."""
    # `\\u003` also counts the escapes of `0`..`?` (over-counting only sends the body to
    # the exact check), in one pass, and only when there is an escape at all.
    escaped = body.count(b"\\u003") if b"\\" in body else 0
    return body.count(b":") + escaped != ours.count(b":")


def _refusal(template: BodyRefused) -> BodyRefused:
    # A fresh exception each time: a shared one would accumulate tracebacks.
    return BodyRefused(template.reason, template.message)


def _check_exactly(body: bytes) -> None:
    """Parse again with Python's json, seeing every member and every integer literal."""

    def pairs(members: list[tuple[str, Any]]) -> None:
        names: set[str] = set()
        for name, _ in members:
            if name in names:
                raise BodyRefused(
                    "request.duplicate_member",
                    f"The request body has an object with two members named {_quoted(name)}.",
                )
            names.add(name)

    def integer(text: str) -> None:
        digits = text.lstrip("-")  # JSON has no leading zeros: more digits, larger value
        if len(digits) > _MAX_INTEGER_DIGITS or (
            len(digits) == _MAX_INTEGER_DIGITS and int(digits) > MAX_EXACT_INTEGER
        ):
            raise _refusal(_BIG_NUMBER)

    try:
        json.loads(body, object_pairs_hook=pairs, parse_int=integer, parse_float=_nothing)
    except (ValueError, RecursionError):
        raise _refusal(_NOT_JSON) from None  # orjson read it, so this is not expected


def _nothing(_: str) -> None:
    return None


def check_names(members: dict[str, Any]) -> None:
    """Refuse two names of one object that a case-insensitive parser takes for one."""
    if len(members) < 2:
        return
    joined = "\n".join(members)
    if joined.isascii() and joined.islower() and "\0" not in joined:
        return  # ASCII names without capitals or NUL fold to themselves: all distinct
    folded: dict[str, str] = {}
    for name in members:
        key = fold(name)
        if key in folded:
            raise BodyRefused(
                "request.ambiguous_member",
                f"The request body has members {_quoted(folded[key])} and {_quoted(name)}, "
                "which some JSON parsers read as one.",
            )
        folded[key] = name


def fold(name: str) -> str:
    """The form under which parsers that match names loosely compare them."""
    name = name.partition("\0")[0]
    if name.isascii():
        return name.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())


def _quoted(name: str) -> str:
    text = json.dumps(name[:64])
    return text if len(name) <= 64 else text[:-1] + '..."'
