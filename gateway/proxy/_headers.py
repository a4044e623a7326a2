"""Header hygiene in both directions.

Nothing that authenticates the caller travels upstream, and nothing that authenticates
the gateway (or describes a hop) travels back to the caller. Nothing a caller sends looks
to the upstream like something the gateway vouched for: the gateway's own `x-gateway-*`
namespace and the whole family of forwarding and identity headers that proxies and
identity-aware front ends set (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`, `Remote-User`,
`X-SSL-Client-*`, `X-Amzn-Oidc-*`, ...) are dropped, then the gateway sets
`X-Forwarded-For`, `-Proto` and `-Host` itself.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.config import Section

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

# Forwarding and identity headers that front ends set and upstreams believe: exact names.
IDENTITY_HEADERS = frozenset(
    {
        b"forwarded",
        b"x-forwarded",  # the pre-RFC 7239 single header
        b"x-real-ip",
        b"client-ip",
        b"true-client-ip",
        b"x-cluster-client-ip",
        b"x-originating-ip",
        b"x-proxyuser-ip",
        b"fastly-client-ip",
        b"cf-connecting-ip",
        b"cf-connecting-ipv6",
        b"cf-ipcountry",
        b"x-azure-clientip",
        b"x-azure-socketip",
        b"x-user",
        b"x-email",
        b"x-groups",
        b"x-username",
        b"x-userid",
        b"x-principal",
        b"x-preferred-username",
        b"x-id-token",
        b"x-access-token",
        b"x-userinfo",
        b"x-endpoint-api-userinfo",
        b"x-apigateway-api-userinfo",
        b"x-anonymous-consumer",
        b"x-arr-clientcert",  # Azure Application Request Routing
        b"gap-auth",  # oauth2-proxy's older name
        b"teleport-jwt-assertion",
    }
)
# ... and families, by prefix (open-ended: every member a front end may add later).
IDENTITY_PREFIXES = (
    b"x-gateway-",  # the gateway's own namespace
    b"x-forwarded-",
    b"x-original-",
    b"x-client-",
    b"client-cert",  # RFC 9440: Client-Cert and Client-Cert-Chain
    b"x-ssl-",
    b"ssl-client-",
    b"x-tls-client-",
    b"x-mtls-",
    b"x-spiffe-",
    b"remote-",  # Remote-User, -Groups, -Email, -Name (Authelia, Authentik, ...)
    b"x-auth-",  # x-auth-user, x-auth-email, oauth2-proxy's x-auth-request-*
    b"x-authenticated-",
    b"x-principal-",
    b"x-jwt-",
    b"x-oidc-",
    b"oidc-claim-",  # Apache mod_auth_openidc
    b"x-saml-",
    b"x-amzn-oidc-",  # AWS ALB
    b"x-amzn-mtls-",
    b"x-goog-authenticated-user-",  # Google IAP
    b"x-goog-iap-",
    b"x-appengine-",
    b"x-ms-client-principal",  # Azure App Service authentication
    b"x-ms-token-",
    b"cf-access-",  # Cloudflare Access
    b"cloudfront-viewer-",
    b"x-remote-",  # Kubernetes authenticating proxy
    b"x-user-",
    b"x-pomerium-",
    b"x-authentik-",
    b"x-vouch-",
    b"x-webauth-",
    b"x-consumer-",  # Kong
    b"x-credential-",
    b"x-envoy-",
    b"tailscale-user-",
)

_NOT_RETURNED = HOP_BY_HOP | {
    b"set-cookie",
    b"www-authenticate",
    b"x-request-id",
    b"server",
    b"date",
    b"content-length",
}

_UNKNOWN = object()
_MAX_KNOWN = 1024

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


@dataclass(frozen=True, slots=True)
class InboundHeaders:
    """Which request headers never reach an upstream beyond credentials and hop-by-hop:
    exact (lower-case) names and name prefixes. The default is the identity family above.
    """

    names: frozenset[bytes] = IDENTITY_HEADERS
    prefixes: tuple[bytes, ...] = IDENTITY_PREFIXES
    # Each name seen: its decoded form if it may go upstream, else None. Callers send the
    # same few names on every request, so most headers cost one dict lookup; bounded.
    _known: dict[bytes, str | None] = field(default_factory=dict, compare=False, repr=False)

    def forwarded_name(self, name: bytes) -> str | None:
        """`name` decoded when a request header so named may reach an upstream, else None
        (ignoring the names a request's own `Connection` header declares)."""
        known = self._known.get(name, _UNKNOWN)
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
        dropped = (
            name in _NOT_FORWARDED
            or name in self.names
            # Underscores: servers behind us may read x_api_key as x-api-key (CGI folds
            # both to one name), so drop what the lists cannot recognise, as nginx does.
            or b"_" in name
            or name.startswith(self.prefixes)
        )
        decided = None if dropped else name.decode("latin-1")
        if len(self._known) < _MAX_KNOWN:
            self._known[name] = decided
        return decided

    def extended(self, patterns: Iterable[str]) -> InboundHeaders:
        """These plus `patterns`: header names, or prefixes written with a final `*`."""
        names, prefixes = set(self.names), list(self.prefixes)
        for pattern in patterns:
            text = pattern.strip().lower().encode("latin-1")
            if text.endswith(b"*"):
                prefixes.append(text[:-1])
            else:
                names.add(text)
        return InboundHeaders(frozenset(names), tuple(dict.fromkeys(prefixes)))

    @classmethod
    def from_section(cls, section: Section) -> InboundHeaders:
        """The default list extended by the `forwarding` section's `drop_request_headers`."""
        section.reject_unknown("drop_request_headers")
        patterns: list[str] = section.strings("drop_request_headers", [])
        for pattern in patterns:
            if not _PATTERN.fullmatch(pattern):
                section.fail(
                    "drop_request_headers",
                    f"{pattern!r} is not a header name (or a prefix ending in '*')",
                )
        return cls().extended(patterns)


_PATTERN = re.compile(r"[!#$%&'+.^_`|~0-9A-Za-z-]+\*?")
# A Host worth repeating upstream: a name or an IP literal, and a port.
_HOST = re.compile(rb"(?:[A-Za-z0-9][A-Za-z0-9.-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


def upstream_headers(
    headers: list[tuple[bytes, bytes]],
    request_id: str,
    dropped: InboundHeaders | None = None,
    *,
    client_address: str | None = None,
    scheme: str = "https",
) -> dict[str, str]:
    """The caller's headers as they may reach the upstream (credential not yet added),
    with the gateway's own `x-forwarded-for` (`client_address`, the peer the gateway
    saw), `x-forwarded-proto` (`scheme`) and `x-forwarded-host` (the caller's `Host`).
    """
    out: dict[str, str] = {}
    host = None
    connection: list[bytes] = []
    forwarded_name = (dropped or InboundHeaders()).forwarded_name
    for name, value in headers:
        decoded = forwarded_name(name)
        if decoded is not None:
            out[decoded] = value.decode("latin-1")
        elif name == b"host":
            host = value
        elif name == b"connection":
            connection.append(value)
    for value in connection:
        # Names the caller declared hop-by-hop (RFC 9110 section 7.6.1) stay here too.
        for token in value.split(b","):
            out.pop(token.strip().lower().decode("latin-1"), None)
    out["x-request-id"] = request_id
    out["accept-encoding"] = "identity"
    if client_address is not None:
        out["x-forwarded-for"] = client_address
    out["x-forwarded-proto"] = scheme
    if host is not None and _HOST.fullmatch(host):
        out["x-forwarded-host"] = host.decode("ascii")
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
