"""/healthz and /readyz: a request id on every answer, and readiness that follows the
upstreams through a bounded background probe, never one probe per /readyz call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import ConfigError, Section
from gateway.readiness import ReadinessSettings
from tests.e2e.audit_support import chat
from tests.harness import Clock, RunningGateway, running_gateway

CHAT = "/v1/chat/completions"
FAST = {"probe_interval_seconds": 0.2, "probe_timeout_seconds": 0.1}


class Listener:
    """A TCP port that accepts and counts connections, and can be closed and reopened."""

    def __init__(self) -> None:
        self.port = 0  # the first open takes a free port; reopening takes the same one
        self.accepted = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    listening = Listener()
    await listening.open()
    try:
        yield listening
    finally:
        await listening.close()


async def readiness(gateway: RunningGateway) -> tuple[int, dict[str, Any]]:
    response = await gateway.client(None).get("/readyz")
    return response.status_code, response.json()


async def until_ready(gateway: RunningGateway, expected: bool) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            status, body = await readiness(gateway)
            if body["ready"] is expected:
                assert status == (200 if expected else 503)
                return body
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_health_answers_carry_a_request_id(gateway: RunningGateway, path: str) -> None:
    client = gateway.client(None)
    generated = await client.get(path)
    echoed = await client.get(path, headers={"x-request-id": "probe-42"})

    assert generated.status_code == 200
    assert len(generated.headers["x-request-id"]) >= 16
    assert echoed.headers["x-request-id"] == "probe-42"


async def test_readyz_reports_each_upstream(gateway: RunningGateway) -> None:
    status, body = await readiness(gateway)

    assert (status, body["ready"]) == (200, True)
    assert body["upstreams"]["require"] == "any"
    assert body["upstreams"]["upstreams"]["demo"]["reachable"] is True
    assert body["upstreams"]["upstreams"]["demo"]["error"] is None


async def test_an_unreachable_upstream_makes_the_gateway_unready_from_the_start(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    async with running_gateway(
        tmp_path, pki, clock=clock, upstream_url="http://127.0.0.1:9"
    ) as running:
        status, body = await readiness(running)
        served = await running.client("alice").post(CHAT, json={"model": "muse-1", "messages": []})

    assert (status, body["ready"], served.status_code) == (503, False, 502)
    assert body["audit"]["available"] is True
    assert body["upstreams"]["upstreams"]["demo"] == {
        "reachable": False,
        "error": "refused",
        "checked_seconds_ago": body["upstreams"]["upstreams"]["demo"]["checked_seconds_ago"],
    }


async def test_readiness_follows_an_upstream_that_goes_away_and_comes_back(
    tmp_path: Path, pki: Path, clock: Clock, listener: Listener
) -> None:
    async with running_gateway(
        tmp_path, pki, clock=clock, upstream_url=listener.url, overrides={"readiness": FAST}
    ) as running:
        await until_ready(running, True)
        await listener.close()
        gone = await until_ready(running, False)
        await listener.open()
        await until_ready(running, True)

    assert gone["upstreams"]["upstreams"]["demo"]["error"] == "refused"


async def test_asking_readyz_often_does_not_probe_more_often(
    tmp_path: Path, pki: Path, clock: Clock, listener: Listener
) -> None:
    slow = {"probe_interval_seconds": 30, "probe_timeout_seconds": 1}
    async with running_gateway(
        tmp_path, pki, clock=clock, upstream_url=listener.url, overrides={"readiness": slow}
    ) as running:
        before = listener.accepted
        answers = await asyncio.gather(*(readiness(running) for _ in range(50)))

    assert before == 1  # the round at start-up
    assert [status for status, _ in answers] == [200] * 50
    assert listener.accepted == 1


def two_upstreams(first: str, second: str) -> dict[str, Any]:
    return {
        "upstreams": [
            {"name": "first", "base_url": first + "/v1", "connect_timeout": 1},
            {"name": "second", "base_url": second + "/v1", "connect_timeout": 1},
        ],
        "models": [
            {"id": "muse-1", "upstream": "first"},
            {"id": "muse-spark-2", "upstream": "second"},
        ],
    }


@pytest.mark.parametrize(("require", "ready"), [("any", True), ("all", False), ("none", True)])
async def test_the_operator_chooses_which_upstreams_readiness_needs(
    tmp_path: Path, pki: Path, clock: Clock, listener: Listener, require: str, ready: bool
) -> None:
    overrides = two_upstreams(listener.url, "http://127.0.0.1:9")
    overrides["readiness"] = {"upstreams": require}
    async with running_gateway(tmp_path, pki, clock=clock, overrides=overrides) as running:
        status, body = await readiness(running)

    assert (status, body["ready"]) == (200 if ready else 503, ready)
    if require == "none":
        assert body["upstreams"]["upstreams"] == {}
    else:
        reachable = {n: u["reachable"] for n, u in body["upstreams"]["upstreams"].items()}
        assert reachable == {"first": True, "second": False}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"upstreams": "some"}, "readiness.upstreams: expected one of: any, all, none"),
        ({"probe_interval_seconds": 0}, "readiness.probe_interval_seconds: must be at least 0.1"),
        (
            {"probe_interval_seconds": 1, "probe_timeout_seconds": 2},
            "readiness.probe_timeout_seconds: must not exceed probe_interval_seconds",
        ),
        ({"interval": 1}, "readiness.interval: unknown key"),
    ],
)
def test_bad_readiness_settings_name_the_key(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ReadinessSettings.from_section(Section(values, "gateway.yaml", "readiness"))
    assert str(caught.value).startswith(f"gateway.yaml: {message}")


async def test_readyz_reports_the_audit_lag_as_information_by_default(
    gateway: RunningGateway,
) -> None:
    assert (await gateway.client("alice").post(CHAT, json=chat("muse-1"))).status_code == 200
    status, body = await readiness(gateway)

    assert (status, body["ready"]) == (200, True)
    assert body["audit"]["lagging"] is False
    assert body["audit"]["unsigned_records"] >= 0
    assert set(body["audit"]) == {
        "available",
        "reason",
        "unsigned_records",
        "checkpoint_age_seconds",
        "lagging",
    }


async def test_unsigned_records_behind_an_old_checkpoint_make_the_gateway_unready_when_bounded(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    bounded = {
        "readiness": {"max_checkpoint_age_seconds": 1},
        "audit_checkpoint_every_seconds": 3600,
        "audit_checkpoint_every_records": 1000,
    }
    async with running_gateway(tmp_path, pki, clock=clock, overrides=bounded) as first:
        # A fresh log: records wait unsigned, but there is no checkpoint to be old yet.
        await first.client("alice").post(CHAT, json=chat("muse-1"))
        status, fresh = await readiness(first)
    assert (status, fresh["audit"]["checkpoint_age_seconds"], fresh["ready"]) == (200, None, True)
    # Stopping signed a final checkpoint; it is more than a second old when the next
    # gateway appends a record that no checkpoint covers.
    await asyncio.sleep(1.2)
    async with running_gateway(tmp_path, pki, clock=clock, overrides=bounded) as second:
        status, idle = await readiness(second)
        await second.client("alice").post(CHAT, json=chat("muse-1"))
        lagging = await until_ready(second, False)
    assert (status, idle["audit"]["unsigned_records"], idle["ready"]) == (200, 0, True)
    assert lagging["audit"]["lagging"] is True
    assert lagging["audit"]["available"] is True
    assert lagging["audit"]["reason"] == "audit checkpoints are lagging"
    assert lagging["audit"]["unsigned_records"] >= 1
    assert lagging["audit"]["checkpoint_age_seconds"] > 1
