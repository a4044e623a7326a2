"""Client certificates forwarded by a TLS-terminating proxy.

Two header formats are read, only from a trusted proxy address, and the certificate is
then verified by the gateway itself:

``xfcc``
    Envoy's ``x-forwarded-client-cert``, read strictly by its grammar: exactly one
    element (a ``,`` outside quotes means several hops: refused); pairs separated by
    ``;``; each pair ``key=value`` with the key a token (RFC 9110 ``tchar``) and the
    value either a complete double-quoted string (``\\"`` escapes) or an unquoted run of
    visible characters without ``"``, ``,`` or ``;``. No whitespace outside quotes, no
    empty pair, only printable ASCII. Keys are compared case-insensitively and none may
    appear twice in the element, except ``DNS`` (Envoy writes one per DNS SAN; the
    gateway never reads it). Values are percent-decoded only after this split, so an
    encoded ``%22`` or ``%3B`` can never become a delimiter. ``Cert`` holds exactly one
    certificate; ``Chain``, when present, must begin with that same certificate (DER);
    ``Hash``, when present, must be the SHA-256 of it. Other keys are ignored once the
    element is well formed.

``pem-urlencoded``
    a URL-encoded PEM such as nginx's ``$ssl_client_escaped_cert``: exactly one
    certificate and nothing else but whitespace.

Anything else is ``cert.malformed``, and nothing of a malformed header is believed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from gateway.identity._errors import AuthenticationError
from gateway.identity._lru import LruCache

MAX_HEADER_BYTES = 65536
REPEATABLE_KEYS = frozenset({"dns"})
"""XFCC keys that may appear more than once in an element (compared in lower case)."""

_MALFORMED = "cert.malformed"
_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]"
# A quoted string: printable ASCII but '"' and '\', or a quoted-pair '\' + printable.
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
# An unquoted value: visible ASCII but '"', ',' and ';' (so also no whitespace).
_UNQUOTED = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x7e]*"
_PAIR = re.compile(rf"({_TCHAR}+)=({_QUOTED}|{_UNQUOTED})")
_QUOTED_PAIR = re.compile(r"\\([\x20-\x7e])")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PEM = re.compile(
    r"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----", re.ASCII
)
_SPACE = re.compile(r"\s*", re.ASCII)
_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_OWS = " \t"

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


@dataclass(frozen=True, slots=True)
class XfccElement:
    """One parsed XFCC element: its pairs as written (values unquoted, still
    percent-encoded) and the certificate chain it carries, leaf first, as DER."""

    pairs: tuple[tuple[str, str], ...]
    chain: tuple[bytes, ...]

    @property
    def certificate(self) -> bytes:
        """The client certificate (DER)."""
        return self.chain[0]

    def serialise(self) -> str:
        """The element written back in Envoy's syntax, every value quoted."""
        return ";".join(f"{key}={quote_value(value)}" for key, value in self.pairs)


def quote_value(value: str) -> str:
    """`value` as an XFCC quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_forwarded_certificate(value: bytes, header_format: str) -> tuple[bytes, ...]:
    """The leaf-first DER chain carried by a forwarded-certificate header value."""
    if len(value) > MAX_HEADER_BYTES:
        raise AuthenticationError(_MALFORMED)
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AuthenticationError(_MALFORMED) from exc
    text = text.strip(_OWS)  # optional whitespace around a field value (RFC 9110)
    if header_format == "xfcc":
        return parse_xfcc(text).chain
    certificates = _certificates(_percent_decode(text))
    if len(certificates) != 1:
        raise AuthenticationError(_MALFORMED)
    return certificates


def parse_xfcc(text: str) -> XfccElement:
    """Parse one XFCC element strictly (see the module docstring); AuthenticationError
    with reason ``cert.malformed`` for anything else."""
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    position, end = 0, len(text)
    while True:
        match = _PAIR.match(text, position)
        if match is None:
            raise AuthenticationError(_MALFORMED)
        key, raw = match.group(1), match.group(2)
        folded = key.lower()
        if folded in seen and folded not in REPEATABLE_KEYS:
            raise AuthenticationError(_MALFORMED)
        seen.add(folded)
        if raw.startswith('"'):
            raw = _QUOTED_PAIR.sub(r"\1", raw[1:-1])
        pairs.append((key, raw))
        position = match.end()
        if position == end:
            break
        if text[position] != ";":  # ',' (another hop), whitespace, or junk after a value
            raise AuthenticationError(_MALFORMED)
        position += 1
    return XfccElement(tuple(pairs), _chain(pairs))


def _chain(pairs: list[tuple[str, str]]) -> tuple[bytes, ...]:
    values = {key.lower(): value for key, value in pairs if key.lower() not in REPEATABLE_KEYS}
    cert = values.get("cert")
    chain_text = values.get("chain")
    chain: tuple[bytes, ...] | None = None
    if chain_text is not None:
        chain = _certificates(_percent_decode(chain_text))
    if cert is not None:
        leaf = _certificates(_percent_decode(cert))
        if len(leaf) != 1:
            raise AuthenticationError(_MALFORMED)
        if chain is not None and chain[0] != leaf[0]:
            raise AuthenticationError(_MALFORMED)
        chain = chain if chain is not None else leaf
    if chain is None:
        raise AuthenticationError(_MALFORMED)
    digest = values.get("hash")
    if digest is not None and not (
        _HEX.fullmatch(digest)
        and hmac.compare_digest(digest.lower(), hashlib.sha256(chain[0]).hexdigest())
    ):
        raise AuthenticationError(_MALFORMED)
    return chain


def _percent_decode(text: str) -> str:
    if _STRAY_PERCENT.search(text):
        raise AuthenticationError(_MALFORMED)
    return _PERCENT.sub(lambda match: chr(int(match.group(1), 16)), text)


def _certificates(text: str) -> tuple[bytes, ...]:
    """The DER certificates of one or more PEM blocks with only whitespace around them."""
    certificates: list[bytes] = []
    position = _SPACE.match(text).end()  # type: ignore[union-attr]  # `\s*` always matches
    while position < len(text):
        match = _PEM.match(text, position)
        if match is None:
            raise AuthenticationError(_MALFORMED)
        body = "".join(match.group(1).split())
        try:
            der = base64.b64decode(body, validate=True)
            # One certificate and nothing after it: trailing bytes are a parse error.
            x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError) as exc:
            raise AuthenticationError(_MALFORMED) from exc
        if base64.b64encode(der).decode("ascii") != body:
            raise AuthenticationError(_MALFORMED)  # non-canonical base64: excess padding
        certificates.append(der)
        position = _SPACE.match(text, match.end()).end()  # type: ignore[union-attr]
    if not certificates:
        raise AuthenticationError(_MALFORMED)
    return tuple(certificates)
