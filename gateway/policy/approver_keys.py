"""Approver key files: an Ed25519 key pair per approver (I/O, unlike the policy core).

<key id>.key   the private key, PKCS#8 PEM, unencrypted, mode 0600: keep it offline
               and out of version control
<key id>.pub   the public key as the policy lists it: ``ed25519:<base64>`` and a newline
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from ._approvers import KEY_ID, encode_public_key
from ._errors import PolicyError

__all__ = ["ApproverKeyError", "generate_approver_key", "load_approver_key", "public_key_text"]


class ApproverKeyError(PolicyError):
    """An approver key file cannot be written or read; `path` names it, `reason` says why."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The public half of `key` as the policy lists it (``ed25519:<base64>``)."""
    return encode_public_key(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: never overwrite a key that may already have signed grants.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, mode)


def generate_approver_key(directory: Path, key_id: str) -> tuple[Path, Path]:
    """Write `<key_id>.key` (0600) and `<key_id>.pub` into `directory` (made 0700 if
    missing); returns both paths. Existing files are never overwritten."""
    if not KEY_ID.fullmatch(key_id):
        raise ApproverKeyError(
            directory / key_id, "key ids are letters, digits, '.', '_', '@', '-' (at most 128)"
        )
    private_path, public_path = directory / f"{key_id}.key", directory / f"{key_id}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise ApproverKeyError(path, "already exists; a key file is never overwritten")
    key = Ed25519PrivateKey.generate()
    try:
        if not directory.exists():
            directory.mkdir(parents=True, mode=0o700)
        _write_new(
            private_path,
            key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()),
            0o600,
        )
        _write_new(public_path, (public_key_text(key) + "\n").encode("ascii"), 0o644)
    except OSError as exc:
        raise ApproverKeyError(
            Path(exc.filename or directory), exc.strerror or "cannot write"
        ) from exc
    return private_path, public_path


def load_approver_key(path: Path) -> Ed25519PrivateKey:
    """Read an approver's private key (PKCS#8 PEM, unencrypted Ed25519)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ApproverKeyError(path, exc.strerror or "cannot read") from exc
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # Never quote the file: it is a secret, even when it is not a key.
        raise ApproverKeyError(path, "is not an unencrypted PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ApproverKeyError(path, "is not an Ed25519 private key")
    return key
