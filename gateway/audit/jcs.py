"""RFC 8785 canonical JSON for the audit log: `gateway.jcs`, raising `RecordError`.

The canonicaliser lives in `gateway.jcs` because the policy signs grants with it too;
the log keeps its own error hierarchy, so every function here turns a
`CanonicalizationError` into a `RecordError` with the same `reason`.
"""

from __future__ import annotations

from typing import Any

from gateway import jcs
from gateway.audit.errors import RecordError
from gateway.jcs import CanonicalizationError

__all__ = [
    "canonicalize",
    "canonicalize_around",
    "parse_canonical",
    "parse_json",
    "serialize_number",
]


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of `value`; raises RecordError if it is not I-JSON."""
    try:
        return jcs.canonicalize(value)
    except CanonicalizationError as exc:
        raise RecordError(exc.reason) from exc


def canonicalize_around(value: dict[str, Any], name: str) -> tuple[bytes, bytes]:
    """`gateway.jcs.canonicalize_around`, raising RecordError."""
    try:
        return jcs.canonicalize_around(value, name)
    except CanonicalizationError as exc:
        raise RecordError(exc.reason) from exc


def parse_canonical(data: bytes) -> Any:
    """`gateway.jcs.parse_canonical`, raising RecordError."""
    try:
        return jcs.parse_canonical(data)
    except CanonicalizationError as exc:
        raise RecordError(exc.reason) from exc


def parse_json(data: bytes | str) -> Any:
    """Parse JSON as RFC 8785 reads it: an integer too large for I-JSON becomes a double."""
    return jcs.parse_json(data)


def serialize_number(number: float) -> str:
    """`gateway.jcs.serialize_number`, raising RecordError."""
    try:
        return jcs.serialize_number(number)
    except CanonicalizationError as exc:
        raise RecordError(exc.reason) from exc
