"""A small fake OpenID provider over real HTTP: discovery and a JWKS that tests can rotate.

It is the edge the gateway does not own; it signs real JWTs with real keys made per
test session.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.servers import serve_asgi

SigningKey = RSAKey | ECKey | OKPKey
AUDIENCE = "model-gateway"
ISSUER = "https://idp.agency.example"


def make_signing_keys() -> dict[str, SigningKey]:
    """Fresh keys: two RSA, one P-256, one Ed25519, named by their kid."""
    return {
        "rsa-1": RSAKey.generate_key(2048, parameters={"kid": "rsa-1"}),
        "rsa-2": RSAKey.generate_key(2048, parameters={"kid": "rsa-2"}),
        "ec-1": ECKey.generate_key("P-256", parameters={"kid": "ec-1"}),
        "ed-1": OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"}),
    }


class FakeIdentityProvider:
    """Serves OIDC discovery and a JWKS whose keys a test can rotate; counts JWKS fetches."""

    def __init__(
        self, keys: Mapping[str, SigningKey], *, issuer: str = ISSUER, now: float = 0.0
    ) -> None:
        self.keys = dict(keys)
        self.issuer = issuer
        self.now = now
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
        return JSONResponse({"issuer": self.issuer, "jwks_uri": f"{self.base_url}/jwks"})

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
        now: float | None = None,
    ) -> str:
        """A signed JWT with sensible valid claims, overridden by `claims`."""
        key = self.keys[kid]
        alg = algorithm or {"RSA": "RS256", "EC": "ES256", "OKP": "EdDSA"}[key.key_type]
        at = int(self.now if now is None else now)
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": at - 10,
            "exp": at + 600,
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
