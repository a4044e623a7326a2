"""C2SP tlog-cosignature and signed-note, written out from the specs for the tests.

Deliberately independent of `gateway.audit.cosignature`: the tests check the gateway's
cosignatures with this, and this with the specs' own worked values where they give any.

- c2sp.org/signed-note: a signature line is U+2014, space, key name, space,
  base64(4-byte key ID || signature), newline; the key ID is
  SHA-256(key name || 0x0A || signature type || public key)[:4].
- c2sp.org/tlog-cosignature: signature type 0x04; the signature is a
  timestamped_signature, u64 big-endian timestamp then the 64-byte Ed25519 signature, over
  "cosignature/v1\\n" "time <decimal>\\n" and the checkpoint's note text.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

EM_DASH = "\u2014"


def key_id(name: str, signature_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(
        name.encode("utf-8") + b"\x0a" + bytes([signature_type]) + public_key
    ).digest()[:4]


def signed_message(checkpoint_text: str, timestamp: int) -> bytes:
    return (
        b"cosignature/v1\n"
        + f"time {timestamp}\n".encode("ascii")
        + checkpoint_text.encode("utf-8")
    )


def public_key_of(vkey: str) -> tuple[str, bytes]:
    """(name, 32-byte key) of a vkey `<name>+<hex id>+<base64(type || key)>` of type 0x04."""
    name, id_hex, encoded = vkey.strip().split("+", 2)
    raw = base64.b64decode(encoded)
    assert raw[0] == 0x04, "a cosignature vkey has signature type 0x04"
    assert bytes.fromhex(id_hex) == key_id(name, 0x04, raw[1:])
    return name, raw[1:]


def cosignature_timestamp(
    checkpoint_text: str, line: str, name: str, public_key: bytes
) -> int | None:
    """The timestamp of `line` if it is a valid cosignature by (name, public_key) over the
    checkpoint text; None if it is by another key or does not verify."""
    assert line.endswith("\n")
    dash, line_name, encoded = line[:-1].split(" ")
    assert dash == EM_DASH
    blob = base64.b64decode(encoded, validate=True)
    if line_name != name or blob[:4] != key_id(name, 0x04, public_key):
        return None
    if len(blob) != 4 + 8 + 64:
        return None
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            blob[12:], signed_message(checkpoint_text, timestamp)
        )
    except InvalidSignature:
        return None
    return int(timestamp)


def cosign(checkpoint_text: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """A cosignature line made by the spec, to check the gateway's verifier with."""
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    blob = key_id(name, 0x04, public) + struct.pack(">Q", timestamp)
    blob += private_key.sign(signed_message(checkpoint_text, timestamp))
    return f"{EM_DASH} {name} {base64.b64encode(blob).decode()}\n"


def note_text_and_lines(note: str) -> tuple[str, list[str]]:
    """Split a signed note at its last blank line: (text, signature lines)."""
    split = note.rindex("\n\n")
    return note[: split + 1], [line + "\n" for line in note[split + 2 :].split("\n") if line]
