"""Fixtures for identity tests: a fake identity provider over real HTTP, and a test PKI.

Keys and certificates are generated once per test session and never written to the repo.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config import Section
from gateway.identity import Authenticator, IdentitySettings
from gateway.identity.pki import init_ca, issue_client, issue_server
from tests.servers import serve_asgi

# One instant for a whole session: tokens are made relative to it and `now` is passed in.
NOW = float(int(time.time()))
ISSUER = "https://idp.agency.example"
AUDIENCE = "model-gateway"

SigningKey = RSAKey | ECKey | OKPKey


@pytest.fixture(scope="session")
def signing_keys() -> dict[str, SigningKey]:
    return {
        "rsa-1": RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
        "rsa-2": RSAKey.generate_key(2048, parameters={"kid": "rsa-2"}),
        "ec-1": ECKey.generate_key("P-256", parameters={"kid": "ec-1"}),
        "ed-1": OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}),
    }


class FakeIdentityProvider:
    """Serves OIDC discovery and a JWKS whose keys a test can rotate; counts JWKS fetches."""

    def __init__(self, keys: Mapping[str, SigningKey]) -> None:
        self.keys = dict(keys)
        self.published = ["rsa-1"]
        self.jwks_fetches = 0
        self.base_url = ""
        self._stack = contextlib.AsyncExitStack()
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
            ]
        )

    async def start(self) -> None:
        self.base_url = await self._stack.enter_async_context(serve_asgi(self.app))

    async def stop(self) -> None:
        await self._stack.aclose()

    async def _discovery(self, request: Request) -> JSONResponse:
        return JSONResponse({"issuer": ISSUER, "jwks_uri": f"{self.base_url}/jwks"})

    async def _jwks(self, request: Request) -> JSONResponse:
        self.jwks_fetches += 1
        return JSONResponse(
            {"keys": [self.keys[kid].as_dict(private=False) for kid in self.published]}
        )

    def token(
        self,
        claims: Mapping[str, Any] | None = None,
        *,
        kid: str = "rsa-1",
        algorithm: str | None = None,
        header: Mapping[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A signed JWT with sensible valid claims, overridden by `claims`."""
        key = self.keys[kid]
        alg = algorithm or {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[key.key_type]
        body: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": int(NOW) - 10,
            "exp": int(NOW) + 600,
            "org": "US CAISI",
            "roles": ["evaluator"],
            "verified_claims": {"claims": {"nationalities": ["USA"]}},
        }
        body.update(claims or {})
        for name in drop:
            body.pop(name, None)
        with warnings.catch_warnings():
            # joserfc warns that RFC 9864 deprecates the name "EdDSA"; issuers still use it.
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(
                {"alg": alg, "kid": kid, **(header or {})}, body, key, algorithms=[alg]
            )


@pytest.fixture
async def idp(signing_keys: dict[str, SigningKey]) -> AsyncIterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider(signing_keys)
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
