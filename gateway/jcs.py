"""RFC 8785 JSON Canonicalization Scheme (JCS).

`canonicalize` turns a JSON value made of dicts, lists, strings, ints, floats, bools
and None into its one canonical byte string: UTF-8, no whitespace, object members
sorted by the UTF-16 code units of their names, numbers serialised as ECMAScript's
`Number.prototype.toString` does.

Two paths produce it. Audit records are *simple*: built only of dicts, lists, strings,
bools, None and integers within I-JSON's ±(2**53 - 1), with every character inside
the Basic Multilingual Plane. For a simple value, code point order equals UTF-16 order
and integers print as plain digits, so orjson's compact, key-sorted output is the
canonical form byte for byte (the tests prove it against the RFC 8785 vectors and, by
property, against the full serialiser). Everything else (floats, characters outside
the BMP, larger integers, and anything invalid, which it refuses) takes the full
serialiser below, which is the reference.

It sits below the domain packages because more than one signs or hashes canonical
JSON: the audit log (records, through `gateway.audit.jcs`) and the policy (grant
approvals). Errors: `CanonicalizationError` (a ValueError), with `reason`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = [
    "CanonicalizationError",
    "canonicalize",
    "canonicalize_around",
    "parse_canonical",
    "parse_json",
    "serialize_number",
]


class CanonicalizationError(ValueError):
    """A value has no RFC 8785 form, or text is not in it; `reason` says why in one phrase."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


# I-JSON (RFC 7493) interoperable integer range: beyond it a double loses precision.
_MAX_SAFE_INTEGER = 2**53 - 1

# STRICT_INTEGER makes orjson refuse integers outside ±(2**53 - 1), so they reach the
# full serialiser, which writes them as the doubles they equal (or refuses them).
_FAST_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER

# The lead byte of a four-byte UTF-8 sequence: a code point outside the BMP, whose
# UTF-16 surrogates sort differently from its code point.
_OUTSIDE_BMP = re.compile(rb"[\xf0-\xf4]")

# Only the full serialiser's string escaping uses it: the stdlib escapes exactly the
# characters RFC 8785 requires, in the same form.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    sort_keys=True,
    allow_nan=False,
    check_circular=False,
)


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of `value`; CanonicalizationError if not I-JSON."""
    try:
        data = _encode_simple(value)
        if data is None:
            data = "".join(_serialize(value, [])).encode("utf-8")
    except RecursionError as exc:
        raise CanonicalizationError("value is nested too deeply or refers to itself") from exc
    except UnicodeEncodeError as exc:
        raise CanonicalizationError("string contains a lone surrogate") from exc
    return data


def canonicalize_around(value: dict[str, Any], name: str) -> tuple[bytes, bytes]:
    """Canonical bytes of object `value` split where member `name` (ASCII) would sort.

    Returns (head, tail): `head + b'"name":' + member + tail` is the canonical form
    of `value` with that member added. `value` must not already contain `name`.
    """
    if type(value) is not dict:
        raise CanonicalizationError("value is not an object")
    if name in value:
        raise CanonicalizationError(f"value already has a member {name}")
    # Canonicalise once with a placeholder member and cut it out. The placeholder's
    # bytes are always in the output, so when they occur exactly once they are it.
    marker = b'"' + name.encode("ascii") + b'":0'
    data = canonicalize({**value, name: 0})
    position = data.find(marker)
    if position >= 0 and data.find(marker, position + 1) < 0:
        return data[:position], data[position + len(marker) :]
    return _canonicalize_split(value, name)


def _canonicalize_split(value: dict[str, Any], name: str) -> tuple[bytes, bytes]:
    """`canonicalize_around` for an object whose nested members also use `name`."""
    try:
        # Comparing with an ASCII name, code point order agrees with UTF-16 order, so
        # every name of `before` sorts ahead of `name` and every name of `after` behind.
        before = {key: item for key, item in value.items() if key < name}
        after = {key: item for key, item in value.items() if key > name}
    except TypeError as exc:
        raise CanonicalizationError("an object name is not a string") from exc
    head, tail = canonicalize(before), canonicalize(after)
    return (
        head[:-1] + (b"," if before else b""),
        (b"," if after else b"") + tail[1:],
    )


def parse_canonical(data: bytes) -> Any:
    """The value `data` holds; CanonicalizationError unless `data` is exactly its canonical form.

    JSON that is not valid (or not I-JSON) raises CanonicalizationError with reason
    "is not valid JSON"; valid JSON in any other form, "is not in canonical form".
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass  # The full path below decides, and names the fault the same way.
    else:
        # orjson's output equals `data` and is canonical for this (simple) value; the
        # stdlib parser reads such text to the same value.
        if _encode_simple(value) == data:
            return value
    try:
        value = json.loads(data)
        try:
            canonical = canonicalize(value)
        except CanonicalizationError:
            # Only integers beyond I-JSON's range land here; JCS reads them as doubles.
            value = parse_json(data)
            canonical = canonicalize(value)
    except (ValueError, RecursionError) as exc:  # CanonicalizationError is a ValueError too
        raise CanonicalizationError("is not valid JSON") from exc
    if canonical != data:
        raise CanonicalizationError("is not in canonical form")
    return value


def parse_json(data: bytes | str) -> Any:
    """Parse JSON as RFC 8785 reads it: an integer too large for I-JSON becomes a double."""
    return json.loads(data, parse_int=_parse_integer)


def _parse_integer(text: str) -> int | float:
    value = int(text)
    if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return value
    return float(value)


def _encode_simple(value: Any) -> bytes | None:
    """orjson's bytes for a simple value (its canonical form), or None for the full path."""
    if not _is_simple(value):
        return None
    try:
        data = orjson.dumps(value, option=_FAST_OPTIONS)
    except orjson.JSONEncodeError:
        # Non-string names, lone surrogates, integers beyond I-JSON, deep nesting:
        # the full serialiser handles or refuses each of them.
        return None
    if not data.isascii() and _OUTSIDE_BMP.search(data) is not None:
        return None
    return data


def _is_simple(value: Any) -> bool:
    """True if `value` is built only of dicts, lists, tuples, strs, ints, bools and None.

    Exact types only: floats (whose orjson form differs from ECMAScript's, and whose
    NaN orjson would write as null) and subclasses such as enums go to the full path.
    """
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind is str or kind is int or kind is bool or value is None
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if (kind is dict or kind is list or kind is tuple) and _is_simple(item):
            continue
        return False
    return True


def _serialize(value: Any, out: list[str]) -> list[str]:
    """The full RFC 8785 serialiser: validates as it writes."""
    kind = type(value)
    if kind is str:
        out.append(_ENCODER.encode(value))
    elif value is None:
        out.append("null")
    elif kind is bool:
        out.append("true" if value else "false")
    elif kind is int:
        if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            out.append(str(value))
        else:
            out.append(serialize_number(_exact_double(value)))
    elif kind is float:
        out.append(serialize_number(value))
    elif kind is dict:
        for name in value:
            if type(name) is not str:
                raise CanonicalizationError(f"object name is a {type(name).__name__}, not a string")
        out.append("{")
        for position, name in enumerate(sorted(value, key=_utf16_order)):
            if position:
                out.append(",")
            out.append(_ENCODER.encode(name))
            out.append(":")
            _serialize(value[name], out)
        out.append("}")
    elif kind is list or kind is tuple:
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _serialize(item, out)
        out.append("]")
    else:
        raise CanonicalizationError(f"a {kind.__name__} is not a JSON value")
    return out


def _exact_double(value: int) -> float:
    """A large integer as the double it equals; CanonicalizationError if no double equals it."""
    try:
        number = float(value)
    except OverflowError as exc:
        raise CanonicalizationError("integer is too large for a JSON number") from exc
    if number != value:
        raise CanonicalizationError("integer is outside the I-JSON range and not exactly a double")
    return number


def _utf16_order(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the sequence of code units does.
    return name.encode("utf-16-be", "surrogatepass")


def serialize_number(number: float) -> str:
    """ECMAScript Number.prototype.toString of a finite double (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(number):
        raise CanonicalizationError("NaN and infinities are not JSON numbers")
    if number == 0:
        return "0"
    if number < 0:
        return "-" + serialize_number(-number)
    digits, point = _shortest_digits(number)
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    exponent = point - 1
    sign = "+" if exponent >= 0 else "-"
    mantissa = digits if count == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(exponent)}"


def _shortest_digits(number: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits and the decimal point position.

    `repr` of a float is the shortest string that reads back to the same double,
    which is the digit string ECMAScript requires; value = 0.digits * 10**point.
    """
    text = repr(number)
    mantissa, _, exponent_text = text.partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + exponent
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    return stripped.rstrip("0"), point
