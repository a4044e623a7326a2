"""Witness cosignatures on checkpoints: C2SP tlog-cosignature, Ed25519 (`cosignature/v1`).

A cosignature is a signed-note signature line added to a checkpoint by a witness
(c2sp.org/tlog-cosignature, "Format"):

    — <witness name> base64(key ID || timestamp || Ed25519 signature)

- key ID: the first four bytes of SHA-256(<name> || "\\n" || 0x04 || 32-byte public
  key) — signature type 0x04, "timestamped Ed25519 witness cosignatures"
  (c2sp.org/signed-note, "Signature types");
- timestamp: the `timestamped_signature.timestamp`, a u64 big-endian POSIX time, at
  most 2^63 - 1 ("Format");
- signature: Ed25519 over the signed message ("Ed25519 signed message")

      cosignature/v1\\n
      time <timestamp, ASCII decimal without leading zeros>\\n
      <the checkpoint's note text, including its final newline>

Keys are written as verifier keys with signature type 0x04 ("Ed25519 public keys MAY be
encoded as vkeys with signature type 0x04"), and signer keys in the same style as the
log's own:

    verifier  <name>+<8 hex key ID>+<base64(0x04 || public key)>
    signer    PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x04 || 32-byte seed)>

The Ed25519 message does not commit to the witness name, so one public key under two
names is one witness: a quorum counts distinct public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.errors import NoteError

__all__ = [
    "COSIGNATURE_TYPE",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "attach_cosignatures",
    "cosigned_message",
    "generate_cosigner",
    "note_parts",
    "witnessed_by",
]

COSIGNATURE_TYPE = b"\x04"
_HEADER = b"cosignature/v1\n"
_PREFIX = "\u2014 "
_MAX_TIMESTAMP = (1 << 63) - 1
_BLOB_SIZE = 4 + 8 + 64


def _key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + COSIGNATURE_TYPE + public_key).digest()[:4]


def _check_name(name: str) -> None:
    # c2sp.org/signed-note, "Format": non-empty, no Unicode spaces, no '+'.
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise NoteError("witness name must be non-empty, printable, without spaces or '+'")


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("invalid base64") from exc


def cosigned_message(text: str, timestamp: int) -> bytes:
    """The bytes a `cosignature/v1` signs: header line, time line, checkpoint note text."""
    if not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError("cosignature timestamp is outside 0..2^63-1")
    return _HEADER + b"time %d\n" % timestamp + text.encode()


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One verified cosignature line: who signed, when (POSIX seconds), and the line."""

    witness: str
    key_id: bytes
    timestamp: int
    line: str


class CosignatureVerifier:
    """A witness's public key: `name`, `key_id` (type 0x04) and the Ed25519 key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_name(name)
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")
        self.name = name
        self.public_key = public_key
        self.key_id = _key_id(name, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_string(cls, text: str) -> CosignatureVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x04 || key)>``."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("witness key must have three '+'-separated parts")
        name, id_hex, encoded = parts
        key = _base64(encoded)
        if len(key) != 33 or key[:1] != COSIGNATURE_TYPE:
            raise NoteError("witness key is not an Ed25519 cosignature key (type 0x04)")
        verifier = cls(name, key[1:])
        if id_hex != verifier.key_id.hex():
            raise NoteError("witness key ID does not match its name and key")
        return verifier

    def to_string(self) -> str:
        """The verifier key string."""
        encoded = base64.b64encode(COSIGNATURE_TYPE + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.to_string()!r})"

    def matches(self, line: str) -> bool:
        """Whether `line` names this key (name and key ID); others must be ignored."""
        name, blob = _split_line(line)
        return name == self.name and blob[:4] == self.key_id

    def verify(self, text: str, line: str) -> Cosignature:
        """The cosignature `line` over checkpoint note `text`; NoteError unless this key
        made it."""
        name, blob = _split_line(line)
        if name != self.name or blob[:4] != self.key_id:
            raise NoteError("the cosignature is not by this witness key")
        if len(blob) != _BLOB_SIZE:
            raise NoteError("a cosignature is 76 bytes (key ID, timestamp, signature)")
        timestamp = int.from_bytes(blob[4:12], "big")
        try:
            self._key.verify(blob[12:], cosigned_message(text, timestamp))
        except InvalidSignature as exc:
            raise NoteError(f"the cosignature by {self.name} does not verify") from exc
        return Cosignature(self.name, self.key_id, timestamp, line)


class CosignatureSigner:
    """A witness's signing key; `verifier` is its public half."""

    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed is 32 bytes")
        self.name = name
        self._seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = CosignatureVerifier(name, public)

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r})"

    @classmethod
    def from_string(cls, text: str) -> CosignatureSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>``."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("witness signer key must be PRIVATE+KEY+<name>+<id>+<key>")
        name, id_hex, encoded = parts[2:]
        key = _base64(encoded)
        if len(key) != 33 or key[:1] != COSIGNATURE_TYPE:
            raise NoteError("witness signer key is not an Ed25519 cosignature key (type 0x04)")
        signer = cls(name, key[1:])
        if id_hex != signer.verifier.key_id.hex():
            raise NoteError("witness signer key ID does not match its name and key")
        return signer

    def to_string(self) -> str:
        """The signer key string (secret: write it only to a private file)."""
        encoded = base64.b64encode(COSIGNATURE_TYPE + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    def cosign(self, text: str, timestamp: int) -> str:
        """The cosignature line (with its newline) over checkpoint note `text` at
        `timestamp` (POSIX seconds)."""
        signature = self._key.sign(cosigned_message(text, timestamp))
        blob = self.verifier.key_id + timestamp.to_bytes(8, "big") + signature
        return f"{_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"


def generate_cosigner(name: str) -> CosignatureSigner:
    """A new random witness key named `name`."""
    return CosignatureSigner(name, Ed25519PrivateKey.generate().private_bytes_raw())


def _split_line(line: str) -> tuple[str, bytes]:
    body = line[:-1] if line.endswith("\n") else line
    if not body.startswith(_PREFIX) or "\n" in body:
        raise NoteError("malformed signature line")
    name, _, encoded = body[len(_PREFIX) :].partition(" ")
    if not name or not encoded or " " in encoded:
        raise NoteError("malformed signature line")
    blob = _base64(encoded)
    if len(blob) < 5:
        raise NoteError("signature is too short")
    return name, blob


def note_parts(note: str) -> tuple[str, list[str]]:
    """A signed note's text (with its final newline) and its signature lines (each with
    its newline). The text ends at the note's last blank line (c2sp.org/signed-note)."""
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("note must not contain control characters")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("note has no signature block")
    lines = [line + "\n" for line in note[split + 2 : -1].split("\n")]
    for line in lines:
        _split_line(line)
    return note[: split + 1], lines


def attach_cosignatures(note: str, lines: Iterable[str]) -> str:
    """`note` with the signature `lines` it does not carry yet appended."""
    _, present = note_parts(note)
    extra = [line for line in dict.fromkeys(lines) if line not in present]
    return note + "".join(extra)


def witnessed_by(
    text: str,
    lines: Iterable[str],
    witnesses: Sequence[CosignatureVerifier],
    *,
    not_after: int | None = None,
) -> list[CosignatureVerifier]:
    """The `witnesses` whose valid cosignature over note `text` is among `lines`.

    Lines by unknown keys are ignored. A line naming a listed witness (name and key ID)
    that does not verify fails the whole check (NoteError), as c2sp.org/signed-note
    says clients should reject such a note; so does a timestamp after `not_after`
    (c2sp.org/tlog-cosignature lets verifiers reject cosignatures from the future).
    """
    found: dict[bytes, CosignatureVerifier] = {}
    for line in lines:
        for witness in witnesses:
            if not witness.matches(line):
                continue
            cosignature = witness.verify(text, line)
            if not_after is not None and cosignature.timestamp > not_after:
                raise NoteError(f"the cosignature by {witness.name} is dated in the future")
            found[witness.public_key] = witness
    return list(found.values())
