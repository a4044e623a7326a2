"""Quotas and rate limits over real sockets: a grant's requests and tokens, per-caller
requests per minute, shared across gateway processes through Redis, and what happens
when Redis goes away."""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.demo.upstream import create_app
from tests.e2e.audit_support import CHAT, GRANT_WINDOW, chat, records
from tests.e2e.crash_gateway import client_context, free_port, gateway_process
from tests.harness import REPO, Clock, gateway_settings, instant, running_gateway
from tests.servers import serve_asgi
from tests.signing import resign_policy

SHARED_REDIS = "redis://127.0.0.1:6379/0"
GATEWAY = str(Path(sys.executable).parent / "gateway")


def _policies(
    folder: Path,
    *,
    quota: dict[str, int] | None = None,
    open_now: bool = False,
    **limits: int,
) -> Path:
    """The example policy with a quota on the CAISI grant and rate limits in settings;
    with `open_now`, muse-spark-2's release and the grant moved so the grant is open on
    the real clock (for gateways in their own processes)."""
    directory = folder / "policies"
    shutil.copytree(REPO / "policies", directory)
    grants = (directory / "grants.yaml").read_text()
    if quota is not None:
        inline = ", ".join(f"{name}: {value}" for name, value in quota.items())
        grants = re.sub(r"(\n    purpose: .*\n)", rf"\1    quota: {{{inline}}}\n", grants)
    if open_now:
        now = datetime.now(UTC).replace(microsecond=0)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        models = (directory / "models.yaml").read_text()
        release = (now + timedelta(days=10)).strftime(stamp)
        models = models.replace("release_at: 2027-01-15T16:00:00Z", f"release_at: {release}")
        (directory / "models.yaml").write_text(models)
        grants = re.sub(
            r"not_before: \S+", f"not_before: {(now - timedelta(days=1)).strftime(stamp)}", grants
        )
        grants = re.sub(
            r"not_after: \S+", f"not_after: {(now + timedelta(days=5)).strftime(stamp)}", grants
        )
    (directory / "grants.yaml").write_text(grants)
    resign_policy(directory)  # the quota is a signed field: the approvers sign again
    if limits:
        settings = yaml.safe_load((directory / "settings.yaml").read_text())
        settings["settings"]["rate_limits"] = limits
        (directory / "settings.yaml").write_text(yaml.safe_dump(settings))
    return directory


async def test_a_grant_quota_of_requests_is_enforced_and_shown(tmp_path: Path, pki: Path) -> None:
    _policies(tmp_path, quota={"requests": 3})
    async with running_gateway(tmp_path, pki, clock=Clock(instant(GRANT_WINDOW))) as gateway:
        alice = gateway.client("alice")
        served = [await alice.post(CHAT, json=chat("muse-spark-2")) for _ in range(3)]
        assert [r.status_code for r in served] == [200, 200, 200]
        over = await alice.post(CHAT, json=chat("muse-spark-2"))
        assert (over.status_code, over.json()["error"]["code"]) == (429, "quota_exhausted")
        assert 0 < int(over.headers["retry-after"]) <= 3 * 86_400
        # Other models are not charged to the grant.
        assert (await alice.post(CHAT, json=chat("muse-1"))).status_code == 200
        whoami = (await alice.get("/v1/whoami")).json()
        access = {entry["id"]: entry for entry in whoami["model_access"]}
        quota = access["muse-spark-2"]["grant"]["quota"]
        assert quota["requests"] == {"limit": 3, "used": 3, "remaining": 0}
        refused = [
            r
            for r in await records(gateway, kind="request")
            if r["reason"] == "quota.requests_exhausted"
        ]
        assert [(r["decision"], r["status"], r["grant_id"]) for r in refused] == [
            ("deny", 429, "caisi-muse-spark-2-eval")
        ]


async def test_a_token_quota_overshoots_by_at_most_the_prompts_in_flight(
    tmp_path: Path, pki: Path
) -> None:
    quota_tokens, concurrent, max_tokens = 400, 16, 8
    _policies(tmp_path, quota={"tokens": quota_tokens})
    async with running_gateway(tmp_path, pki, clock=Clock(instant(GRANT_WINDOW))) as gateway:
        alice = gateway.client("alice")
        body = chat("muse-spark-2", max_tokens=max_tokens)  # "Hello there": 2 prompt tokens

        async def caller() -> list[int]:
            statuses = []
            for _ in range(10):
                statuses.append((await alice.post(CHAT, json=body)).status_code)
            return statuses

        results = await asyncio.gather(*(caller() for _ in range(concurrent)))
        statuses = [status for batch in results for status in batch]
        assert set(statuses) == {200, 429}
        completions = [
            r for r in await records(gateway, kind="completion") if r["model"] == "muse-spark-2"
        ]
        used = sum(r["usage"]["total_tokens"] for r in completions)
        # Each admitted request reserved its max_tokens; only prompts can go beyond that.
        # (How close to the quota the callers get depends on how their refusals fall while
        # others still hold reservations, so only the overshoot is exact.)
        prompt_tokens = 2
        assert used > quota_tokens // 2
        assert used <= quota_tokens + concurrent * prompt_tokens


async def test_a_stream_under_a_token_quota_must_report_its_usage_and_is_charged_it(
    tmp_path: Path, pki: Path
) -> None:
    _policies(tmp_path, quota={"tokens": 100_000})
    async with running_gateway(tmp_path, pki, clock=Clock(instant(GRANT_WINDOW))) as gateway:
        alice = gateway.client("alice")
        words = " ".join(["word"] * 3000)
        messages = [{"role": "user", "content": words}]
        for options in (None, {}, {"include_usage": False}, {"include_usage": "true"}):
            body = {"model": "muse-spark-2", "messages": messages, "stream": True}
            if options is not None:
                body["stream_options"] = options
            refused = await alice.post(CHAT, json=body)
            assert refused.status_code == 400, options
            assert refused.json()["error"]["code"] == "usage_required"
            assert "include_usage" in refused.json()["error"]["message"]
        served = await alice.post(
            CHAT,
            json={
                "model": "muse-spark-2",
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        assert served.status_code == 200
        [completion] = [
            r for r in await records(gateway, kind="completion") if r["model"] == "muse-spark-2"
        ]
        charged = completion["usage"]["total_tokens"]
        assert charged > 3000  # the prompt alone; far beyond the default reservation of 1024
        whoami = (await alice.get("/v1/whoami")).json()
        access = {entry["id"]: entry for entry in whoami["model_access"]}
        assert access["muse-spark-2"]["grant"]["quota"]["tokens"]["used"] == charged
        # A model without a token quota streams as before, usage or not.
        plain = await alice.post(CHAT, json={**chat(), "stream": True})
        assert plain.status_code == 200
        # A Responses API stream always ends with its usage: nothing to ask for.
        responses = await alice.post(
            "/v1/responses", json={"model": "muse-spark-2", "input": words, "stream": True}
        )
        assert responses.status_code == 200, responses.text
        later = [
            r for r in await records(gateway, kind="completion") if r["model"] == "muse-spark-2"
        ]
        assert len(later) == 2
        assert later[-1]["usage"]["total_tokens"] > 3000


async def test_a_token_budget_smaller_than_the_reservation_still_serves_what_is_left(
    tmp_path: Path, pki: Path
) -> None:
    _policies(tmp_path, quota={"tokens": 500})  # below the default reservation of 1024
    async with running_gateway(tmp_path, pki, clock=Clock(instant(GRANT_WINDOW))) as gateway:
        alice = gateway.client("alice")
        first = await alice.post(CHAT, json=chat("muse-spark-2"))
        assert first.status_code == 200, first.text
        # A request whose own maximum does not fit in what is left is refused ...
        too_big = await alice.post(CHAT, json=chat("muse-spark-2", max_tokens=10_000))
        assert (too_big.status_code, too_big.json()["error"]["code"]) == (429, "quota_exhausted")
        # ... one without a maximum reserves what is left, until nothing is.
        statuses = [(await alice.post(CHAT, json=chat("muse-spark-2"))).status_code]
        while statuses[-1] == 200 and len(statuses) < 500:
            statuses.append((await alice.post(CHAT, json=chat("muse-spark-2"))).status_code)
        assert statuses[-1] == 429
        assert len(statuses) > 10
        completions = [
            r for r in await records(gateway, kind="completion") if r["model"] == "muse-spark-2"
        ]
        used = sum(r["usage"]["total_tokens"] for r in completions)
        assert 500 - 10 <= used <= 500 + 10  # the last admitted request's own tokens at most


def test_workers_without_a_shared_counter_store_refuse_to_start_under_quotas(
    tmp_path: Path, pki: Path
) -> None:
    """Each worker would count alone: every limit times the number of workers."""
    for name, quota, limits in (
        ("quota", {"requests": 3}, {}),
        ("rate", None, {"principal_per_minute": 5}),
    ):
        folder = tmp_path / name
        folder.mkdir()
        directory = _policies(folder, quota=quota, **limits)
        config = gateway_settings(folder, pki, directory, "http://127.0.0.1:9", port=free_port())
        started = subprocess.run(
            [GATEWAY, "serve", "--workers", "2", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert started.returncode == 2, started.stderr
        assert "quotas.store" in started.stderr
        assert "Traceback" not in started.stderr


async def test_rate_limits_per_caller_and_organisation(tmp_path: Path, pki: Path) -> None:
    _policies(tmp_path, principal_per_minute=4, organisation_per_minute=6)
    # Early in a minute, so the window does not turn over during the test.
    async with running_gateway(
        tmp_path, pki, clock=Clock(instant("2026-12-01T12:00:01Z"))
    ) as gateway:
        alice, bruno = gateway.client("alice"), gateway.client("bruno")
        first = [(await alice.post(CHAT, json=chat())).status_code for _ in range(5)]
        assert first == [200, 200, 200, 200, 429]
        limited = await alice.post(CHAT, json=chat())
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        # bruno is another caller of the same organisation: its budget is 6 a minute.
        assert [(await bruno.post(CHAT, json=chat())).status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        gateway.clock.now += 60
        assert (await alice.post(CHAT, json=chat())).status_code == 200
        reasons = {r["reason"] for r in await records(gateway, kind="request")}
        assert {"rate_limited.principal", "rate_limited.organisation"} <= reasons


@pytest.mark.slow
async def test_a_grant_quota_holds_across_two_gateway_processes_sharing_redis(
    tmp_path: Path, pki: Path
) -> None:
    policies = _policies(tmp_path, quota={"requests": 10}, open_now=True)
    prefix = f"test-{secrets.token_hex(6)}"
    async with serve_asgi(create_app()) as upstream:
        configs = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            port = free_port()
            path = gateway_settings(folder, pki, policies, upstream, port=port,
                                    overrides={"quotas": {"store": SHARED_REDIS,
                                                          "key_prefix": prefix}})  # fmt: skip
            configs.append((path, port))
        async with (
            gateway_process(*configs[0], pki) as first,
            gateway_process(*configs[1], pki) as second,
        ):
            statuses = []
            for base in (first.base_url, second.base_url) * 8:
                async with httpx.AsyncClient(
                    base_url=base, verify=client_context(pki, "alice"), timeout=10
                ) as alice:
                    statuses.append((await alice.post(CHAT, json=chat("muse-spark-2"))).status_code)
    assert (statuses.count(200), statuses.count(429)) == (10, 6)


@contextmanager
def _redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    folder = Path(tempfile.mkdtemp(prefix="gateway-redis-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            import time

            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("on_failure", ["allow", "deny"])
async def test_redis_gone_fails_grant_quotas_closed_and_rate_limits_as_configured(
    tmp_path: Path, pki: Path, on_failure: str
) -> None:
    _policies(tmp_path, quota={"requests": 100}, principal_per_minute=100)
    with _redis_server() as (url, redis):
        overrides = {"quotas": {"store": url, "on_store_failure": on_failure}}
        async with running_gateway(
            tmp_path, pki, clock=Clock(instant(GRANT_WINDOW)), overrides=overrides
        ) as gateway:
            alice = gateway.client("alice")
            assert (await alice.post(CHAT, json=chat("muse-spark-2"))).status_code == 200
            redis.kill()
            redis.wait()
            seen = len(gateway.upstream.log)
            under_grant = await alice.post(CHAT, json=chat("muse-spark-2"))
            assert (under_grant.status_code, under_grant.json()["error"]["code"]) == (
                503,
                "quota_unavailable",
            )
            released = await alice.post(CHAT, json=chat("muse-1"))
            assert released.status_code == (200 if on_failure == "allow" else 503)
            assert len(gateway.upstream.log) == seen + (1 if on_failure == "allow" else 0)
