"""When the console warns that signing has stopped or fallen behind, and when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.audit import AuditSettings, StoredCheckpoint
from gateway.console.health import AGE_MARGIN_SECONDS, checkpoint_health

SETTINGS = AuditSettings(
    store=Path("unused.db"),
    origin="log",
    signing_key=Path("unused.key"),
    hmac_key=Path("unused.key"),
    checkpoint_every_records=100,
    checkpoint_every_seconds=10,
    batch_max=20,
)
NOW = 1_800_000_000.0


def _signed(size: int, seconds_ago: float) -> StoredCheckpoint:
    return StoredCheckpoint(size, bytes(32), "note", int((NOW - seconds_ago) * 1_000_000))


def test_a_log_that_keeps_signing_has_no_warning() -> None:
    health = checkpoint_health(150, _signed(100, 12), NOW, SETTINGS)
    assert (health.unsigned, health.warnings) == (50, ())


def test_a_quiet_log_with_an_old_checkpoint_and_nothing_unsigned_is_not_a_warning() -> None:
    assert checkpoint_health(100, _signed(100, 86_400), NOW, SETTINGS).warnings == ()


@pytest.mark.parametrize("extra", [0.5, 60, 86_400])
def test_records_waiting_past_twice_the_interval_and_the_margin_are_a_warning(
    extra: float,
) -> None:
    age = 2 * SETTINGS.checkpoint_every_seconds + AGE_MARGIN_SECONDS + extra
    (warning,) = checkpoint_health(101, _signed(100, age), NOW, SETTINGS).warnings
    assert "1 records wait unsigned" in warning
    assert "Signing may have stopped" in warning


def test_records_within_the_margin_are_not_yet_a_warning() -> None:
    age = 2 * SETTINGS.checkpoint_every_seconds + AGE_MARGIN_SECONDS - 0.5
    assert checkpoint_health(101, _signed(100, age), NOW, SETTINGS).warnings == ()


@pytest.mark.parametrize(("unsigned", "warned"), [(120, False), (121, True), (10_000, True)])
def test_a_tail_beyond_the_record_threshold_and_one_batch_is_a_warning(
    unsigned: int, warned: bool
) -> None:
    warnings = checkpoint_health(1000 + unsigned, _signed(1000, 1), NOW, SETTINGS).warnings
    assert any("unsigned tail is growing" in w for w in warnings) is warned


def test_records_with_no_checkpoint_at_all_are_a_warning() -> None:
    (warning,) = checkpoint_health(3, None, NOW, SETTINGS).warnings
    assert warning.startswith("No checkpoint has been signed yet")
    assert checkpoint_health(0, None, NOW, SETTINGS).warnings == ()
