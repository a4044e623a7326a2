"""Helpers shared by the audit end-to-end tests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from gateway.audit import (
    NoteVerifier,
    RecordFilter,
    load_hmac_key,
    load_verifier,
    open_checkpoint,
)
from tests.harness import RunningGateway, instant

CHAT = "/v1/chat/completions"
# Inside muse-spark-2's pre-release grant window for US CAISI.
GRANT_WINDOW = "2027-01-05T12:00:00Z"
FULL_STORE = (
    "CREATE TRIGGER full BEFORE INSERT ON records BEGIN"
    " SELECT RAISE(ABORT, 'database or disk is full'); END"
)


def chat(model: str = "muse-1", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra}


def keyed_digest(pki: Path, body: bytes) -> str:
    key = load_hmac_key(pki / "audit-hmac.key")
    return "hmac-sha256:" + hmac.new(key, body, hashlib.sha256).hexdigest()


def log_verifier(pki: Path) -> NoteVerifier:
    return load_verifier(pki / "audit-signing.pub")


async def records(gateway: RunningGateway, **filters: str) -> list[dict[str, Any]]:
    found = await gateway.gateway.audit.query(RecordFilter(**filters), -1, 1000)
    return [json.loads(data) for _, data in found]


def outcome(record: dict[str, Any]) -> tuple[str, str, int | None]:
    """What a record says was decided: decision, reason code, status."""
    return record["decision"], record["reason"], record["status"]


async def the_record(gateway: RunningGateway, request_id: str, kind: str) -> dict[str, Any]:
    """The one record of `kind` for `request_id`, waiting (bounded) for it to be written."""
    async with asyncio.timeout(5):
        while not (found := await records(gateway, request_id=request_id, kind=kind)):
            await asyncio.sleep(0.02)
    assert len(found) == 1
    return found[0]


async def some_traffic(gateway: RunningGateway) -> dict[str, str]:
    """One allowed, one denied and one unauthenticated request; their request ids."""
    # Never move the clock back: the log schedules its next checkpoint by this clock.
    gateway.clock.now = max(gateway.clock.now, instant(GRANT_WINDOW))
    allowed = await gateway.client("alice").post(CHAT, json=chat())
    denied = await gateway.client("bruno").post(CHAT, json=chat("muse-spark-2"))
    anonymous = await gateway.client(None).post(CHAT, json=chat())
    assert (allowed.status_code, denied.status_code, anonymous.status_code) == (200, 403, 401)
    ids = {
        "allowed": allowed.headers["x-request-id"],
        "denied": denied.headers["x-request-id"],
        "unauthenticated": anonymous.headers["x-request-id"],
    }
    await the_record(gateway, ids["allowed"], "completion")
    return ids


async def wait_for_checkpoint(gateway: RunningGateway, tree_size: int) -> None:
    """Wait (bounded) until the log has signed a checkpoint covering `tree_size` records."""
    verifier = log_verifier(gateway.pki)
    async with asyncio.timeout(10):
        while True:
            note = await gateway.gateway.audit.latest_checkpoint()
            if note is not None and open_checkpoint(note, verifier).tree_size >= tree_size:
                return
            await asyncio.sleep(0.1)
