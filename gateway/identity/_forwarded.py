"""Client certificates forwarded by a TLS-terminating proxy.

Two header formats are read: Envoy's ``x-forwarded-client-cert`` (XFCC: one element
of ``key=value`` pairs, the certificate URL-encoded in ``Cert="..."`` and optionally the
full chain in ``Chain="..."``), and a URL-encoded PEM as nginx's
``$ssl_client_escaped_cert``. The header is read only when the peer address is a
trusted proxy; the certificate is then verified by the gateway itself.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import unquote

from gateway.identity._errors import AuthenticationError
from gateway.identity._lru import LruCache

MAX_HEADER_BYTES = 65536
_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyAddresses:
    """Answers "is this peer a trusted proxy?", remembering recent answers."""

    def __init__(self, networks: Sequence[Network]) -> None:
        self._networks = tuple(networks)
        self._answers: LruCache[str, bool] = LruCache(1024)

    def trusts(self, client: object) -> bool:
        """True if the ASGI `client` (host, port) is inside a trusted network."""
        if not isinstance(client, list | tuple) or not client or not isinstance(client[0], str):
            return False
        host = client[0]
        answer = self._answers.get(host)
        if answer is None:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                answer = False
            else:
                if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                    address = address.ipv4_mapped
                answer = any(address in network for network in self._networks)
            self._answers.put(host, answer)
        return answer


def parse_forwarded_certificate(value: bytes, header_format: str) -> tuple[str, ...]:
    """The leaf-first PEM chain carried by a forwarded-certificate header value."""
    if len(value) > MAX_HEADER_BYTES:
        raise AuthenticationError("cert.malformed")
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AuthenticationError("cert.malformed") from exc
    if header_format == "xfcc":
        text = _xfcc_certificate(text)
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise AuthenticationError("cert.malformed") from exc
    return _pem_blocks(decoded)


def _xfcc_certificate(text: str) -> str:
    elements = _split_outside_quotes(text, ",")
    if len(elements) != 1:
        # Several elements mean several hops; which one is the client is ambiguous.
        raise AuthenticationError("cert.malformed")
    pairs: dict[str, str] = {}
    for pair in _split_outside_quotes(elements[0], ";"):
        key, separator, raw = pair.partition("=")
        if not separator:
            raise AuthenticationError("cert.malformed")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = raw[1:-1].replace('\\"', '"')
        pairs[key.strip().lower()] = raw
    certificate = pairs.get("chain") or pairs.get("cert")
    if not certificate:
        raise AuthenticationError("cert.malformed")
    return certificate


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    escaped = False
    for character in text:
        if escaped:
            escaped = False
        elif character == "\\" and quoted:
            escaped = True
        elif character == '"':
            quoted = not quoted
        elif character == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(character)
    if quoted:
        raise AuthenticationError("cert.malformed")
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _pem_blocks(text: str) -> tuple[str, ...]:
    blocks = tuple(_PEM_BLOCK.findall(text))
    if not blocks:
        raise AuthenticationError("cert.malformed")
    return blocks
