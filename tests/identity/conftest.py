"""Fixtures for identity tests: a fake identity provider over real HTTP, and a test PKI.

Keys and certificates are generated once per test session and never written to the repo.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Section
from gateway.identity import Authenticator, IdentitySettings
from gateway.identity.pki import init_ca, issue_client, issue_server
from tests.idp import AUDIENCE, ISSUER, FakeIdentityProvider, SigningKey, make_signing_keys

# One instant for a whole session: tokens are made relative to it and `now` is passed in.
NOW = float(int(time.time()))


@pytest.fixture(scope="session")
def signing_keys() -> dict[str, SigningKey]:
    return make_signing_keys()


@pytest.fixture
async def idp(signing_keys: dict[str, SigningKey]) -> AsyncIterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider(signing_keys, now=NOW)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


@dataclass(frozen=True)
class Pki:
    """Session test PKI: a trusted CA `agency`, an untrusted CA `rogue`, and certificates."""

    root: Path
    agency: Path
    rogue: Path
    alice: Path
    alice_key: Path
    bob: Path
    bob_key: Path
    mallory: Path
    expired: Path
    server: Path
    server_key: Path

    def pem(self, path: Path) -> str:
        return path.read_text()

    def thumbprint(self, path: Path) -> str:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        digest = certificate.fingerprint(hashes.SHA256())
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("identity-pki")
    agency = init_ca(root / "agency", "Test Agency CA")
    rogue = init_ca(root / "rogue", "Rogue CA")
    alice, alice_key = issue_client(
        root / "agency",
        root / "alice",
        common_name="alice",
        organisation="US CAISI",
        units=["evaluator", "red-team"],
        citizenships=["USA", "FR"],
        residences=["D"],
    )
    bob, bob_key = issue_client(
        root / "agency", root / "bob", common_name="bob", organisation="US CAISI"
    )
    mallory, _ = issue_client(
        root / "rogue", root / "mallory", common_name="alice", organisation="US CAISI"
    )
    expired, _ = issue_client(
        root / "agency",
        root / "expired",
        common_name="old",
        organisation="US CAISI",
        not_before=datetime.fromtimestamp(NOW, UTC) - timedelta(days=10),
        days=1,
    )
    server, server_key = issue_server(root / "agency", root / "server", ["127.0.0.1"])
    return Pki(
        root, agency, rogue, alice, alice_key, bob, bob_key, mallory, expired, server, server_key
    )


def identity_settings(data: Mapping[str, Any], base: Path | None = None) -> IdentitySettings:
    return IdentitySettings.from_section(Section(dict(data), "test.yaml", "identity", base))


def issuer_config(idp: FakeIdentityProvider, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "id": "agency-idp",
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "jwks_uri": f"{idp.base_url}/jwks",
        "algorithms": ["RS256", "ES256", "EdDSA"],
        "claims": {
            "organisation": "org",
            "roles": "roles",
            "nationalities": "verified_claims.claims.nationalities",
            "residences": "verified_claims.claims.residences",
        },
    }
    config.update(overrides)
    return config


def bearer_scope(token: str | None, **extra: Any) -> dict[str, Any]:
    headers = [(b"host", b"gateway"), (b"accept", b"application/json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "client": ("203.0.113.9", 50000),
        "headers": headers,
    }
    scope.update(extra)
    return scope


@pytest.fixture
async def make_authenticator() -> AsyncIterator[Callable[[IdentitySettings], Authenticator]]:
    clients: list[httpx.AsyncClient] = []

    def make(settings: IdentitySettings) -> Authenticator:
        client = httpx.AsyncClient(timeout=2.0)
        clients.append(client)
        return Authenticator(settings, http=client)

    yield make
    for client in clients:
        await client.aclose()


def decode_segment(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
