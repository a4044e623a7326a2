"""Identity hot-path benchmark: prints p50/p99 microseconds per authenticate() call.

Cases: a repeated (cached) bearer token; a first RS256 verification (token cache miss,
JWKS already cached); a repeated client certificate from the ASGI TLS extension; the
same certificate forwarded by a trusted proxy in an XFCC header. The JWKS is served
in-process by an httpx.MockTransport, so no network is in the loop. Keys and
certificates are generated afresh in a temporary directory on every run.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.config import Section
from gateway.identity import Authenticator, IdentitySettings
from gateway.identity.pki import init_ca, issue_client

ISSUER = "https://idp.bench.example"
NOW = float(int(time.time()))


def _percentiles(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) / 1000, p99 / 1000


async def _measure(
    name: str, call: Callable[[int], Awaitable[Any]], iterations: int, warmup: int = 200
) -> None:
    for index in range(warmup):
        await call(index)
    samples = []
    clock = time.perf_counter_ns
    for index in range(warmup, warmup + iterations):
        start = clock()
        await call(index)
        samples.append(clock() - start)
    p50, p99 = _percentiles(samples)
    print(f"{name:<48} p50 {p50:8.1f} us   p99 {p99:8.1f} us   (n={iterations})")


def _scope(headers: list[tuple[bytes, bytes]], **extra: Any) -> dict[str, Any]:
    base = [(b"host", b"gateway"), (b"content-type", b"application/json"), (b"accept", b"*/*")]
    return {"type": "http", "client": ("10.0.0.5", 50000), "headers": base + headers, **extra}


async def main() -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "bench-1"})
    jwks = {"keys": [key.as_dict(private=False)]}
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=jwks))
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        ca = init_ca(root / "ca", "Bench CA")
        certificate, _ = issue_client(
            root / "ca", root / "alice", common_name="alice", organisation="Bench",
            units=["evaluator"], citizenships=["US", "FR"],
        )  # fmt: skip
        pem = certificate.read_text()
        settings = IdentitySettings.from_section(
            Section(
                {
                    "issuers": [
                        {
                            "id": "bench",
                            "issuer": ISSUER,
                            "audiences": ["gateway"],
                            "jwks_uri": f"{ISSUER}/jwks",
                            "claims": {"nationalities": "nationalities", "roles": "roles"},
                        }
                    ],
                    "certificate_authorities": [{"id": "bench", "bundle": str(ca)}],
                    "forwarded_certificate": {"trusted_proxies": ["10.0.0.0/24"]},
                },
                "bench",
                "identity",
            )
        )
        async with httpx.AsyncClient(transport=transport) as http:
            authenticator = Authenticator(settings, http=http)

            def token(jti: int) -> str:
                claims = {
                    "iss": ISSUER, "aud": "gateway", "sub": "alice", "jti": str(jti),
                    "iat": int(NOW), "exp": int(NOW) + 3600,
                    "nationalities": ["USA"], "roles": ["evaluator"],
                }  # fmt: skip
                return jwt.encode({"alg": "RS256", "kid": "bench-1"}, claims, key)

            cached = _scope([(b"authorization", f"Bearer {token(0)}".encode())])
            await authenticator.authenticate(cached, now=NOW)  # fills the JWKS cache
            await _measure(
                "bearer token, repeated (cached)",
                lambda _: authenticator.authenticate(cached, now=NOW),
                20000,
            )

            fresh = [
                _scope([(b"authorization", f"Bearer {token(i + 1)}".encode())]) for i in range(2200)
            ]
            await _measure(
                "bearer token, first RS256 verification",
                lambda i: authenticator.authenticate(fresh[i], now=NOW),
                2000,
            )

            direct = _scope(
                [], client=("203.0.113.7", 1), extensions={"tls": {"client_cert_chain": [pem]}}
            )
            await _measure(
                "client certificate, TLS extension, repeated",
                lambda _: authenticator.authenticate(direct, now=NOW),
                20000,
            )

            digest = x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256())
            xfcc = f'Hash={digest.hex()};Cert="{quote(pem, safe="")}";Subject="CN=alice"'
            forwarded = _scope([(b"x-forwarded-client-cert", xfcc.encode())])
            await _measure(
                "client certificate, forwarded XFCC, repeated",
                lambda _: authenticator.authenticate(forwarded, now=NOW),
                20000,
            )
            # A header never seen before: the strict XFCC parse (the chain cache misses).
            unseen = [
                _scope([(b"x-forwarded-client-cert", f"{xfcc};X-N={i}".encode())])
                for i in range(2200)
            ]
            await _measure(
                "client certificate, forwarded XFCC, first parse",
                lambda i: authenticator.authenticate(unseen[i], now=NOW),
                2000,
            )
            await authenticator.aclose()


if __name__ == "__main__":
    asyncio.run(main())
