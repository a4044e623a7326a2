"""Header hygiene in both directions.

Nothing that authenticates the caller travels upstream, and nothing that authenticates
the gateway (or describes a hop) travels back to the caller.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

# RFC 9110 §7.6.1 hop-by-hop fields, plus the pre-standard ones proxies still meet.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# The caller's credentials, and what the gateway sets itself.
_NOT_FORWARDED = HOP_BY_HOP | {
    b"authorization",
    b"cookie",
    b"x-api-key",
    b"api-key",
    b"host",
    b"content-length",
    b"accept-encoding",
    b"x-request-id",
    b"x-goog-api-key",
    b"x-forwarded-client-cert",
    b"x-ssl-client-cert",
    b"x-client-cert",
    b"ssl-client-cert",
    b"expect",
}

_NOT_RETURNED = HOP_BY_HOP | {
    b"set-cookie",
    b"www-authenticate",
    b"x-request-id",
    b"server",
    b"date",
    b"content-length",
}

_REQUEST_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when well-formed, else a new random one."""
    for name, value in headers:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return secrets.token_hex(16)


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Field names that a Connection header declares hop-by-hop (RFC 9110 §7.6.1)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def upstream_headers(
    headers: list[tuple[bytes, bytes]],
    request_id: str,
    extra_drop: frozenset[bytes] = frozenset(),
) -> dict[str, str]:
    """The caller's headers as they may reach the upstream (credential not yet added)."""
    declared = _connection_tokens(headers)
    out: dict[str, str] = {}
    for name, value in headers:
        if name in _NOT_FORWARDED or name in declared or name in extra_drop:
            continue
        if b"_" in name:
            # Servers behind us may read x_api_key as x-api-key (CGI folds both to one
            # name): drop what our deny-list could not recognise, as nginx does.
            continue
        out[name.decode("latin-1")] = value.decode("latin-1")
    out["x-request-id"] = request_id
    out["accept-encoding"] = "identity"
    return out


def client_headers(
    headers: Iterable[tuple[bytes, bytes]],
    request_id: bytes,
    secrets_to_hide: frozenset[bytes] = frozenset(),
) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers as they may reach the caller.

    `x-gateway-*` names are the gateway's own (grant headers): an upstream cannot set them.
    """
    pairs = [(name.lower(), value) for name, value in headers]
    declared = _connection_tokens(pairs)
    out = [
        (name, value)
        for name, value in pairs
        if name not in _NOT_RETURNED
        and name not in declared
        and not name.startswith(b"x-gateway-")
        and not any(secret in value for secret in secrets_to_hide)
    ]
    out.append((b"x-request-id", request_id))
    return out
