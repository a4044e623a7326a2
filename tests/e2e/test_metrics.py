"""/metrics from a real gateway over real sockets: counters after traffic, bounded labels,
the audit log's own state, and a Grafana dashboard that only queries metrics that exist."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.audit_support import CHAT, chat
from tests.e2e.crash_gateway import free_port
from tests.harness import REPO, Clock, RunningGateway, gateway_settings, running_gateway
from tests.telemetry.samples import Samples, label_values, parse, total, value

DASHBOARD = REPO / "deploy" / "grafana" / "model-access-gateway.json"


@pytest.fixture
async def metered(
    tmp_path: Path, pki: Path, clock: Clock
) -> AsyncIterator[tuple[RunningGateway, str]]:
    port = free_port()
    overrides = {"metrics": {"listen": f"127.0.0.1:{port}"}}
    async with running_gateway(tmp_path, pki, clock=clock, overrides=overrides) as running:
        yield running, f"http://127.0.0.1:{port}"


async def scrape(url: str) -> tuple[str, Samples]:
    async with httpx.AsyncClient(timeout=5) as client:  # no credentials: a Prometheus scraper
        response = await client.get(url + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text, parse(response.text)


async def scrape_until(url: str, ready: Callable[[Samples], bool]) -> tuple[str, Samples]:
    """Scrape until `ready` holds: counts are published once a second."""
    async with asyncio.timeout(10):
        while True:
            text, samples = await scrape(url)
            if ready(samples):
                return text, samples
            await asyncio.sleep(0.1)


async def test_metrics_count_requests_decisions_stages_and_show_the_audit_log(
    metered: tuple[RunningGateway, str],
) -> None:
    gateway, url = metered
    alice = gateway.client("alice")
    for _ in range(3):
        assert (await alice.post(CHAT, json=chat("muse-1"))).status_code == 200
    assert (await gateway.client(None).post(CHAT, json=chat("muse-1"))).status_code == 401
    assert (await alice.post(CHAT, json=chat("no-such-model"))).status_code == 404
    assert (await alice.get("/v1/models")).status_code == 200

    _, samples = await scrape_until(
        url,
        lambda s: (
            total(s, "gateway_requests_total") >= 6 and value(s, "gateway_audit_tree_size") >= 9
        ),
    )
    assert total(samples, "gateway_requests_total", route=CHAT, status="200") == 3
    assert total(samples, "gateway_requests_total", route=CHAT, status="401") == 1
    assert (
        value(
            samples,
            "gateway_requests_total",
            route=CHAT,
            status="401",
            reason="credentials.missing",
        )
        == 1
    )
    assert total(samples, "gateway_requests_total", route=CHAT, status="404") == 1
    assert total(samples, "gateway_requests_total", route="/v1/models", status="200") == 1
    allowed = {"decision": "allow", "model": "muse-1", "organisation": "US CAISI"}
    assert total(samples, "gateway_decisions_total", **allowed) == 3
    assert total(samples, "gateway_decisions_total", decision="deny", model="other") == 1

    def count(stage: str) -> float:
        return value(samples, "gateway_stage_duration_seconds_count", stage=stage)

    assert count("authentication") == 5  # every inference request
    assert count("policy") == 4  # those that authenticated
    assert count("audit") == 5  # each waited for its record
    assert count("upstream_first_byte") == count("upstream") == 3
    assert count("total") == 5
    assert value(samples, "gateway_stage_duration_seconds_sum", stage="total") > 0

    # 6 requests, 3 completions: every record in the log, read from the store.
    assert value(samples, "gateway_audit_store_readable") == 1
    assert value(samples, "gateway_audit_tree_size") >= 9
    assert total(samples, "gateway_audit_batch_records_total") >= 9
    assert value(samples, "gateway_audit_available") == 1
    assert value(samples, "gateway_upstream_up", upstream="demo") == 1
    version = gateway.gateway.policies.current.version
    assert value(samples, "gateway_policy_info", version=version) == 1
    assert value(samples, "gateway_policy_last_reload_success") == 1
    assert value(samples, "gateway_processes") == 1


async def test_the_unsigned_tail_and_checkpoint_age_come_from_the_store(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    port = free_port()
    overrides = {
        "metrics": {"listen": f"127.0.0.1:{port}"},
        "audit_checkpoint_every_seconds": 3600,
        "audit_checkpoint_every_records": 1000,
    }
    async with running_gateway(tmp_path, pki, clock=clock, overrides=overrides) as gateway:
        assert (await gateway.client("alice").post(CHAT, json=chat("muse-1"))).status_code == 200
        _, samples = await scrape_until(
            f"http://127.0.0.1:{port}", lambda s: value(s, "gateway_audit_tree_size") >= 2
        )
    # A fresh log and no checkpoint due yet: the whole log is the unsigned tail.
    assert value(samples, "gateway_audit_unsigned_records") == value(
        samples, "gateway_audit_tree_size"
    )
    assert value(samples, "gateway_audit_checkpoint_tree_size") == 0
    assert ("gateway_audit_checkpoint_age_seconds", frozenset()) not in samples
    # Stopped, the gateway signed a final checkpoint; the next one reports its age.
    async with running_gateway(tmp_path, pki, clock=clock, overrides=overrides):
        _, signed = await scrape(f"http://127.0.0.1:{port}")
    assert value(signed, "gateway_audit_unsigned_records") == 0
    assert value(signed, "gateway_audit_checkpoint_tree_size") == value(
        samples, "gateway_audit_tree_size"
    )
    assert 0 <= value(signed, "gateway_audit_checkpoint_age_seconds") < 60


async def test_caller_chosen_models_and_paths_add_no_series(
    metered: tuple[RunningGateway, str],
) -> None:
    gateway, url = metered
    alice = gateway.client("alice")

    async def attack(number: int) -> None:
        marker = f"attacker{number}x{secrets.token_hex(4)}"
        await alice.post(CHAT, json=chat(marker))
        await alice.post(CHAT, json={"model": f"{marker}\n# HELP", "messages": []})
        await alice.get(f"/v1/{marker}")
        await alice.get(f"/v1/models/{marker}")
        await alice.post(f"/v1/chat/completions/{marker}", json=chat("muse-1"))
        await gateway.client(None).get(f"/{marker}", headers={"authorization": f"Bearer {marker}"})

    await attack(0)
    _, first = await scrape_until(url, lambda s: total(s, "gateway_requests_total") >= 6)
    for number in range(1, 21):
        await attack(number)
    text, later = await scrape_until(url, lambda s: total(s, "gateway_requests_total") >= 6 * 21)
    assert "attacker" not in text

    def series(samples: Samples) -> set[tuple[str, frozenset[tuple[str, str]]]]:
        prefixes = ("gateway_requests", "gateway_decisions", "gateway_stage")
        return {key for key in samples if key[0].startswith(prefixes)}

    assert series(later) == series(first)  # more requests, not one more series
    assert label_values(later, "gateway_decisions_total", "model") == {"other"}
    assert label_values(later, "gateway_requests_total", "route") <= {
        CHAT,
        "/v1/models/{model:path}",
        "other",
    }


async def test_metrics_are_served_only_on_their_own_listener(
    metered: tuple[RunningGateway, str],
) -> None:
    gateway, url = metered
    async with httpx.AsyncClient(timeout=5) as client:
        elsewhere = await client.get(url + "/")
        assert elsewhere.status_code == 404
        assert (await client.post(url + "/metrics", content=b"x")).status_code == 405
        assert (await client.get(url + "/metrics?name[]=x")).status_code == 200
    on_the_gateway = await gateway.client("alice").get("/metrics")
    assert on_the_gateway.status_code == 404
    assert "gateway_requests" not in on_the_gateway.text


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_a_metrics_port_taken_stops_the_gateway_with_status_3(
    tmp_path: Path, pki: Path, workers: list[str]
) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = gateway_settings(
            tmp_path,
            pki,
            tmp_path / "policies",
            "http://127.0.0.1:9",
            port=free_port(),
            overrides={"metrics": {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}},
        )
        finished = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config), *workers],
            capture_output=True,
            timeout=60,
            cwd=REPO,
        )
    assert finished.returncode == 3
    assert b'"event":"metrics.bind_failed"' in finished.stdout


def _queried_metrics(dashboard: dict[str, object]) -> set[str]:
    names: set[str] = set()
    panels = list(dashboard["panels"])  # type: ignore[call-overload]
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            names.update(re.findall(r"\bgateway_[a-z_]+\b", target["expr"]))
    return names


def test_the_dashboard_is_a_grafana_dashboard_of_prometheus_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "model-access-gateway"
    assert dashboard["schemaVersion"] >= 30
    ids = [panel["id"] for panel in dashboard["panels"] if panel["type"] != "row"]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["type"] == "prometheus"
            assert panel["targets"], panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in ("status", "reason", "latency", "audit", "checkpoint", "upstream", "quota"):
        assert topic in titles


async def test_every_metric_the_dashboard_queries_is_exported(
    metered: tuple[RunningGateway, str],
) -> None:
    gateway, url = metered
    gateway.gateway.telemetry.quota_used("caisi-muse-spark-2-eval", "tokens", 10, limit=100)
    gateway.gateway.telemetry.witness_lag("witness.example", 3)
    assert (await gateway.client("alice").post(CHAT, json=chat("muse-1"))).status_code == 200
    text, _ = await scrape_until(
        url,
        lambda s: (
            total(s, "gateway_requests_total") >= 1
            and ("gateway_audit_checkpoint_age_seconds", frozenset()) in s
        ),
    )
    exported = set(re.findall(r"^# TYPE (\S+)", text, re.MULTILINE))
    exported |= {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    queried = _queried_metrics(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    assert len(queried) >= 15
    assert queried - exported == set()
