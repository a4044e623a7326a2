import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import sqlite3
import time
from pathlib import Path

import pytest

from gateway.audit import (
    AuditLog,
    AuditSettings,
    AuditUnavailable,
    BodyDigest,
    RecordError,
    RecordFilter,
    SQLiteAuditStore,
    leaf_hash,
    load_hmac_key,
    load_verifier,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from gateway.audit.proofs import StoredTree
from gateway.config import ConfigError, Section

from .conftest import ORIGIN, make_record
from .test_tree import NaiveTree


def _quick_store(path: Path, readonly: bool) -> SQLiteAuditStore:
    # A short lock wait keeps the fail-closed tests fast; the store is the real one.
    return SQLiteAuditStore(path, readonly=readonly, busy_timeout_ms=50)


def _patient(path: Path, readonly: bool) -> SQLiteAuditStore:
    # A lock held elsewhere makes this store's writes wait: a real stall, for seconds.
    return SQLiteAuditStore(path, readonly=readonly, busy_timeout_ms=3000)


async def _started(settings: AuditSettings) -> AuditLog:
    log = AuditLog(settings, store_factory=_quick_store)
    await log.start()
    return log


def _latest_note(settings: AuditSettings) -> str:
    store = SQLiteAuditStore(settings.store, readonly=True)
    try:
        latest = store.latest_checkpoint()
    finally:
        store.close()
    assert latest is not None
    return latest.note


def _stored(settings: AuditSettings) -> list[bytes]:
    store = SQLiteAuditStore(settings.store, readonly=True)
    try:
        return [bytes(row.data) for row in store.iter_records()]
    finally:
        store.close()


async def test_appends_return_consecutive_indexes_and_are_stored_canonically(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    indexes = [await log.append(make_record(n)) for n in range(3)]
    await log.stop()
    assert indexes == [0, 1, 2]
    stored = _stored(settings)
    assert len(stored) == 3
    first = json.loads(stored[0])
    assert first["index"] == 0
    assert make_record(0) == {k: v for k, v in first.items() if k != "index"}
    expected = json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert expected.encode() == stored[0]


async def test_concurrent_appenders_each_get_a_distinct_durable_index(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    indexes = await asyncio.gather(*(log.append(make_record(n)) for n in range(200)))
    await log.stop()
    assert list(range(200)) == sorted(indexes)
    stored = _stored(settings)
    for number, index in enumerate(indexes):
        assert f"req-{number}" == json.loads(stored[index])["request_id"]


async def test_checkpoints_are_signed_every_n_records_and_at_stop(
    settings: AuditSettings, verifier_file: Path
) -> None:
    log = await _started(settings)
    assert await log.latest_checkpoint() is None
    for n in range(25):
        await log.append(make_record(n))
    mid = await log.latest_checkpoint()
    assert mid is not None
    verifier = load_verifier(verifier_file)
    assert 20 <= open_checkpoint(mid, verifier).tree_size < 25
    await log.stop()
    final = _latest_note(settings)
    assert open_checkpoint(final, verifier).tree_size == 25


async def test_a_checkpoint_is_signed_after_the_configured_seconds(
    settings: AuditSettings, verifier_file: Path
) -> None:
    fast = dataclasses.replace(settings, checkpoint_every_seconds=0.05)
    log = await _started(fast)
    await log.append(make_record(0))
    for _ in range(100):
        if await log.latest_checkpoint() is not None:
            break
        await asyncio.sleep(0.02)
    note = await log.latest_checkpoint()
    await log.stop()
    assert note is not None
    assert open_checkpoint(note, load_verifier(verifier_file)).tree_size == 1


async def test_statistics_count_batches_and_show_the_unsigned_tail(
    settings: AuditSettings,
) -> None:
    before = time.time()
    log = await _started(dataclasses.replace(settings, checkpoint_every_records=1000))
    fresh = log.statistics()
    assert (fresh.queued, fresh.batches, fresh.records, fresh.tree_size) == (0, 0, 0, 0)
    assert fresh.checkpoint_time is None
    await asyncio.gather(*(log.append(make_record(n)) for n in range(30)))
    await log.append(make_record(30))
    counted = log.statistics()
    await log.stop()
    assert counted.records == 31
    assert 2 <= counted.batches <= 31
    assert counted.last_batch == 1
    assert counted.tree_size == 31
    assert counted.signed_size == 0  # nothing signed yet: the whole tree is the tail
    restarted = await _started(settings)
    signed = restarted.statistics()
    await restarted.stop()
    assert signed.signed_size == 31  # the checkpoint signed at stop
    assert signed.checkpoint_time is not None
    assert before <= signed.checkpoint_time <= time.time()


async def test_restart_rebuilds_the_tree_and_continues_the_indexes(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    for n in range(13):
        await log.append(make_record(n))
    await log.stop()
    again = await _started(settings)
    assert again.tree_size == 13
    assert await again.append(make_record(13)) == 13
    await again.stop()


async def test_start_refuses_a_store_that_disagrees_with_its_checkpoint(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    for n in range(12):
        await log.append(make_record(n))
    await log.stop()
    forged = _stored(settings)[3].replace(b"req-3", b"req-X")
    with sqlite3.connect(settings.store) as connection:
        connection.execute(
            "UPDATE records SET data = ?, leaf_hash = ?, request_id = 'req-X' WHERE leaf_index = 3",
            (forged, leaf_hash(forged)),
        )
    with pytest.raises(AuditUnavailable, match="checkpoint at size"):
        await AuditLog(settings).start()


async def test_start_refuses_a_store_truncated_below_its_checkpoint(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    for n in range(12):
        await log.append(make_record(n))
    await log.stop()
    with sqlite3.connect(settings.store) as connection:
        connection.execute("DELETE FROM records WHERE leaf_index >= 5")
    with pytest.raises(AuditUnavailable, match="record 5"):
        await AuditLog(settings).start()


async def test_append_fails_closed_while_the_store_cannot_write_and_recovers(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    assert await log.append(make_record(0)) == 0
    assert log.unavailable_reason is None
    # Another process holding the write lock is a real, root-proof write failure.
    blocker = sqlite3.connect(settings.store, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(AuditUnavailable):
            await log.append(make_record(1))
        assert log.unavailable_reason is not None
        assert "locked" in log.unavailable_reason
        with pytest.raises(AuditUnavailable):
            await log.append(make_record(2))
        assert log.tree_size == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert await log.append(make_record(3)) == 1
    assert log.unavailable_reason is None
    await log.stop()
    assert [json.loads(d)["request_id"] for d in _stored(settings)] == ["req-0", "req-3"]


async def test_a_stalled_write_refuses_within_the_timeout_and_records_what_it_answered(
    settings: AuditSettings,
) -> None:
    log = AuditLog(dataclasses.replace(settings, write_timeout_seconds=0.3), store_factory=_patient)
    await log.start()
    assert await log.append(make_record(0)) == 0
    blocker = sqlite3.connect(settings.store, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        stuck = asyncio.create_task(log.append(make_record(1)))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(log.append(make_record(2)))
        # The appender of the stalled write itself is refused within the timeout (+ a
        # watchdog tick), not after the lock wait: its caller gets a 503 in time.
        with pytest.raises(AuditUnavailable, match="stalled"):
            await stuck
        assert time.monotonic() - started < 0.3 + 0.15
        with pytest.raises(AuditUnavailable, match="stalled"):
            await queued
        refused_at = time.monotonic()
        with pytest.raises(AuditUnavailable, match="stalled"):
            await log.append(make_record(3))
        assert time.monotonic() - refused_at < 0.1
        assert log.unavailable_reason == "audit store writes are stalled"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    async with asyncio.timeout(10):  # the stalled write ends once the lock is free
        while log.unavailable_reason is not None:
            await asyncio.sleep(0.02)
    assert await log.append(make_record(4)) >= 2
    assert log.unavailable_reason is None
    await log.stop()
    stored = [json.loads(d) for d in _stored(settings)]
    # The stalled write committed after all: its record is followed by a completion that
    # says the caller was answered 503 and nothing was forwarded.
    assert [(r["kind"], r["request_id"]) for r in stored] == [
        ("request", "req-0"),
        ("request", "req-1"),
        ("completion", "req-1"),
        ("request", "req-4"),
    ]
    assert (stored[2]["request_index"], stored[2]["status"], stored[2]["error"]) == (
        1,
        503,
        "audit.write_timeout",
    )


async def test_a_full_queue_refuses_appends(settings: AuditSettings) -> None:
    log = AuditLog(dataclasses.replace(settings, max_queued=2), store_factory=_patient)
    await log.start()
    blocker = sqlite3.connect(settings.store, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        first = asyncio.create_task(log.append(make_record(0)))
        await asyncio.sleep(0.05)  # the writer took it and is waiting for the lock
        queued = [asyncio.create_task(log.append(make_record(n))) for n in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(AuditUnavailable, match="queue is full"):
            await log.append(make_record(3))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert [await first, *[await q for q in queued]] == [0, 1, 2]
    await log.stop()


async def test_a_failing_insert_fails_the_whole_batch_without_consuming_indexes(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    await log.append(make_record(0))
    with sqlite3.connect(settings.store) as connection:
        connection.execute(
            "CREATE TRIGGER full BEFORE INSERT ON records BEGIN"
            " SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    results = await asyncio.gather(
        *(log.append(make_record(n)) for n in range(1, 6)), return_exceptions=True
    )
    assert all(isinstance(result, AuditUnavailable) for result in results)
    with sqlite3.connect(settings.store) as connection:
        connection.execute("DROP TRIGGER full")
    assert await log.append(make_record(6)) == 1
    await log.stop()
    assert len(_stored(settings)) == 2


async def test_append_after_stop_is_refused(settings: AuditSettings) -> None:
    log = await _started(settings)
    await log.stop()
    with pytest.raises(AuditUnavailable):
        await log.append(make_record(0))
    assert log.unavailable_reason is not None


@pytest.mark.parametrize(
    "record",
    [
        make_record(0, index=4),
        make_record(0, kind="gossip"),
        make_record(0, time="yesterday"),
        make_record(0, latency=float("nan")),
        make_record(0, model=7),
    ],
)
async def test_invalid_records_are_refused_before_queueing(
    settings: AuditSettings, record: dict[str, object]
) -> None:
    log = await _started(settings)
    with pytest.raises(RecordError):
        await log.append(record)
    assert log.tree_size == 0
    await log.stop()


async def test_record_with_proof_verifies_against_the_latest_checkpoint(
    settings: AuditSettings, verifier_file: Path
) -> None:
    log = await _started(settings)
    for n in range(30):
        await log.append(make_record(n))
    bundle = await log.record_with_proof(17)
    checkpoint = open_checkpoint(bundle["checkpoint"], load_verifier(verifier_file))
    data = base64.b64decode(bundle["record"])
    proof = [base64.b64decode(p) for p in bundle["proof"]]
    verify_inclusion(17, checkpoint.tree_size, leaf_hash(data), proof, checkpoint.root_hash)
    with pytest.raises(RecordError):
        await log.record_with_proof(10_000)
    await log.stop()


async def test_stored_hashes_give_the_reference_roots_and_proofs(
    settings: AuditSettings,
) -> None:
    big = dataclasses.replace(settings, batch_max=64, checkpoint_every_records=100)
    log = await _started(big)
    await asyncio.gather(*(log.append(make_record(n)) for n in range(600)))
    await log.stop()
    naive = NaiveTree(_stored(settings))
    store = SQLiteAuditStore(settings.store, readonly=True)
    tree = StoredTree(store)
    try:
        for size in range(1, 601):
            assert naive.mth(0, size) == tree.root(size)
        for size in (1, 17, 256, 257, 511, 512, 600):
            for index in range(0, size, 7):
                assert naive.path(index, 0, size) == tree.inclusion_proof(index, size)
            for first in range(1, size + 1, 13):
                assert naive.subproof(first, 0, size, True) == tree.consistency_proof(first, size)
    finally:
        store.close()


async def test_consistency_proof_between_two_sizes_verifies(settings: AuditSettings) -> None:
    log = await _started(settings)
    for n in range(40):
        await log.append(make_record(n))
    proof = await log.consistency_proof(11, 40)
    naive = NaiveTree(_stored(settings))
    verify_consistency(11, 40, proof, naive.mth(0, 11), naive.mth(0, 40))
    with pytest.raises(RecordError):
        await log.consistency_proof(0, 40)
    await log.stop()


async def test_query_filters_by_column_and_time(settings: AuditSettings) -> None:
    log = await _started(settings)
    for n in range(30):
        await log.append(make_record(n))
    denied = await log.query(RecordFilter(decision="deny"), -1, 100)
    assert [n for n in range(30) if n % 3 == 0] == [index for index, _ in denied]
    page = await log.query(RecordFilter(decision="deny"), 9, 2)
    assert [index for index, _ in page] == [12, 15]
    window = RecordFilter(since="2026-11-27T06:00:05Z", until="2026-11-27T06:00:07.123456Z")
    assert [index for index, _ in await log.query(window, -1, 100)] == [5, 6, 7]
    by_subject = await log.query(RecordFilter.from_mapping({"subject": "user-3"}), -1, 100)
    assert all(json.loads(d)["principal"]["subject"] == "user-3" for _, d in by_subject)
    assert len(by_subject) == 4
    await log.stop()


def test_filter_from_mapping_rejects_unknown_names_and_bad_times() -> None:
    with pytest.raises(RecordError):
        RecordFilter.from_mapping({"colour": "red"})
    with pytest.raises(RecordError):
        RecordFilter.from_mapping({"since": "last tuesday"})


async def test_body_digest_is_keyed_hmac_sha256_whole_or_incremental(
    settings: AuditSettings,
) -> None:
    log = await _started(settings)
    digest = log.body_digest
    key = load_hmac_key(settings.hmac_key)
    expected = "hmac-sha256:" + hmac.new(key, b"hello world", hashlib.sha256).hexdigest()
    incremental = digest.incremental()
    incremental.update(b"hello ")
    incremental.update(b"world")
    assert expected == digest.digest(b"hello world")
    assert expected == incremental.hexdigest()
    assert "key" not in repr(BodyDigest(key)).replace("key=<hidden>", "")
    await log.stop()


def _section(data: dict[str, object], base: Path) -> Section:
    return Section({"audit": data}, "gateway.yaml", "", base).section("audit")


def test_settings_parse_with_defaults(key_dir: Path, tmp_path: Path) -> None:
    settings = AuditSettings.from_section(
        _section(
            {
                "store": "var/audit.db",
                "origin": ORIGIN,
                "signing_key": str(key_dir / "audit-signing.key"),
                "hmac_key": str(key_dir / "audit-hmac.key"),
            },
            tmp_path,
        )
    )
    assert tmp_path / "var" / "audit.db" == settings.store
    assert (
        settings.checkpoint_every_records,
        settings.checkpoint_every_seconds,
        settings.batch_max,
    ) == (1000, 10.0, 512)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"colour": "blue"}, "audit.colour"),
        ({"origin": "someone.else/log"}, "audit.origin"),
        ({"hmac_key": "missing.key"}, "audit.hmac_key"),
        ({"batch_max": 0}, "audit.batch_max"),
        ({"signing_key": "KEYS/audit-hmac.key"}, "audit.signing_key"),
    ],
)
def test_settings_errors_name_the_key(
    key_dir: Path, tmp_path: Path, change: dict[str, object], key: str
) -> None:
    data: dict[str, object] = {
        "store": "var/audit.db",
        "origin": ORIGIN,
        "signing_key": str(key_dir / "audit-signing.key"),
        "hmac_key": str(key_dir / "audit-hmac.key"),
    }
    data.update(
        {k: v.replace("KEYS", str(key_dir)) if isinstance(v, str) else v for k, v in change.items()}
    )
    with pytest.raises(ConfigError) as caught:
        AuditSettings.from_section(_section(data, tmp_path))
    assert key == caught.value.key
