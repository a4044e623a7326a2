"""Hot reload: swap on success, keep the old policy on failure, SIGHUP and file triggers."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from gateway.policy import PolicyHolder, PolicyWatcher, ReloadOutcome, load_policy

CHANGED_SUSPENSIONS = """suspensions:
  - organisation: Acme Reseller Ltd
    reason: terms of service review
    since: 2026-06-01T00:00:00Z
  - model: muse-1
    reason: incident response
    since: 2026-07-01T00:00:00Z
"""


async def test_valid_change_is_swapped_in(policy_dir: Path) -> None:
    holder = PolicyHolder(load_policy(policy_dir))
    outcomes: list[ReloadOutcome] = []
    watcher = PolicyWatcher(policy_dir, holder, outcomes.append, watch_files=False)
    before = holder.current
    (policy_dir / "suspensions.yaml").write_text(CHANGED_SUSPENSIONS)
    outcome = await watcher.reload()
    assert outcome.ok
    assert (outcome.old_version, outcome.new_version) == (before.version, holder.current.version)
    assert outcome.new_version != outcome.old_version
    assert (outcome.trigger, outcome.error) == ("manual", None)
    assert outcomes == [outcome]
    assert len(holder.current.suspensions) == 2
    assert len(before.suspensions) == 1  # a request holding the old policy keeps it intact


async def test_invalid_change_keeps_the_old_policy_and_sets_last_error(policy_dir: Path) -> None:
    holder = PolicyHolder(load_policy(policy_dir))
    outcomes: list[ReloadOutcome] = []
    watcher = PolicyWatcher(policy_dir, holder, outcomes.append, watch_files=False)
    before = holder.current
    original = (policy_dir / "models.yaml").read_text()
    (policy_dir / "models.yaml").write_text("models:\n  - {id: x, access_class: nope}\n")
    outcome = await watcher.reload()
    assert not outcome.ok
    assert holder.current is before
    assert outcome.new_version is None
    assert holder.last_error == outcome.error
    assert "models[0].access_class" in str(outcome.error)
    (policy_dir / "models.yaml").write_text(original)
    outcome = await watcher.reload()
    assert outcome.ok
    assert holder.last_error is None


async def test_callback_failure_does_not_break_reloading(policy_dir: Path) -> None:
    holder = PolicyHolder(load_policy(policy_dir))

    def broken(outcome: ReloadOutcome) -> None:
        raise RuntimeError("callback failed")

    watcher = PolicyWatcher(policy_dir, holder, broken, watch_files=False)
    assert (await watcher.reload()).ok


async def test_sighup_triggers_a_reload(policy_dir: Path) -> None:
    holder = PolicyHolder(load_policy(policy_dir))
    outcomes: list[ReloadOutcome] = []
    done = asyncio.Event()

    def record(outcome: ReloadOutcome) -> None:
        outcomes.append(outcome)
        done.set()

    watcher = PolicyWatcher(policy_dir, holder, record, watch_files=False)
    await watcher.start()
    try:
        (policy_dir / "suspensions.yaml").write_text(CHANGED_SUSPENSIONS)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        await watcher.stop()
    assert [(o.ok, o.trigger) for o in outcomes] == [(True, "sighup")]
    assert len(holder.current.suspensions) == 2


async def test_file_change_triggers_a_reload(policy_dir: Path) -> None:
    holder = PolicyHolder(load_policy(policy_dir))
    outcomes: list[ReloadOutcome] = []
    done = asyncio.Event()

    def record(outcome: ReloadOutcome) -> None:
        outcomes.append(outcome)
        if outcome.ok and outcome.new_version != outcome.old_version:
            done.set()

    watcher = PolicyWatcher(policy_dir, holder, record, debounce_ms=50)
    await watcher.start()
    try:
        await asyncio.sleep(0.3)  # let the watcher start watching before the change
        (policy_dir / "suspensions.yaml").write_text(CHANGED_SUSPENSIONS)
        await asyncio.wait_for(done.wait(), timeout=15)
    finally:
        await watcher.stop()
    assert outcomes[-1].trigger == "file_change"
    assert len(holder.current.suspensions) == 2
