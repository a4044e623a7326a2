"""The identity assertion: who the caller is and what was decided, signed for one upstream.

For an upstream with `identity_assertion: true`, every forwarded request carries a JWT in
the `x-gateway-assertion` header (the shape of Pomerium's `X-Pomerium-Jwt-Assertion`):
ES256-signed with the gateway's assertion key, valid for at most 60 seconds, addressed to
that upstream alone (`aud` is its name), identified by a fresh random `jti` (the request id,
which the caller chooses and may reuse on a retry, is its own claim). Its claims
are the request record's identity and decision fields plus the record's audit index, so
an upstream can check a request against the audit log. The public key is served as a JWKS
at `/.well-known/jwks.json`.

The header and the key id are fixed per key, so the compact JWS is put together here
(base64url of the constant header, of the claims, of the signature) rather than through
joserfc's generic encoder, which costs more per call than the signature itself; joserfc
loads and exports the key, and verifies the result in the tests and the demo upstream.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey

from gateway.config import Section

ASSERTION_HEADER = "x-gateway-assertion"
ALGORITHM = "ES256"
MAX_LIFETIME_SECONDS = 60
SIGNING_KEY_FILE = "assertion-signing.key"
PUBLIC_KEY_FILE = "assertion-jwks.json"


@dataclass(frozen=True, slots=True)
class AssertionSettings:
    """The top-level `identity_assertion` section: the key and how assertions look."""

    key: ECKey = field(repr=False)
    issuer: str
    lifetime_seconds: int = 30

    @classmethod
    def from_section(cls, section: Section, default_issuer: str) -> AssertionSettings | None:
        """None when the section is absent (no upstream may then ask for assertions)."""
        if not section.data:
            return None
        section.reject_unknown("signing_key", "issuer", "lifetime_seconds")
        path = section.path_value("signing_key")
        try:
            key = load_signing_key(path)
        except (OSError, ValueError) as exc:
            section.fail("signing_key", f"not a P-256 private key in PEM ({exc})")
        lifetime = section.integer("lifetime_seconds", 30, minimum=1)
        if lifetime > MAX_LIFETIME_SECONDS:
            section.fail("lifetime_seconds", f"at most {MAX_LIFETIME_SECONDS} seconds")
        issuer = section.string("issuer", default_issuer)
        return cls(key=key, issuer=issuer, lifetime_seconds=lifetime)


def load_signing_key(path: Path) -> ECKey:
    """An ES256 private key from a PEM file; ValueError when it is anything else."""
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        raise ValueError("expected an EC P-256 key")
    return ECKey.import_key(private)


def generate_signing_key(directory: Path) -> tuple[Path, Path]:
    """Write a new assertion key (PEM, mode 0600) and its public JWKS; never overwrites."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signer = AssertionSigner(ECKey.import_key(private), issuer="-")
    directory.mkdir(parents=True, exist_ok=True)
    key_path, public_path = directory / SIGNING_KEY_FILE, directory / PUBLIC_KEY_FILE
    for path in (key_path, public_path):
        if path.exists():
            raise FileExistsError(f"key file already exists: {path.name}")
    _write_new(key_path, pem, 0o600)
    _write_new(public_path, orjson.dumps(signer.jwks(), option=orjson.OPT_INDENT_2), 0o644)
    return key_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


class AssertionSigner:
    """Signs assertions with one ES256 key; `jwks()` is what verifiers fetch."""

    __slots__ = ("_header", "_private", "issuer", "key", "key_id", "lifetime_seconds")

    def __init__(self, key: ECKey, issuer: str, lifetime_seconds: int = 30) -> None:
        self.key = key
        self.issuer = issuer
        self.lifetime_seconds = lifetime_seconds
        self.key_id = key.thumbprint()
        private = key.private_key
        if not isinstance(private, ec.EllipticCurvePrivateKey):
            raise ValueError("an assertion key must be a private EC P-256 key")
        self._private = private
        header = {"alg": ALGORITHM, "kid": self.key_id, "typ": "JWT"}
        self._header = _base64url(orjson.dumps(header)) + b"."

    @classmethod
    def from_settings(cls, settings: AssertionSettings) -> AssertionSigner:
        return cls(settings.key, settings.issuer, settings.lifetime_seconds)

    def sign(self, claims: dict[str, Any], audience: str, now: float) -> str:
        """A compact JWS of `claims` for `audience`, issued at `now` (epoch seconds)."""
        issued = int(now)
        # The registered claims last: nothing in `claims` may stretch the lifetime or
        # change the audience.
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": audience,
            "iat": issued,
            "exp": issued + self.lifetime_seconds,
        }
        signing_input = self._header + _base64url(orjson.dumps(payload))
        r, s = decode_dss_signature(self._private.sign(signing_input, _ECDSA))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return (signing_input + b"." + _base64url(signature)).decode("ascii")

    def jwks(self) -> dict[str, Any]:
        """The public key as a JSON Web Key Set."""
        public = self.key.as_dict(private=False)
        return {"keys": [{**public, "kid": self.key_id, "alg": ALGORITHM, "use": "sig"}]}


_ECDSA = ec.ECDSA(hashes.SHA256())


def _base64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def assertion_claims(record: dict[str, Any], audit_index: int) -> dict[str, Any]:
    """The claims about one request, from its (committed) request record.

    Only trusted attributes are asserted: an upstream must never act on a nationality or
    organisation that the policy would not.
    """
    principal = record["principal"] or {}
    return {
        "sub": principal.get("subject"),
        # 128 random bits: unique per assertion even when a caller retries with the same
        # X-Request-ID, so a verifier's replay cache refuses only a real replay.
        "jti": secrets.token_urlsafe(16),
        "subject_issuer": principal.get("issuer"),
        "organisation": principal.get("organisation"),
        "nationalities": [
            {"value": item["value"], "source": item["source"]}
            for item in principal.get("nationalities", ())
            if item.get("trusted")
        ],
        "roles": principal.get("roles", []),
        "auth_methods": principal.get("auth_methods", []),
        "model": record["model"],
        "reason": record["reason"],
        "grant_id": record["grant_id"],
        "request_id": record["request_id"],
        "audit_index": audit_index,
        "policy_version": record["policy_version"],
    }
