"""How an upstream checks the gateway's identity assertion: the demo upstream's checker.

An upstream that trusts the gateway's word about the caller must check that word on
every request: the `x-gateway-assertion` JWT is signed by a key in the gateway's JWKS
(fetched from `/.well-known/jwks.json`, or read from a file), names this upstream in
`aud`, has not expired, and has not been seen before. Anything else is refused with 401,
as a forged, expired or replayed assertion must be.
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.demo._upstream_replies import DemoRequestError

HEADER = b"x-gateway-assertion"
_REFETCH_AFTER = 30.0


class AssertionCheck:
    """Verifies assertions for one upstream (`audience`), with keys from a JWKS URL or file."""

    def __init__(
        self,
        audience: str,
        *,
        jwks_url: str | None = None,
        jwks_file: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        leeway: int = 5,
    ) -> None:
        if (jwks_url is None) == (jwks_file is None):
            raise ValueError("give either a JWKS URL or a JWKS file")
        self.audience = audience
        self.jwks_url = jwks_url
        self.ssl_context = ssl_context
        self.clock = clock
        self.leeway = leeway
        self._keys: KeySet | None = None
        self._fetched = float("-inf")
        if jwks_file is not None:
            self._keys = KeySet.import_key_set(json.loads(jwks_file.read_text("utf-8")))
        self._seen: dict[str, float] = {}

    async def verify(self, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        """The claims of the request's assertion; DemoRequestError(401) when not valid."""
        values = [value for name, value in headers if name.lower() == HEADER]
        if len(values) != 1:
            raise _refused("missing or repeated")
        token = values[0].decode("latin-1")
        keys = await self._key_set(token)
        try:
            decoded = jwt.decode(token, keys, algorithms=["ES256"])
        except (JoseError, ValueError) as exc:
            raise _refused("bad signature or form") from exc
        now = self.clock()
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(now),
            leeway=self.leeway,
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(decoded.claims)
        except JoseError as exc:
            raise _refused(f"claims not valid ({exc.error})") from exc
        claims = decoded.claims
        if claims["exp"] - claims["iat"] > 60 or claims["iat"] > now + self.leeway:
            raise _refused("lifetime too long or issued in the future")
        self._remember(str(claims["jti"]), float(claims["exp"]), now)
        return claims

    def _remember(self, token_id: str, expires: float, now: float) -> None:
        """Refuse an assertion seen before (a replay to this upstream), until it expires."""
        if len(self._seen) > 10_000:
            self._seen = {k: v for k, v in self._seen.items() if v + self.leeway >= now}
        if token_id in self._seen:
            raise _refused("replayed")
        self._seen[token_id] = expires

    async def _key_set(self, token: str) -> KeySet:
        if self.jwks_url is None:
            assert self._keys is not None
            return self._keys
        key_id = _key_id(token)
        known = self._keys is not None and any(key.kid == key_id for key in self._keys.keys)
        if not known and self.clock() - self._fetched >= _REFETCH_AFTER:
            self._fetched = self.clock()
            verify: ssl.SSLContext | bool = self.ssl_context or True
            try:
                async with httpx.AsyncClient(verify=verify, timeout=5) as client:
                    response = await client.get(self.jwks_url)
                    response.raise_for_status()
                    self._keys = KeySet.import_key_set(response.json())
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                raise _refused("the gateway's keys could not be fetched") from exc
        if self._keys is None:
            raise _refused("no keys")
        return self._keys


def _key_id(token: str) -> str | None:
    try:
        header = jws.extract_compact(token.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeEncodeError):
        return None
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def _refused(why: str) -> DemoRequestError:
    return DemoRequestError(401, f"Identity assertion refused: {why}.")


def assertion_check(args: argparse.Namespace, clock: Callable[[], float]) -> AssertionCheck | None:
    """The checker the options ask for; ValueError naming the option when they disagree."""
    if args.assertion_audience is None:
        if args.assertion_jwks is not None or args.assertion_ca is not None:
            raise ValueError("--assertion-jwks and --assertion-ca need --assertion-audience")
        return None
    if args.assertion_jwks is None:
        raise ValueError("--assertion-audience needs --assertion-jwks (a URL or a file)")
    source: str = args.assertion_jwks
    if source.startswith(("https://", "http://")):
        context = (
            ssl.create_default_context(cafile=args.assertion_ca) if args.assertion_ca else None
        )
        return AssertionCheck(
            args.assertion_audience, jwks_url=source, ssl_context=context, clock=clock
        )
    if args.assertion_ca is not None:
        raise ValueError("--assertion-ca applies to a JWKS URL, not a file")
    return AssertionCheck(args.assertion_audience, jwks_file=Path(source), clock=clock)
