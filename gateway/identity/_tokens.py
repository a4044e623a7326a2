"""Bearer tokens: JWS signature (joserfc algorithms), issuer, audience, time and claims.

The issuer is chosen by the unverified `iss` claim only to pick its key set; the
signature is then verified over the exact bytes received, and only after that are
the decoded claims trusted. Verified tokens are cached by the SHA-256 of the token
until their `exp`, and never longer than the issuer's JWKS TTL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from gateway.identity._certificates import InvalidCodeHandler
from gateway.identity._errors import AuthenticationError
from gateway.identity._jwks import KeySetCache
from gateway.identity._lru import LruCache
from gateway.identity._settings import SUPPORTED_ALGORITHMS, IdentitySettings, IssuerSettings
from gateway.identity.countries import normalise_country
from gateway.identity.principal import Attribute, AttributeName, Credential

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_NUMBER = (int, float)


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """What a verified token says; `valid_from`/`cache_until` bound its cached reuse."""

    subject: str
    issuer: str
    source: str
    organisations: tuple[str, ...]
    attributes: frozenset[Attribute]
    token_id: str | None
    certificate_thumbprint: str | None
    valid_from: float
    cache_until: float
    credentials: frozenset[Credential]


class TokenVerifier:
    """Verifies JWT bearer tokens from the configured issuers."""

    def __init__(
        self,
        settings: IdentitySettings,
        http: httpx.AsyncClient,
        *,
        on_invalid_code: InvalidCodeHandler,
    ) -> None:
        self._skew = settings.clock_skew_seconds
        self._max_bytes = settings.max_token_bytes
        self._issuers: dict[str, IssuerSettings] = {i.issuer: i for i in settings.issuers}
        self._key_sets = {i.id: KeySetCache(i, http) for i in settings.issuers}
        self._cache: LruCache[bytes, TokenIdentity] = LruCache(settings.token_cache_size)
        self._on_invalid_code = on_invalid_code
        self._algorithms = {name: JWSRegistry.algorithms[name] for name in SUPPORTED_ALGORITHMS}

    async def verify(self, token: str, now: float) -> TokenIdentity:
        """Verify `token` at `now`, or raise AuthenticationError with a `token.*` reason."""
        if len(token) > self._max_bytes:
            raise AuthenticationError("token.too_large")
        try:
            digest = hashlib.sha256(token.encode("ascii")).digest()
        except UnicodeEncodeError as exc:
            raise AuthenticationError("token.malformed") from exc
        cached = self._cache.get(digest)
        if cached is not None:
            if cached.valid_from <= now < cached.cache_until:
                return cached
            self._cache.discard(digest)
        identity = await self._verify_uncached(token, now)
        self._cache.put(digest, identity)
        return identity

    async def _verify_uncached(self, token: str, now: float) -> TokenIdentity:
        # The algorithm is judged first, from the header alone: a token naming `none`,
        # an HMAC or any other algorithm outside the allow-list is refused as such,
        # whatever the shape of its payload and signature parts (empty, missing, extra).
        header = _header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str):
            raise AuthenticationError("token.malformed")  # RFC 7515: `alg` is required
        if algorithm not in self._algorithms:
            raise AuthenticationError("token.algorithm_not_allowed")
        claims, signing_input, signature = _split(token)
        if "crit" in header:
            raise AuthenticationError("token.malformed")  # no critical extension is understood
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthenticationError("token.malformed")
        issuer_claim = claims.get("iss")
        if not isinstance(issuer_claim, str):
            raise AuthenticationError("token.missing_claim")
        issuer = self._issuers.get(issuer_claim)
        if issuer is None:
            raise AuthenticationError("token.unknown_issuer")
        if algorithm not in issuer.algorithms:
            raise AuthenticationError("token.algorithm_not_allowed")
        key = await self._key_sets[issuer.id].key_for(kid, algorithm, now)
        try:
            valid = self._algorithms[algorithm].verify(signing_input, signature, key)
        except (JoseError, ValueError, TypeError) as exc:
            raise AuthenticationError("token.bad_signature") from exc
        if not valid:
            raise AuthenticationError("token.bad_signature")
        return self._identity(issuer, claims, now)

    def _identity(
        self, issuer: IssuerSettings, claims: Mapping[str, Any], now: float
    ) -> TokenIdentity:
        for name in issuer.required_claims:
            if claims.get(name) is None:
                raise AuthenticationError("token.missing_claim")
        skew = self._skew
        expires = _time_claim(claims, "exp")
        assert expires is not None  # `exp` is always a required claim
        not_before = _time_claim(claims, "nbf")
        issued_at = _time_claim(claims, "iat")
        if now > expires + skew:
            raise AuthenticationError("token.expired")
        if not_before is not None and now + skew < not_before:
            raise AuthenticationError("token.not_yet_valid")
        if issued_at is not None and now + skew < issued_at:
            raise AuthenticationError("token.issued_in_future")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience
        if not isinstance(audiences, list) or not any(
            isinstance(a, str) and a in issuer.audiences for a in audiences
        ):
            raise AuthenticationError("token.wrong_audience")
        mapping = issuer.claims
        subject = claim_at(claims, mapping.subject)
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("token.missing_claim")
        source = issuer.source
        organisations = _strings(claim_at(claims, mapping.organisation))
        attributes = {Attribute("organisation", value, source) for value in organisations}
        attributes.update(
            Attribute("role", value, source) for value in _strings(claim_at(claims, mapping.roles))
        )
        self._add_countries(
            attributes, "nationality", claim_at(claims, mapping.nationalities), source
        )
        self._add_countries(attributes, "residence", claim_at(claims, mapping.residences), source)
        token_id = claims.get("jti")
        return TokenIdentity(
            subject=subject,
            issuer=issuer.issuer,
            source=source,
            organisations=tuple(organisations),
            attributes=frozenset(attributes),
            token_id=token_id if isinstance(token_id, str) else None,
            certificate_thumbprint=_thumbprint(claims.get("cnf")),
            valid_from=max(
                (t for t in (not_before, issued_at) if t is not None), default=float("-inf")
            )
            - skew,
            cache_until=min(expires, now + issuer.jwks_ttl_seconds),
            credentials=frozenset({Credential(source, subject)}),
        )

    def _add_countries(
        self, attributes: set[Attribute], name: AttributeName, value: Any, source: str
    ) -> None:
        for code in _strings(value, on_invalid=lambda v: self._on_invalid_code(name, source, v)):
            normalised = normalise_country(code)
            if normalised is None:
                self._on_invalid_code(name, source, code)
            else:
                attributes.add(Attribute(name, normalised, source))


def claim_at(claims: Mapping[str, Any], path: str | None) -> Any:
    """The value at a dotted claim path; lists on the way are searched element by element.

    OpenID Connect for Identity Assurance allows `verified_claims` to be an object
    or an array of objects, so ``verified_claims.claims.nationalities`` collects the
    values of every element.
    """
    if path is None:
        return None
    values: list[Any] = [claims]
    for part in path.split("."):
        found: list[Any] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            found.extend(i[part] for i in items if isinstance(i, dict) and part in i)
        values = found
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    flattened: list[Any] = []
    for value in values:
        flattened.extend(value if isinstance(value, list) else [value])
    return flattened


def _strings(value: Any, on_invalid: Callable[[str], None] | None = None) -> list[str]:
    """A string or a list of strings, as a list; anything else counts as absent."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        result = [item for item in value if isinstance(item, str) and item]
        if on_invalid is not None and len(result) != len(value):
            on_invalid("<not a string>")
        return result
    if value is not None and on_invalid is not None:
        on_invalid("<not a string>")
    return []


def _time_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise AuthenticationError("token.malformed")
    return float(value)


def _thumbprint(confirmation: Any) -> str | None:
    if confirmation is None:
        return None
    if not isinstance(confirmation, dict):
        raise AuthenticationError("token.malformed")
    value = confirmation.get("x5t#S256")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise AuthenticationError("token.malformed")
    return value


def _header(token: str) -> dict[str, Any]:
    """The JOSE header: the first segment of a token with at least one '.'."""
    first, dot, _ = token.partition(".")
    if not dot or not _SEGMENT.fullmatch(first):
        raise AuthenticationError("token.malformed")
    try:
        header = json.loads(_decode(first))
    except (ValueError, RecursionError, binascii.Error) as exc:
        raise AuthenticationError("token.malformed") from exc
    if not isinstance(header, dict):
        raise AuthenticationError("token.malformed")
    return header


def _split(token: str) -> tuple[dict[str, Any], bytes, bytes]:
    """Claims, signing input and signature of a compact JWS (three non-empty segments)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise AuthenticationError("token.malformed")
    try:
        claims = json.loads(_decode(parts[1]))
        signature = _decode(parts[2])
    except (ValueError, RecursionError, binascii.Error) as exc:
        raise AuthenticationError("token.malformed") from exc
    if not isinstance(claims, dict):
        raise AuthenticationError("token.malformed")
    return claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def _decode(segment: str) -> bytes:
    if len(segment) % 4 == 1:
        raise ValueError("impossible base64url length")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
