"""Signing keys of one OIDC issuer: JWKS fetched over HTTP, cached with a TTL.

An unknown `kid` triggers at most one refresh per `refresh_interval_seconds`; an
unreachable issuer leaves the cached keys working until their TTL ends, after which
every token of that issuer fails closed with ``token.keys_unavailable``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.identity._errors import AuthenticationError
from gateway.identity._settings import IssuerSettings

VerificationKey = RSAKey | ECKey | OKPKey

MAX_DOCUMENT_BYTES = 1 << 20
MINIMUM_RSA_BITS = 2048
# After a failed fetch of expired keys, wait this long before trying again, so a dead
# issuer is not hammered once per request.
RETRY_SECONDS = 5.0


class KeySetUnavailable(Exception):
    """The JWKS (or discovery document) could not be fetched or read."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"key set unavailable: {reason}")


@dataclass(frozen=True, slots=True)
class _Entry:
    key: VerificationKey
    algorithms: frozenset[str]


@dataclass(frozen=True, slots=True)
class KeySet:
    """An immutable snapshot of an issuer's verification keys."""

    by_kid: Mapping[str, tuple[_Entry, ...]]
    without_kid: tuple[_Entry, ...]

    def find(self, kid: str | None, algorithm: str) -> VerificationKey | None:
        """The key for `kid` usable with `algorithm`; without a kid, the only such key."""
        if kid is not None:
            # Dictionary lookup only: a kid is never used to build a path, URL or query.
            for entry in self.by_kid.get(kid, ()):
                if algorithm in entry.algorithms:
                    return entry.key
            return None
        candidates = [
            entry.key
            for entries in (*self.by_kid.values(), self.without_kid)
            for entry in entries
            if algorithm in entry.algorithms
        ]
        return candidates[0] if len(candidates) == 1 else None


def parse_key_set(document: Any) -> KeySet:
    """Read a JWKS document, keeping only public signature keys of supported types."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeySetUnavailable("jwks.malformed")
    by_kid: dict[str, list[_Entry]] = {}
    without_kid: list[_Entry] = []
    for item in document["keys"]:
        entry = _entry(item)
        if entry is None:
            continue
        kid = item.get("kid")
        if isinstance(kid, str):
            by_kid.setdefault(kid, []).append(entry)
        else:
            without_kid.append(entry)
    return KeySet({k: tuple(v) for k, v in by_kid.items()}, tuple(without_kid))


def _entry(item: Any) -> _Entry | None:
    if not isinstance(item, dict) or "d" in item:  # never a private or symmetric key
        return None
    if item.get("use", "sig") != "sig":
        return None
    operations = item.get("key_ops")
    if operations is not None and (not isinstance(operations, list) or "verify" not in operations):
        return None
    kind = item.get("kty")
    try:
        key: VerificationKey
        if kind == "RSA":
            key = RSAKey.import_key(item)
            if key.raw_value.key_size < MINIMUM_RSA_BITS:
                return None
            algorithms = frozenset({"RS256", "PS256"})
        elif kind == "EC" and item.get("crv") == "P-256":
            key = ECKey.import_key(item)
            algorithms = frozenset({"ES256"})
        elif kind == "OKP" and item.get("crv") in ("Ed25519", "Ed448"):
            key = OKPKey.import_key(item)
            algorithms = frozenset({"EdDSA"})
        else:
            return None
    except (JoseError, ValueError, TypeError, KeyError):
        return None
    declared = item.get("alg")
    if declared is not None:
        algorithms = algorithms & {declared}
    return _Entry(key, algorithms) if algorithms else None


class KeySetCache:
    """The cached key set of one issuer, refreshed on TTL expiry or an unknown kid."""

    def __init__(self, issuer: IssuerSettings, http: httpx.AsyncClient) -> None:
        self._issuer = issuer
        self._http = http
        self._lock = asyncio.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = 0.0
        self._generation = 0
        self._last_forced = float("-inf")
        self._retry_at = float("-inf")
        self._jwks_uri = issuer.jwks_uri

    async def key_for(self, kid: str | None, algorithm: str, now: float) -> VerificationKey:
        """The verification key for a token header, fetching keys when needed."""
        keys = self._keys
        fetched = False
        if keys is None or now >= self._fetched_at + self._issuer.jwks_ttl_seconds:
            keys = await self._refresh(now, self._generation)
            fetched = True
        key = keys.find(kid, algorithm)
        if (
            key is None
            and not fetched
            and now - self._last_forced >= self._issuer.refresh_interval_seconds
        ):
            self._last_forced = now
            keys = await self._refresh(now, self._generation)
            key = keys.find(kid, algorithm)
        if key is None:
            raise AuthenticationError("token.unknown_key")
        return key

    async def _refresh(self, now: float, generation: int) -> KeySet:
        async with self._lock:
            current = self._keys
            fresh = current is not None and now < self._fetched_at + self._issuer.jwks_ttl_seconds
            if self._generation != generation and current is not None:
                return current  # another request refreshed while this one waited
            if now < self._retry_at:
                if fresh and current is not None:
                    return current
                raise AuthenticationError("token.keys_unavailable")
            try:
                keys = await self._fetch()
            except KeySetUnavailable as exc:
                self._retry_at = now + min(RETRY_SECONDS, self._issuer.refresh_interval_seconds)
                if fresh and current is not None:
                    return current  # keep serving cached keys until their TTL ends
                raise AuthenticationError("token.keys_unavailable") from exc
            self._keys = keys
            self._fetched_at = now
            self._generation += 1
            return keys

    async def _fetch(self) -> KeySet:
        if self._jwks_uri is None:
            discovery = self._issuer.discovery
            assert discovery is not None  # settings guarantee one of the two
            document = await self._get_json(discovery)
            if not isinstance(document, dict) or document.get("issuer") != self._issuer.issuer:
                raise KeySetUnavailable("discovery.issuer_mismatch")
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise KeySetUnavailable("discovery.malformed")
            self._jwks_uri = jwks_uri
        try:
            return parse_key_set(await self._get_json(self._jwks_uri))
        except KeySetUnavailable:
            if self._issuer.discovery is not None:
                self._jwks_uri = None  # discover again next time: the location may have moved
            raise

    async def _get_json(self, url: str) -> Any:
        try:
            async with self._http.stream("GET", url, headers={"accept": "application/json"}) as r:
                if r.status_code != 200:
                    raise KeySetUnavailable("http.status")
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise KeySetUnavailable("http.too_large")
        except httpx.HTTPError as exc:
            raise KeySetUnavailable("http.error") from exc
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise KeySetUnavailable("json.malformed") from exc
