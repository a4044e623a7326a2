"""Traffic for the console's tests and screenshots: what an auditor would find in a
log that saw a pre-release grant open and close."""

from __future__ import annotations

from typing import Any

from tests.e2e.audit_support import CHAT, chat, the_record, wait_for_checkpoint
from tests.harness import RunningGateway, instant

# (instant, caller, model, expected status): muse-spark-2's grant for US CAISI opens on
# 2026-12-16T16:00Z and ends on 2027-01-08T00:00Z; the model is released 2027-01-15T16:00Z.
SCENE = [
    ("2026-12-10T09:00:00Z", "alice", "muse-1", 200),
    ("2026-12-10T09:05:00Z", "alice", "muse-spark-2", 403),  # grant not open yet
    ("2026-12-10T10:00:00Z", "carol", "muse-spark-2", 404),  # pre-release, no grant
    ("2027-01-04T09:00:00Z", "alice", "muse-spark-2", 200),
    ("2027-01-05T12:00:00Z", "alice", "muse-spark-2", 200),
    ("2027-01-05T12:30:00Z", "bruno", "muse-spark-2", 403),  # nationality
    ("2027-01-06T08:00:00Z", "dana", "muse-spark-2", 403),  # nationality (strict)
    ("2027-01-06T09:00:00Z", "carol", "muse-1", 200),
    ("2027-01-07T15:00:00Z", "alice", "muse-spark-2", 200),
    ("2027-01-08T10:00:00Z", "alice", "muse-spark-2", 403),  # grant expired
    ("2027-01-09T11:00:00Z", None, "muse-1", 401),
    ("2027-01-09T12:00:00Z", "emil", "muse-1", 403),  # no nationality at all
]
LAST = "2027-01-10T12:00:00Z"


async def populate(gateway: RunningGateway, *, extra: list[dict[str, Any]] | None = None) -> int:
    """Play SCENE (and `extra` chat bodies as alice) and wait until a signed checkpoint
    covers it all; returns the tree size covered."""
    for number, (moment, who, model, status) in enumerate(SCENE):
        if number == len(SCENE) // 2:  # a checkpoint halfway, so the history has two or more
            await wait_for_checkpoint(gateway, gateway.gateway.audit.tree_size)
        gateway.clock.now = max(gateway.clock.now, instant(moment))
        response = await gateway.client(who).post(CHAT, json=chat(model))
        assert response.status_code == status, (moment, who, model, response.text)
        if status == 200:
            await the_record(gateway, response.headers["x-request-id"], "completion")
    for body in extra or []:
        await gateway.client("alice").post(CHAT, json=body)
    gateway.clock.now = max(gateway.clock.now, instant(LAST))
    size = gateway.gateway.audit.tree_size
    await wait_for_checkpoint(gateway, size)
    return size
