"""`make run AT=...`: a clock the certificates are valid at, and an audit log whose
record times never go backwards."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit import AuditLog, AuditSettings
from gateway.audit.keys import HMAC_KEY_FILE, SIGNING_KEY_FILE
from gateway.demo.clock import DemoError, check_material, check_store_key, demo_clock, store_for
from gateway.demo.material import ORIGIN, VALID_FROM, ensure_material, validity
from gateway.records import event_record

AT = datetime(2027, 1, 5, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_material(tmp_path_factory.mktemp("certs") / "dev")


async def write_records(material: Path, store: Path, *moments: datetime) -> None:
    settings = AuditSettings(
        store=store,
        origin=ORIGIN,
        signing_key=material / SIGNING_KEY_FILE,
        hmac_key=material / HMAC_KEY_FILE,
        checkpoint_every_records=100,
        checkpoint_every_seconds=3600,
    )
    log = AuditLog(settings)
    await log.start()
    for moment in moments:
        await log.append(event_record(moment.timestamp(), "policy_reload", trigger="manual"))
    await log.stop()


def test_each_at_gets_a_store_of_its_own_and_the_real_clock_the_default(tmp_path: Path) -> None:
    default = tmp_path / "var" / "audit.db"
    assert store_for(default, None) == default
    assert store_for(default, AT) == tmp_path / "var" / "audit-at-20270105T120000Z.db"
    later = AT + timedelta(microseconds=5)
    assert store_for(default, later).name == "audit-at-20270105T120000.000005Z.db"


def test_a_fresh_store_starts_the_clock_at_at(tmp_path: Path) -> None:
    clock = demo_clock(tmp_path / "audit.db", AT)
    assert (clock.start, clock.note) == (AT, None)
    assert AT.timestamp() <= clock.read() < AT.timestamp() + 5


async def test_a_store_with_later_records_continues_after_them(
    material: Path, tmp_path: Path
) -> None:
    store = store_for(tmp_path / "audit.db", AT)
    last = AT + timedelta(minutes=10)
    await write_records(material, store, AT, last, AT + timedelta(minutes=3))

    clock = demo_clock(tmp_path / "audit.db", AT)

    assert clock.start == last + timedelta(milliseconds=1)
    assert clock.read() >= clock.start.timestamp()
    assert clock.note is not None
    assert "already holds records up to 2027-01-05T12:10:00Z" in clock.note


async def test_the_real_clock_refuses_a_store_with_records_from_the_future(
    material: Path, tmp_path: Path
) -> None:
    future = datetime.now(UTC) + timedelta(days=30)
    await write_records(material, tmp_path / "audit.db", future)

    with pytest.raises(DemoError, match="later than now: record times in one log only move"):
        demo_clock(tmp_path / "audit.db", None)


def test_new_material_is_valid_from_2025_for_ten_years(material: Path) -> None:
    not_before, not_after = validity(material)
    assert not_before == VALID_FROM
    assert not_after >= datetime.now(UTC) + timedelta(days=3649)
    check_material(material, AT, at_given=True)


def test_an_at_before_the_certificates_is_refused_with_the_reason(material: Path) -> None:
    with pytest.raises(DemoError) as caught:
        check_material(material, datetime(2024, 6, 1, tzinfo=UTC), at_given=True)
    message = str(caught.value)
    assert "AT=2024-06-01T00:00:00Z is outside the span" in message
    assert "every caller would get 401 cert.not_yet_valid" in message
    assert "Choose an AT in that span" in message


def test_material_made_by_an_older_demo_is_checked_as_it_is(tmp_path: Path) -> None:
    # Older demos made certificates valid from the moment they ran.
    made = datetime.now(UTC)
    old = ensure_material(tmp_path / "dev", not_before=made)

    with pytest.raises(DemoError, match=r"401 cert\.not_yet_valid"):
        check_material(old, made - timedelta(days=1), at_given=True)


def test_a_garbage_at_names_at_and_every_accepted_form() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.demo", "--", "garbage"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "error: argument AT: 'garbage' is not a time: give" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_store_signed_with_another_audit_key_is_named_before_start(
    material: Path, tmp_path: Path
) -> None:
    store = tmp_path / "audit.db"
    await write_records(material, store, AT)
    remade = ensure_material(tmp_path / "remade")

    check_store_key(store, material / "audit-signing.pub")
    with pytest.raises(DemoError) as caught:
        check_store_key(store, remade / "audit-signing.pub")
    assert f"{store} was signed with another audit key" in str(caught.value)
    assert "Move that store aside" in str(caught.value)
