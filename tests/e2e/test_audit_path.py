"""The audit path end to end: every request leaves a record, the gateway refuses to serve
when it cannot record, a crash loses no record of a served request, and an auditor can
prove all of it with the log's public key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import (
    RecordFilter,
    SQLiteAuditStore,
)
from gateway.cli import main
from gateway.demo.upstream import create_app
from tests.conftest import ORDINARY_DAY
from tests.e2e.audit_support import (
    CHAT,
    FULL_STORE,
    GRANT_WINDOW,
    chat,
    keyed_digest,
    outcome,
    records,
    the_record,
)
from tests.e2e.crash_gateway import (
    client_context,
    free_port,
    gateway_process,
    load_until_killed,
)
from tests.harness import (
    REPO,
    Clock,
    RunningGateway,
    gateway_settings,
    instant,
    running_gateway,
)
from tests.servers import serve_asgi

# -- every request becomes a record ----------------------------------------------------


async def test_an_allowed_completion_leaves_a_request_record_and_a_completion_record(
    gateway: RunningGateway, pki: Path
) -> None:
    body = json.dumps(chat()).encode()
    response = await gateway.client("alice").post(
        CHAT, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    request = await the_record(gateway, request_id, "request")
    completion = await the_record(gateway, request_id, "completion")
    assert outcome(request) == ("allow", "allow.released", None)
    assert request["policy_version"] == gateway.gateway.policies.current.version
    assert request["model"] == "muse-1"
    assert request["request_digest"] == keyed_digest(pki, body)
    assert request["request_bytes"] == len(body)
    assert request["upstream_request_digest"] == keyed_digest(pki, gateway.upstream.log[-1].body)
    assert request["principal"]["subject"] == "alice"
    assert request["principal"]["nationalities"] == [
        {"value": "US", "source": "ca:agency", "trusted": True}
    ]
    assert completion["request_index"] == request["index"] < completion["index"]
    assert (completion["status"], completion["upstream_status"], completion["error"]) == (
        200,
        200,
        None,
    )
    assert completion["stream"] is None
    assert completion["response_digest"] == keyed_digest(pki, response.content)
    assert completion["response_bytes"] == len(response.content)


async def test_a_completion_record_carries_the_usage_the_upstream_reported(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client("alice").post(CHAT, json=chat())
    assert response.status_code == 200
    usage = response.json()["usage"]
    completion = await the_record(gateway, response.headers["x-request-id"], "completion")
    assert completion["usage"] == usage


async def test_a_streamed_completion_record_says_completed_and_carries_usage(
    gateway: RunningGateway, pki: Path
) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    response = await gateway.client("alice").post(CHAT, json=body)
    assert response.status_code == 200
    events = [event for event in response.text.split("\n\n") if event]
    usage = json.loads(events[-2].removeprefix("data: "))["usage"]
    completion = await the_record(gateway, response.headers["x-request-id"], "completion")
    assert completion["stream"] == "completed"
    assert completion["usage"] == usage
    assert completion["response_digest"] == keyed_digest(pki, response.content)


async def test_a_denied_request_is_recorded_with_the_policys_reason_and_not_forwarded(
    gateway: RunningGateway, pki: Path
) -> None:
    gateway.clock.set(GRANT_WINDOW)
    body = json.dumps(chat("muse-spark-2")).encode()
    response = await gateway.client("bruno").post(CHAT, content=body)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "nationality_restricted"
    request_id = response.headers["x-request-id"]
    record = await the_record(gateway, request_id, "request")
    assert outcome(record) == ("deny", "nationality.denied", 403)
    assert record["model"] == "muse-spark-2"
    assert "class:frontier/nationality.not_allowed[FR]" in record["rules"]
    assert record["principal"]["subject"] == "bruno"
    assert record["request_digest"] == keyed_digest(pki, body)
    assert record["policy_version"] == gateway.gateway.policies.current.version
    assert await records(gateway, request_id=request_id, kind="completion") == []
    assert gateway.upstream.log == []


async def test_a_hidden_prerelease_model_is_404_but_the_record_keeps_the_true_reason(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client("carol").post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    record = await the_record(gateway, response.headers["x-request-id"], "request")
    assert outcome(record) == ("deny", "model.prerelease", 404)


async def test_an_unauthenticated_request_is_recorded_as_an_auth_failure(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client(None).post(CHAT, json=chat())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    record = await the_record(gateway, response.headers["x-request-id"], "auth_failure")
    assert outcome(record) == ("deny", "credentials.missing", 401)
    assert record["principal"] is None
    assert record["policy_version"] == gateway.gateway.policies.current.version
    assert await records(gateway, request_id=response.headers["x-request-id"], kind="request") == []


async def test_a_malformed_request_is_recorded_with_the_digest_of_its_bytes(
    gateway: RunningGateway, pki: Path
) -> None:
    body = b'{"model": "muse-1", not json'
    response = await gateway.client("alice").post(CHAT, content=body)
    assert response.status_code == 400
    record = await the_record(gateway, response.headers["x-request-id"], "request")
    assert outcome(record) == ("deny", "request.invalid_json", 400)
    assert record["request_digest"] == keyed_digest(pki, body)
    assert record["request_bytes"] == len(body)
    assert record["principal"]["subject"] == "alice"
    assert gateway.upstream.log == []


async def test_a_stream_the_client_abandons_is_recorded_as_aborted(
    gateway: RunningGateway,
) -> None:
    body = chat(stream=True, demo={"chunks": 100, "chunk_delay": 0.05})
    client = gateway.client("alice")
    async with client.stream("POST", CHAT, json=body) as response:
        request_id = response.headers["x-request-id"]
        await response.aiter_raw().__anext__()
    await client.aclose()
    completion = await the_record(gateway, request_id, "completion")
    assert (completion["stream"], completion["error"], completion["status"]) == (
        "aborted",
        "client.disconnected",
        200,
    )
    assert completion["response_bytes"] > 0


# -- fail closed -------------------------------------------------------------------------


async def _readiness(gateway: RunningGateway) -> tuple[int, dict[str, Any]]:
    response = await gateway.client(None).get("/readyz")
    return response.status_code, response.json()


async def test_nothing_is_served_while_the_store_cannot_write_and_service_resumes_after(
    gateway: RunningGateway,
) -> None:
    alice = gateway.client("alice")
    first = await alice.post(CHAT, json=chat())
    await the_record(gateway, first.headers["x-request-id"], "completion")
    seen = len(gateway.upstream.log)
    with contextlib.closing(sqlite3.connect(gateway.audit_store, isolation_level=None)) as db:
        db.execute(FULL_STORE)
    refused = [
        await alice.post(CHAT, json=chat()),
        await alice.post(CHAT, json=chat(stream=True)),
        await gateway.client("bruno").post(CHAT, json=chat("muse-spark-2")),
        await gateway.client(None).post(CHAT, json=chat()),
        await alice.post(CHAT, content=b"{not json"),
    ]
    assert [r.status_code for r in refused] == [503] * 5
    assert {r.json()["error"]["code"] for r in refused} == {"audit_unavailable"}
    assert len(gateway.upstream.log) == seen
    status, ready = await _readiness(gateway)
    assert (status, ready["ready"], ready["audit"]["available"]) == (503, False, False)
    assert "database or disk is full" in ready["audit"]["reason"]
    for response in refused:
        assert await records(gateway, request_id=response.headers["x-request-id"]) == []

    with contextlib.closing(sqlite3.connect(gateway.audit_store, isolation_level=None)) as db:
        db.execute("DROP TRIGGER full")
    again = await alice.post(CHAT, json=chat())
    assert again.status_code == 200
    assert len(gateway.upstream.log) == seen + 1
    await the_record(gateway, again.headers["x-request-id"], "request")
    status, ready = await _readiness(gateway)
    audit = {key: ready["audit"][key] for key in ("available", "reason")}
    assert (status, audit) == (200, {"available": True, "reason": None})


_HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


async def test_a_store_locked_by_another_process_refuses_within_the_write_timeout(
    tmp_path: Path, pki: Path
) -> None:
    timeout = 0.5
    async with running_gateway(
        tmp_path,
        pki,
        clock=Clock(instant(ORDINARY_DAY)),
        overrides={"audit_write_timeout_seconds": timeout},
    ) as gateway:
        alice = gateway.client("alice")
        assert (await alice.post(CHAT, json=chat())).status_code == 200
        seen = len(gateway.upstream.log)
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _HOLD_LOCK,
            str(gateway.audit_store),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert holder.stdout is not None
            assert (await holder.stdout.readline()).strip() == b"locked"
            for _ in range(3):
                started = time.monotonic()
                response = await alice.post(CHAT, json=chat())
                elapsed = time.monotonic() - started
                assert response.status_code == 503
                assert response.json()["error"]["code"] == "audit_unavailable"
                # The documented bound: write_timeout_seconds plus a 0.25 s margin.
                assert elapsed < timeout + 0.25, elapsed
            status, ready = await _readiness(gateway)
            assert (status, ready["audit"]["available"]) == (503, False)
            reason = ready["audit"]["reason"]
            assert reason == "audit store writes are stalled" or "locked" in reason
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            await holder.wait()
        assert len(gateway.upstream.log) == seen
        await asyncio.sleep(timeout)
        assert (await alice.post(CHAT, json=chat())).status_code == 200


# -- a crash loses no record of a served request -----------------------------------------


@pytest.mark.slow
async def test_a_gateway_killed_mid_load_keeps_the_record_of_every_served_request(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_directory = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policy_directory)
    store = tmp_path / "audit" / "audit.db"
    async with serve_asgi(create_app(record=False)) as upstream_url:
        port = free_port()
        config = gateway_settings(tmp_path, pki, policy_directory, upstream_url, port=port)
        async with gateway_process(config, port, pki) as first:
            answered, cut_off = await load_until_killed(first, pki, CHAT, chat())
        assert set(answered.values()) == {200}
        assert len(answered) >= 32
        assert cut_off > 0, "the gateway was not killed mid-load"

        port = free_port()
        config = gateway_settings(tmp_path, pki, policy_directory, upstream_url, port=port)
        async with gateway_process(config, port, pki) as second:
            async with httpx.AsyncClient(
                base_url=second.base_url, verify=client_context(pki, "alice"), timeout=10
            ) as http:
                assert (await http.post(CHAT, json=chat())).status_code == 200
            status = await asyncio.to_thread(second.stop)
            assert status == 0, second.output_tail()
            assert '"event":"gateway.stopped"' in second.output_tail(), "no clean shutdown"

    code = main(["audit", "verify", "--store", str(store), "--key", str(pki / "audit-signing.pub")])
    output = capsys.readouterr().out
    assert code == 0, output
    reader = SQLiteAuditStore(store, readonly=True)
    try:
        size = reader.head().tree_size
        latest = reader.latest_checkpoint()
        found = {
            request_id: [
                json.loads(row.data)
                for row in reader.query(RecordFilter(request_id=request_id), -1, 10)
            ]
            for request_id in answered
        }
    finally:
        reader.close()
    assert f"OK: tree_size {size} " in output
    assert latest is not None
    assert latest.tree_size == size  # the clean stop signed everything
    missing = [rid for rid, found_records in found.items() if not found_records]
    assert missing == []
    for found_records in found.values():
        request = next(r for r in found_records if r["kind"] == "request")
        assert (request["decision"], request["principal"]["subject"]) == ("allow", "alice")
