"""C2SP signed notes with Ed25519 keys, and C2SP tlog checkpoints.

A signed note is a UTF-8 text ending in a newline, a blank line, then signature lines
``"\u2014 <key name> <base64(key hash || signature)>\\n"``. The key hash is the first
four bytes of SHA-256(key name || "\\n" || 0x01 || 32-byte public key), where 0x01
names the Ed25519 algorithm. Keys are written as Go's golang.org/x/mod/sumdb/note does:

    verifier key  <name>+<8 hex key hash>+<base64(0x01 || public key)>
    signer key    PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 || 32-byte seed)>

A checkpoint (c2sp.org/tlog-checkpoint) is the note text
``"<origin>\\n<tree size>\\n<base64 root hash>\\n"``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.errors import NoteError

__all__ = [
    "Checkpoint",
    "NoteSigner",
    "NoteVerifier",
    "format_checkpoint",
    "generate_signer",
    "open_checkpoint",
    "parse_checkpoint",
    "read_note_file",
]

_ALGORITHM_ED25519 = b"\x01"
_SIGNATURE_PREFIX = "\u2014 "


def _key_hash(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ALGORITHM_ED25519 + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name) or not name.isprintable():
        raise NoteError("key name must be non-empty, printable, without spaces or '+'")


def _decode_base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("invalid base64") from exc


class NoteVerifier:
    """An Ed25519 verifier key: `name`, `key_hash` and the public key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_name(name)
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")
        self.name = name
        self.public_key = public_key
        self.key_hash = _key_hash(name, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_string(cls, text: str) -> NoteVerifier:
        """Parse ``<name>+<hex key hash>+<base64(0x01 || key)>``."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must have three '+'-separated parts")
        name, hash_hex, encoded = parts
        key = _decode_base64(encoded)
        if len(key) != 33 or key[:1] != _ALGORITHM_ED25519:
            raise NoteError("verifier key is not an Ed25519 key")
        verifier = cls(name, key[1:])
        if hash_hex != verifier.key_hash.hex():
            raise NoteError("verifier key hash does not match its name and key")
        return verifier

    def to_string(self) -> str:
        """The verifier key string."""
        encoded = base64.b64encode(_ALGORITHM_ED25519 + self.public_key).decode()
        return f"{self.name}+{self.key_hash.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if `signature` is this key's Ed25519 signature of `message`."""
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


class NoteSigner:
    """An Ed25519 signer key; `verifier` is its public half."""

    def __init__(self, name: str, seed: bytes) -> None:
        _check_name(name)
        if len(seed) != 32:
            raise NoteError("an Ed25519 seed is 32 bytes")
        self.name = name
        self._seed = seed
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = NoteVerifier(name, public)

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r})"

    @classmethod
    def from_string(cls, text: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || seed)>``."""
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("signer key must be PRIVATE+KEY+<name>+<hash>+<key>")
        name, hash_hex, encoded = parts[2:]
        key = _decode_base64(encoded)
        if len(key) != 33 or key[:1] != _ALGORITHM_ED25519:
            raise NoteError("signer key is not an Ed25519 key")
        signer = cls(name, key[1:])
        if hash_hex != signer.verifier.key_hash.hex():
            raise NoteError("signer key hash does not match its name and key")
        return signer

    def to_string(self) -> str:
        """The signer key string (secret: write it only to a private file)."""
        encoded = base64.b64encode(_ALGORITHM_ED25519 + self._seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_hash.hex()}+{encoded}"

    def sign(self, text: str) -> str:
        """The signed note of `text` (which must end in a newline)."""
        _check_text(text)
        signature = self._key.sign(text.encode())
        encoded = base64.b64encode(self.verifier.key_hash + signature).decode()
        return f"{text}\n{_SIGNATURE_PREFIX}{self.name} {encoded}\n"


def generate_signer(name: str) -> NoteSigner:
    """A new random Ed25519 signer key named `name`."""
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    return NoteSigner(name, seed)


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(c < " " and c != "\n" for c in text):
        raise NoteError("note text must not contain control characters")
    if "\n\n" in text:
        raise NoteError("note text must not contain a blank line")


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The text of `note` if `verifier` signed it; raises NoteError otherwise.

    Signatures by other keys are ignored, as the signed-note spec requires.
    """
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("note must not contain control characters")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("note has no signature block")
    text = note[: split + 1]
    lines = note[split + 2 : -1].split("\n")
    found = False
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise NoteError("malformed signature line")
        name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not name or not encoded or " " in encoded:
            raise NoteError("malformed signature line")
        blob = _decode_base64(encoded)
        if len(blob) < 5:
            raise NoteError("signature is too short")
        if name != verifier.name or blob[:4] != verifier.key_hash:
            continue
        found = True
        if verifier.verify(text.encode(), blob[4:]):
            return text
    if found:
        raise NoteError("note signature does not verify")
    raise NoteError("note is not signed by the given key")


def read_note_file(path: Path) -> str:
    """A signed note as a user hands it in: file bytes as the signer wrote them.

    Editors and shells add what no signer wrote: a trailing newline or spaces, CRLF line
    ends, a byte-order mark. None of it can be part of a valid note (signed text holds no
    control characters; a note ends in exactly one newline), so it is removed here, at
    the file boundary, and `open_note` stays strict about the bytes it verifies.
    Raises OSError if unreadable, NoteError if not UTF-8.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise NoteError("note file is not UTF-8 text") from exc
    return text.replace("\r\n", "\n").rstrip(" \t\r\n") + "\n"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog checkpoint: `origin`, `tree_size` and `root_hash`."""

    origin: str
    tree_size: int
    root_hash: bytes


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The checkpoint's note text: origin, size and base64 root, each newline-terminated."""
    root = base64.b64encode(checkpoint.root_hash).decode()
    return f"{checkpoint.origin}\n{checkpoint.tree_size}\n{root}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text (extension lines after the root are allowed and ignored)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("checkpoint must have origin, size and root lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin:
        raise NoteError("checkpoint origin is empty")
    if (
        not size_text.isdigit()
        or not size_text.isascii()
        or (len(size_text) > 1 and size_text[0] == "0")
    ):
        raise NoteError("checkpoint tree size is not a decimal number")
    root = _decode_base64(root_text)
    if len(root) != 32:
        raise NoteError("checkpoint root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root)


def open_checkpoint(note: str, verifier: NoteVerifier) -> Checkpoint:
    """Verify a signed checkpoint and parse it; its origin must be the key's name."""
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if checkpoint.origin != verifier.name:
        raise NoteError("checkpoint origin does not match the key name")
    return checkpoint
