"""Refused TLS handshakes leave evidence, over real sockets against the whole gateway.

A certificate from an unknown CA or an expired one is refused during the handshake; the
client only sees a broken connection, but the gateway writes a log line and a
`tls_failure` audit record. A caller without a certificate on a listener that requires
one gets an HTTP 401. A flood from one address is recorded up to the cap, then counted.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from gateway.audit import RecordFilter, SQLiteAuditStore
from gateway.identity.pki import init_ca, issue_client
from tests.e2e.audit_support import chat, the_record
from tests.harness import Clock, RunningGateway, instant, running_gateway

CHAT = "/v1/chat/completions"
CAP = 3


@pytest.fixture(scope="module")
def strangers(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> dict[str, Path]:
    """A certificate from a CA the gateway does not know, and an expired one from one it does."""
    root = tmp_path_factory.mktemp("strangers")
    init_ca(root / "rogue-ca", "Rogue CA")
    issue_client(root / "rogue-ca", root / "rogue", common_name="alice", organisation="US CAISI")
    issue_client(
        pki / "agency-ca",
        root / "expired",
        common_name="alice",
        organisation="US CAISI",
        not_before=datetime.now(UTC) - timedelta(days=10),
        days=1,
    )
    return {"rogue": root / "rogue", "expired": root / "expired"}


def _tls(pki: Path) -> dict[str, Any]:
    return {
        "certificate": str(pki / "server.pem"),
        "private_key": str(pki / "server-key.pem"),
        "client_certificates": "required",
        "handshake_failures": {"records_per_peer": CAP},
    }


@pytest.fixture
async def required(tmp_path: Path, pki: Path) -> AsyncIterator[RunningGateway]:
    clock = Clock(instant("2026-12-01T12:00:00Z"))
    async with running_gateway(tmp_path, pki, clock=clock, overrides={"tls": _tls(pki)}) as gw:
        yield gw


def _client(gateway: RunningGateway, prefix: Path | None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(gateway.pki / "corp-ca" / "ca.pem"))
    if prefix is not None:
        context.load_cert_chain(f"{prefix}.pem", f"{prefix}-key.pem")
    client = httpx.AsyncClient(base_url=gateway.base_url, verify=context, timeout=10)
    gateway.clients.append(client)
    return client


async def _tls_failures(gateway: RunningGateway, count: int) -> list[dict[str, Any]]:
    """The tls_failure records, once `count` of them are written (they are written in the
    background, after the connection is gone)."""
    for _ in range(250):
        found = await gateway.gateway.audit.query(RecordFilter(kind="tls_failure"), -1, 1000)
        if len(found) >= count:
            return [json.loads(data) for _, data in found]
        await asyncio.sleep(0.02)
    raise AssertionError(f"expected {count} tls_failure records")


@pytest.mark.parametrize(
    ("who", "verify_message"),
    [("rogue", "unable to get local issuer certificate"), ("expired", "certificate has expired")],
)
async def test_a_certificate_refused_in_the_handshake_leaves_a_log_line_and_a_record(
    required: RunningGateway, strangers: dict[str, Path], who: str, verify_message: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(httpx.TransportError):
            await _client(required, strangers[who]).post(CHAT, json=chat())
        (record,) = await _tls_failures(required, 1)

    port = required.base_url.rsplit(":", 1)[1]
    assert {k: v for k, v in record.items() if k not in ("index", "time")} == {
        "kind": "tls_failure",
        "client_address": "127.0.0.1",
        "listener": f"127.0.0.1:{port}",
        "decision": "deny",
        "reason": "tls.certificate_refused",
        "openssl_reason": "CERTIFICATE_VERIFY_FAILED",
        "verify_message": verify_message,
        "certificate_fingerprint": None,
        "certificate_subject": None,
        "cap": None,
        "suppressed": 0,
        "suppressed_reasons": [],
    }
    (line,) = [entry for entry in logs if entry["event"] == "tls.handshake_failed"]
    assert (line["client_address"], line["verify_message"]) == ("127.0.0.1", verify_message)


async def test_no_certificate_on_a_required_listener_gets_an_http_401(
    required: RunningGateway,
) -> None:
    response = await _client(required, None).post(CHAT, json=chat())

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    record = await the_record(required, response.headers["x-request-id"], "auth_failure")
    assert (record["reason"], record["status"]) == ("cert.missing", 401)


async def test_a_token_does_not_replace_the_required_certificate(
    required: RunningGateway,
) -> None:
    client = _client(required, None)

    response = await client.get("/v1/whoami", headers={"authorization": "Bearer a.b.c"})

    assert response.status_code == 401
    record = await the_record(required, response.headers["x-request-id"], "auth_failure")
    assert record["reason"] == "cert.missing"


async def test_a_caller_with_a_good_certificate_is_served_on_a_required_listener(
    required: RunningGateway,
) -> None:
    response = await required.client("carol").post(CHAT, json=chat())

    assert response.status_code == 200
    assert await _tls_failures(required, 0) == []


async def test_a_flood_gives_exactly_the_cap_in_records_and_one_summary(
    tmp_path: Path, pki: Path, strangers: dict[str, Path]
) -> None:
    attempts = CAP + 5
    clock = Clock(instant("2026-12-01T12:00:00Z"))
    async with running_gateway(tmp_path, pki, clock=clock, overrides={"tls": _tls(pki)}) as gw:
        for _ in range(attempts):
            client = _client(gw, strangers["rogue"])
            with pytest.raises(httpx.TransportError):
                await client.post(CHAT, json=chat())
        await _tls_failures(gw, CAP)
    # Stopping the gateway writes the summary still owed for the minute.
    store = SQLiteAuditStore(gw.audit_store, readonly=True)
    try:
        records = [json.loads(row.data) for row in store.iter_records()]
    finally:
        store.close()
    failures = [r for r in records if r["kind"] == "tls_failure"]

    assert [r["reason"] for r in failures] == ["tls.certificate_refused"] * CAP + [
        "tls.failures_suppressed"
    ]
    summary = failures[-1]
    assert (summary["cap"], summary["client_address"], summary["suppressed"]) == (
        "per_peer",
        "127.0.0.1",
        attempts - CAP,
    )
    assert summary["suppressed_reasons"] == ["tls.certificate_refused"]
