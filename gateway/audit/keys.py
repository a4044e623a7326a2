"""Key files of the audit log: the checkpoint signer, its verifier, and the HMAC key.

audit-signing.key   signer key, signed-note format, mode 0600
audit-signing.pub   verifier key, signed-note format
audit-hmac.key      32 random bytes as 64 hexadecimal digits and a newline, mode 0600
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.audit.errors import NoteError
from gateway.audit.note import NoteSigner, NoteVerifier, generate_signer

__all__ = [
    "HMAC_KEY_FILE",
    "SIGNING_KEY_FILE",
    "VERIFIER_KEY_FILE",
    "generate_keys",
    "load_hmac_key",
    "load_signer",
    "load_verifier",
]

SIGNING_KEY_FILE = "audit-signing.key"
VERIFIER_KEY_FILE = "audit-signing.pub"
HMAC_KEY_FILE = "audit-hmac.key"


def _write_new(path: Path, text: str, mode: int) -> None:
    # O_EXCL: never overwrite a key that may already sign a log.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(path, mode)


def generate_keys(directory: Path, name: str) -> None:
    """Write a new signer key, its verifier key and an HMAC key into `directory`.

    `name` is the key name and checkpoint origin. Existing key files are never
    overwritten (FileExistsError).
    """
    signer = generate_signer(name)
    directory.mkdir(parents=True, exist_ok=True)
    for file_name in (SIGNING_KEY_FILE, VERIFIER_KEY_FILE, HMAC_KEY_FILE):
        if (directory / file_name).exists():
            raise FileExistsError(f"key file already exists: {file_name}")
    _write_new(directory / SIGNING_KEY_FILE, signer.to_string() + "\n", 0o600)
    _write_new(directory / VERIFIER_KEY_FILE, signer.verifier.to_string() + "\n", 0o644)
    _write_new(directory / HMAC_KEY_FILE, secrets.token_bytes(32).hex() + "\n", 0o600)


def load_signer(path: Path) -> NoteSigner:
    """Read a signer key file; raises NoteError if malformed, OSError if unreadable."""
    # utf-8-sig: a byte-order mark that an editor added is not part of the key.
    return NoteSigner.from_string(path.read_text(encoding="utf-8-sig"))


def load_verifier(path: Path) -> NoteVerifier:
    """Read a verifier key file; raises NoteError if malformed, OSError if unreadable."""
    return NoteVerifier.from_string(path.read_text(encoding="utf-8-sig"))


def load_hmac_key(path: Path) -> bytes:
    """Read an HMAC key file (64 hex digits); raises NoteError if malformed."""
    text = path.read_text(encoding="utf-8-sig").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise NoteError("HMAC key file must hold hexadecimal digits") from exc
    if len(key) != 32:
        raise NoteError("HMAC key must be 32 bytes")
    return key
