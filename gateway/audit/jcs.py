"""RFC 8785 JSON Canonicalization Scheme (JCS).

`canonicalize` turns a JSON value made of dicts, lists, strings, ints, floats, bools
and None into its one canonical byte string: UTF-8, no whitespace, object members
sorted by the UTF-16 code units of their names, numbers serialised as ECMAScript's
`Number.prototype.toString` does.

Most audit records hold no floats and no object name outside the Basic Multilingual
Plane. For those, code point order equals UTF-16 order and the C-accelerated
`json` encoder already produces the canonical form, so it is used directly; anything
else takes the full serialiser below.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.audit.errors import RecordError

__all__ = ["canonicalize", "canonicalize_around", "parse_json", "serialize_number"]

# I-JSON (RFC 7493) interoperable integer range: beyond it a double loses precision.
_MAX_SAFE_INTEGER = 2**53 - 1

_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    sort_keys=True,
    allow_nan=False,
    check_circular=False,
)


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of `value`; raises RecordError if it is not I-JSON."""
    try:
        text = _ENCODER.encode(value) if _is_plain(value) else "".join(_serialize(value, []))
        return text.encode("utf-8")
    except RecursionError as exc:
        raise RecordError("value is nested too deeply or refers to itself") from exc
    except UnicodeEncodeError as exc:
        raise RecordError("string contains a lone surrogate") from exc


def canonicalize_around(value: dict[str, Any], name: str) -> tuple[bytes, bytes]:
    """Canonical bytes of object `value` split where member `name` (ASCII) would sort.

    Returns (head, tail): `head + b'"name":' + member + tail` is the canonical form
    of `value` with that member added. `value` must not already contain `name`.
    """
    if type(value) is not dict:
        raise RecordError("value is not an object")
    # Comparing with an ASCII name, code point order agrees with UTF-16 order.
    before = {key: item for key, item in value.items() if key < name}
    after = {key: item for key, item in value.items() if key > name}
    try:
        if _is_plain(value):
            head_text, tail_text = _ENCODER.encode(before), _ENCODER.encode(after)
        else:
            head_text = "".join(_serialize(before, []))
            tail_text = "".join(_serialize(after, []))
        head, tail = head_text.encode("utf-8"), tail_text.encode("utf-8")
    except RecursionError as exc:
        raise RecordError("value is nested too deeply or refers to itself") from exc
    except UnicodeEncodeError as exc:
        raise RecordError("string contains a lone surrogate") from exc
    return (
        head[:-1] + (b"," if before else b""),
        (b"," if after else b"") + tail[1:],
    )


def parse_json(data: bytes | str) -> Any:
    """Parse JSON as RFC 8785 reads it: an integer too large for I-JSON becomes a double."""
    return json.loads(data, parse_int=_parse_integer)


def _parse_integer(text: str) -> int | float:
    value = int(text)
    if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        return value
    return float(value)


def _is_plain(value: Any) -> bool:
    """True if `value` needs neither float formatting nor UTF-16 key ordering.

    Also rejects what JSON cannot hold, so both paths accept exactly the same values.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        if -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return True
        _exact_double(value)
        return False
    if kind is dict:
        plain = True
        for key, item in value.items():
            if type(key) is not str:
                raise RecordError(f"object name is a {type(key).__name__}, not a string")
            if not key.isascii() and max(key) > "\uffff":
                plain = False
            if not _is_plain(item):
                plain = False
        return plain
    if kind is list or kind is tuple:
        plain = True
        for item in value:
            if not _is_plain(item):
                plain = False
        return plain
    if kind is float:
        if not math.isfinite(value):
            raise RecordError("NaN and infinities are not JSON numbers")
        return False
    raise RecordError(f"a {kind.__name__} is not a JSON value")


def _serialize(value: Any, out: list[str]) -> list[str]:
    kind = type(value)
    if kind is dict:
        out.append("{")
        names = sorted(value, key=_utf16_order)
        for position, name in enumerate(names):
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
    elif kind is float:
        out.append(serialize_number(value))
    elif kind is int and not -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        out.append(serialize_number(_exact_double(value)))
    else:
        # Strings, ints, bools and None were validated by _is_plain.
        out.append(_ENCODER.encode(value))
    return out


def _exact_double(value: int) -> float:
    """A large integer as the double it equals; RecordError if no double equals it."""
    try:
        number = float(value)
    except OverflowError as exc:
        raise RecordError("integer is too large for a JSON number") from exc
    if number != value:
        raise RecordError("integer is outside the I-JSON range and not exactly a double")
    return number


def _utf16_order(name: str) -> bytes:
    # Big-endian UTF-16 bytes compare exactly as the sequence of code units does.
    return name.encode("utf-16-be", "surrogatepass")


def serialize_number(number: float) -> str:
    """ECMAScript Number.prototype.toString of a finite double (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(number):
        raise RecordError("NaN and infinities are not JSON numbers")
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
