"""The wire format of C2SP tlog-witness `add-checkpoint` (c2sp.org/tlog-witness).

Request (section "add-checkpoint"), `POST <submission prefix>/add-checkpoint`:

    old <size of the previous checkpoint, ASCII decimal, no leading zeros>\\n
    <base64 hash>\\n            zero to 63 consistency proof lines (RFC 6962 2.1.2)
    \\n
    <the checkpoint as a signed note>

Responses: 200 with one or more cosignature lines; 409 Conflict with the size of the
witness's latest cosigned checkpoint and a newline, `Content-Type: text/x.tlog.size`;
400 (bad request, or old size above the checkpoint's), 403 (no trusted signature), 404
(unknown origin), 422 (the consistency proof does not verify).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.witness.errors import ProtocolError

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_BYTES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "format_add_checkpoint",
    "format_size",
    "parse_add_checkpoint",
    "parse_size",
]

SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
# 63 proof lines of 45 bytes and a checkpoint with a few dozen signature lines fit many
# times over; anything larger is not a request this protocol makes.
MAX_REQUEST_BYTES = 64 * 1024
_HASH_SIZE = 32


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """One `add-checkpoint` request: the old size, the proof from it, the signed note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str


def _decimal(text: str, what: str) -> int:
    # ASCII digits, no leading zeros unless the number is zero (tlog-witness "add-checkpoint").
    if not text or not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise ProtocolError(f"{what} is not a decimal number without leading zeros")
    return int(text)


def format_size(size: int) -> str:
    """A size as the protocol writes it: ASCII decimal, no leading zeros."""
    return str(size)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The request body for submitting signed checkpoint `note` with a proof from `old_size`."""
    if len(proof) > MAX_PROOF_LINES:
        raise ProtocolError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    lines = [f"old {format_size(old_size)}\n"]
    lines.extend(base64.b64encode(hash_).decode() + "\n" for hash_ in proof)
    lines.append("\n")
    return ("".join(lines) + note).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body; raises ProtocolError (answered 400) if it is malformed."""
    if len(body) > MAX_REQUEST_BYTES:
        raise ProtocolError("the request body is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("the request body is not UTF-8") from exc
    header, separator, note = text.partition("\n\n")
    if not separator:
        raise ProtocolError("the request has no empty line before the checkpoint")
    lines = header.split("\n")
    first = lines[0]
    if not first.startswith("old "):
        raise ProtocolError("the request does not start with an old size line")
    old_size = _decimal(first[len("old ") :], "the old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise ProtocolError(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            hash_ = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError("a consistency proof line is not base64") from exc
        if len(hash_) != _HASH_SIZE:
            raise ProtocolError("a consistency proof line is not a 32-byte hash")
        proof.append(hash_)
    if not note:
        raise ProtocolError("the request carries no checkpoint")
    return AddCheckpoint(old_size, tuple(proof), note)


def parse_size(body: bytes) -> int:
    """The witness's size from a 409 response body (`<decimal>\\n`)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError("the 409 response body is not a size") from exc
    if not text.endswith("\n") or text.count("\n") != 1:
        raise ProtocolError("the 409 response body is not one newline-terminated size")
    return _decimal(text[:-1], "the witness's size")
