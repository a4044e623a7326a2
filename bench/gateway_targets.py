"""The gateway as benchmark targets.

- `forwarding`: the forwarding stage alone (bench/forward_only.py), the issue's "no auth or
  audit" configuration, against the same passthrough baseline;
- `gateway`: the full pipeline as `gateway serve` runs it: a bearer token verified once and
  then served from the token cache, the example policy, strict audit (the request record
  durable in SQLite before forwarding, then the completion record), forwarding.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.audit import generate_keys

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "https://idp.bench.invalid"
ORIGIN = "bench.model-gateway.local/audit"


def _jwks_server(env, directory: Path, port: int):  # type: ignore[no-untyped-def]
    argv = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(directory),
    ]
    return env.spawn("jwks", argv, cpu=env.load_cpu)


@contextlib.contextmanager
def forwarding(env):  # type: ignore[no-untyped-def]
    from harness import Endpoint, free_port

    port = free_port()
    argv = [
        sys.executable,
        str(ROOT / "bench" / "forward_only.py"),
        "--port",
        str(port),
        "--upstream",
        env.upstream_url,
    ]
    process = env.spawn("forwarding", argv, cpu=env.sut_cpu)
    try:
        env.wait_for_port(port, process)
        yield Endpoint(f"http://127.0.0.1:{port}", pid=process.pid)
    finally:
        env.stop(process)


@contextlib.contextmanager
def gateway(env) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """The full pipeline, one worker, SQLite store, pinned to the system-under-test core."""
    with _gateway(env, store=None, workers=1) as endpoint:
        yield endpoint


@contextlib.contextmanager
def gateway_postgres(env) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """The full pipeline with the audit log in PostgreSQL (a private schema of the local
    server, GATEWAY_BENCH_POSTGRES), one worker, pinned like the others."""
    from bench_stores import _drop, _postgres_store
    from harness import TargetUnavailable

    try:
        url, _ = _postgres_store()
    except Exception as exc:
        raise TargetUnavailable(f"no PostgreSQL server ({type(exc).__name__})") from exc
    try:
        with _gateway(env, store=url, workers=1) as endpoint:
            yield endpoint
    finally:
        _drop(url)


@contextlib.contextmanager
def gateway_2_workers(env) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """`gateway serve --workers 2`, not pinned: with two cores, the workers share them
    with the upstream and the load generator (see docs/BENCHMARKS.md)."""
    with _gateway(env, store=None, workers=2) as endpoint:
        yield endpoint


@contextlib.contextmanager
def _gateway(env, store: str | None, workers: int) -> Iterator[object]:  # type: ignore[no-untyped-def]
    from harness import Endpoint, free_port

    work = env.workdir / "gateway"
    if work.exists():
        shutil.rmtree(work)
    (work / "jwks").mkdir(parents=True)
    key = RSAKey.generate_key(2048, parameters={"kid": "bench-1"})
    (work / "jwks" / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    now = int(time.time())
    token = jwt.encode(
        {"alg": "RS256", "kid": "bench-1"},
        {
            "iss": ISSUER,
            "aud": "model-gateway",
            "sub": "bench-evaluator",
            "iat": now,
            "exp": now + 3600,
            "org": "US CAISI",
            "roles": ["evaluator"],
            "verified_claims": {"claims": {"nationalities": ["USA"]}},
        },
        key,
    )
    generate_keys(work, ORIGIN)
    policies = work / "policies"
    shutil.copytree(ROOT / "policies", policies)
    (policies / "bench-models.yaml").write_text(
        "models:\n  - id: demo-model\n    access_class: general\n"
        "    release_at: 2026-01-01T00:00:00Z\n    description: the benchmark's model\n"
    )
    jwks_port, port = free_port(), free_port()
    settings = {
        "listen": {"host": "127.0.0.1", "port": port},
        "identity": {
            "issuers": [
                {
                    "id": "agency-idp",
                    "issuer": ISSUER,
                    "audiences": ["model-gateway"],
                    "jwks_uri": f"http://127.0.0.1:{jwks_port}/jwks.json",
                    "algorithms": ["RS256"],
                    "claims": {
                        "organisation": "org",
                        "roles": "roles",
                        "nationalities": "verified_claims.claims.nationalities",
                    },
                }
            ]
        },
        "upstreams": [{"name": "demo", "base_url": env.upstream_url + "/v1", "pool_size": 256}],
        "models": [{"id": "demo-model", "upstream": "demo"}],
        "policy": {"directory": str(policies), "watch": False},
        "audit": {
            "store": store or str(work / "audit.db"),
            "origin": ORIGIN,
            "signing_key": str(work / "audit-signing.key"),
            "hmac_key": str(work / "audit-hmac.key"),
        },
        "log": {"level": "info"},
    }
    config = work / "gateway.yaml"
    config.write_text(yaml.safe_dump(settings))
    jwks = _jwks_server(env, work / "jwks", jwks_port)
    process = env.spawn(
        "gateway",
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--config",
            str(config),
            "--workers",
            str(workers),
        ],
        cpu=env.sut_cpu if workers == 1 else None,
    )
    try:
        env.wait_for_port(jwks_port, jwks)
        env.wait_for_port(port, process)
        yield Endpoint(
            f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            pid=process.pid,
        )
    finally:
        env.stop(process)
        env.stop(jwks)
