"""Shadow mode over a real gateway: a candidate policy decided beside the live one, never
enforced; its differing outcomes recorded as `shadow` fields and counted; reloaded when
its files change."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from gateway.config import ConfigError
from gateway.policy import load_policy
from tests.e2e.audit_support import chat, the_record
from tests.e2e.crash_gateway import free_port
from tests.e2e.test_metrics import scrape_until
from tests.harness import REPO, Clock, RunningGateway, running_gateway
from tests.telemetry.samples import value as sample_value

CHAT = "/v1/chat/completions"
SUSPENSION = (
    "  - organisation: Globex Corp\n    reason: shadowed first\n    since: 2026-06-01T00:00:00Z\n"
)


def _policies(tmp_path: Path) -> tuple[Path, Path]:
    live, shadow = tmp_path / "policies", tmp_path / "shadow"
    shutil.copytree(REPO / "policies", live)
    shutil.copytree(REPO / "policies", shadow)
    with (shadow / "suspensions.yaml").open("a", encoding="utf-8") as file:
        file.write(SUSPENSION)
    return live, shadow


def _overrides(live: Path, shadow: Path, metrics_port: int | None = None) -> dict[str, object]:
    overrides: dict[str, object] = {
        "policy": {"directory": str(live), "watch": True, "shadow": str(shadow)}
    }
    if metrics_port is not None:
        overrides["metrics"] = {"listen": f"127.0.0.1:{metrics_port}"}
    return overrides


async def _ask(gateway: RunningGateway, caller: str, request_id: str, model: str = "muse-1") -> int:
    response = await gateway.client(caller).post(
        CHAT, json=chat(model), headers={"x-request-id": request_id}
    )
    return response.status_code


async def test_the_shadow_policy_is_recorded_and_counted_but_never_enforced(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    live, shadow = _policies(tmp_path)
    port = free_port()
    async with running_gateway(
        tmp_path, pki, clock=clock, overrides=_overrides(live, shadow, port)
    ) as gateway:
        assert await _ask(gateway, "carol", "shadow-carol") == 200  # served: never enforced
        assert await _ask(gateway, "alice", "shadow-alice") == 200
        assert await _ask(gateway, "bruno", "shadow-bruno", "muse-spark-2") == 403
        carol = await the_record(gateway, "shadow-carol", "request")
        assert (carol["decision"], carol["reason"]) == ("allow", "allow.released")
        assert carol["shadow"] == {
            "policy_version": load_policy(shadow).version,
            "decision": "deny",
            "reason": "suspended.organisation",
            "grant_id": None,
        }
        assert (await the_record(gateway, "shadow-alice", "request"))["shadow"] is None
        assert (await the_record(gateway, "shadow-bruno", "request"))["shadow"] is None
        counted = gateway.gateway.shadow
        assert (counted.evaluations, counted.differences) == (3, 1)
        assert counted.by_outcome == {("allow.released", "suspended.organisation"): 1}
        _, samples = await scrape_until(
            f"http://127.0.0.1:{port}",
            lambda s: sample_value(s, "gateway_shadow_evaluations_total") == 3,
        )
        differences = {
            "live_reason": "allow.released",
            "candidate_reason": "suspended.organisation",
        }
        assert sample_value(samples, "gateway_shadow_differences_total", **differences) == 1


async def test_the_shadow_policy_is_reloaded_when_its_files_change(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    live, shadow = _policies(tmp_path)
    async with running_gateway(
        tmp_path, pki, clock=clock, overrides=_overrides(live, shadow)
    ) as gateway:
        holder = gateway.gateway.shadow.holder
        before = holder.current.version
        shutil.copy(REPO / "policies" / "suspensions.yaml", shadow / "suspensions.yaml")
        async with asyncio.timeout(10):
            while holder.current.version == before:
                await asyncio.sleep(0.05)
        assert holder.current.version == load_policy(live).version
        assert gateway.gateway.policies.current.version == load_policy(live).version
        assert await _ask(gateway, "carol", "after-reload") == 200
        assert (await the_record(gateway, "after-reload", "request"))["shadow"] is None
        assert gateway.gateway.shadow.differences == 0


async def test_without_a_shadow_policy_records_carry_a_null_shadow(
    gateway: RunningGateway,
) -> None:
    assert gateway.gateway.shadow is None
    assert await _ask(gateway, "carol", "no-shadow") == 200
    assert (await the_record(gateway, "no-shadow", "request"))["shadow"] is None


def test_a_shadow_setting_that_is_not_a_folder_is_refused(tmp_path: Path, pki: Path) -> None:
    from gateway.config import Section
    from gateway.policy import PolicySettings

    (tmp_path / "file.yaml").write_text("x: 1\n")
    for value, message in (("file.yaml", "expected a policy folder"), ("nowhere", "not found")):
        with pytest.raises(ConfigError, match=message):
            PolicySettings.from_section(
                Section(
                    {"directory": str(REPO / "policies"), "shadow": value},
                    "gateway.yaml",
                    "policy",
                    tmp_path,
                )
            )


async def test_run_time_objects_apply_to_the_candidate_as_to_the_live_policy(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    """A suspension made through the admin API is fleet state, not a policy file: the
    candidate decides under it too, so it is not a difference."""
    live, shadow = _policies(tmp_path)
    async with running_gateway(
        tmp_path, pki, clock=clock, overrides=_overrides(live, shadow)
    ) as gateway:
        suspended = await gateway.client("oscar").post(
            "/v1/admin/suspensions",
            json={"organisation": "US CAISI", "reason": "paused", "since": "2026-01-01T00:00:00Z"},
        )
        assert suspended.status_code == 201, suspended.text
        assert await _ask(gateway, "alice", "shadow-alice-suspended") == 403
        alice = await the_record(gateway, "shadow-alice-suspended", "request")
        assert alice["reason"] == "suspended.organisation"
        assert alice["shadow"] is None
        # The candidate's own difference still shows, under the same run-time objects.
        assert await _ask(gateway, "carol", "shadow-carol-2") == 200
        carol = await the_record(gateway, "shadow-carol-2", "request")
        assert carol["shadow"]["reason"] == "suspended.organisation"
        assert carol["shadow"]["policy_version"] != load_policy(shadow).version
