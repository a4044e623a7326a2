"""What `audit verify` vouches for, tried as a forger would: an unsigned tail is never
"verified", every column a query reads is checked against the record's bytes, and every
diagnostic names the right index and the kind of damage."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from gateway.audit import (
    AuditLog,
    AuditSettings,
    CompactRange,
    IntegrityError,
    RecordFilter,
    SQLiteAuditStore,
    canonicalize,
    leaf_hash,
)
from gateway.audit.records import FIELD_NAMES

from .conftest import make_record
from .test_cli import run_cli


@pytest.fixture
async def store(settings: AuditSettings) -> Path:
    """40 records, the newest checkpoint at 40 (signed at stop)."""
    log = AuditLog(settings)
    await log.start()
    for n in range(40):
        await log.append(make_record(n))
    await log.stop()
    assert isinstance(settings.store, Path)
    return settings.store


def _verify(store: Path, key: Path, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(["audit", "verify", "--store", str(store), "--key", str(key), *extra])
    return code, out + err


def _sql(store: Path, statement: str, *parameters: object) -> None:
    with sqlite3.connect(store) as connection:
        connection.execute(statement, parameters)


def _append_forged(store: Path, record: dict[str, object]) -> None:
    """Append a well-formed record after the last checkpoint, fixing everything the store
    keeps about it (leaf hash, columns, nodes, head), as someone with write access could."""
    with sqlite3.connect(store) as connection:
        rows = connection.execute("SELECT data FROM records ORDER BY leaf_index").fetchall()
        state = CompactRange()
        for (data,) in rows:
            state.append(leaf_hash(bytes(data)))
        index = state.size
        data = canonicalize({**record, "index": index})
        closed = state.append(leaf_hash(data))
        connection.execute(
            "INSERT INTO records VALUES (?, ?, ?, 0, ?, ?, NULL, NULL, NULL, ?, ?)",
            (index, data, leaf_hash(data), record["kind"], record["request_id"],
             record["decision"], record["reason"]),
        )  # fmt: skip
        for level, node_index, node in closed:
            if level % 4 == 0:
                connection.execute("INSERT INTO nodes VALUES (?, ?, ?)", (level, node_index, node))
        connection.execute(
            "UPDATE tree_head SET tree_size = ?, frontier = ?", (state.size, b"".join(state.hashes))
        )
        connection.execute(
            "UPDATE records SET time_us = ? WHERE leaf_index = ?",
            (_time_us(str(record["time"])), index),
        )


def _time_us(text: str) -> int:
    from gateway.audit.records import parse_time

    return parse_time(text)


FORGED = {
    "kind": "request",
    "time": "2026-11-27T07:00:00.000000Z",
    "request_id": "forged-1",
    "decision": "allow",
    "reason": "allow.released",
}


def test_a_forged_record_after_the_last_checkpoint_is_an_unsigned_tail_never_verified(
    store: Path, verifier_file: Path, tmp_path: Path
) -> None:
    code, trusted, _ = run_cli(["audit", "checkpoint", "--store", str(store)])
    (tmp_path / "trusted").write_text(trusted)
    _append_forged(store, FORGED)
    code, output = _verify(store, verifier_file)
    assert code == 0
    assert "OK: tree_size 40 " in output  # the 41st record is not counted as verified
    assert "unsigned tail: records 40..40 (1)" in output
    code, output = _verify(store, verifier_file, "--require-signed")
    assert code == 1
    assert "records 40..40 (1) are not covered by a signed checkpoint" in output
    code, output = _verify(store, verifier_file, "--trusted-checkpoint", str(tmp_path / "trusted"))
    assert code == 1
    assert "unsigned tail" in output


def test_a_trusted_checkpoint_missing_from_the_store_is_named(
    store: Path, verifier_file: Path, tmp_path: Path
) -> None:
    code, trusted, _ = run_cli(["audit", "checkpoint", "--store", str(store)])
    assert code == 0
    (tmp_path / "trusted").write_text(trusted)
    _sql(store, "DELETE FROM checkpoints WHERE tree_size = 40")
    code, output = _verify(store, verifier_file, "--trusted-checkpoint", str(tmp_path / "trusted"))
    assert code == 1
    assert "the trusted checkpoint at size 40 is not stored" in output
    assert "checkpoints removed" in output


@pytest.mark.parametrize("column", [n for n in FIELD_NAMES if n != "time_us"])
def test_every_query_column_is_checked_against_the_record(
    store: Path, verifier_file: Path, column: str
) -> None:
    # Record 12 is a denial (every third record is); change what a filter would read.
    _sql(store, f"UPDATE records SET {column} = 'something else' WHERE leaf_index = 12")  # noqa: S608
    code, output = _verify(store, verifier_file)
    assert code == 1
    assert f"record 12: its query columns differ from the record ({column})" in output


def test_a_changed_time_column_is_named_too(store: Path, verifier_file: Path) -> None:
    _sql(store, "UPDATE records SET time_us = time_us + 1 WHERE leaf_index = 7")
    code, output = _verify(store, verifier_file)
    assert (code, "record 7: its query columns differ from the record (time_us)" in output) == (
        1,
        True,
    )


def test_a_denial_hidden_from_filters_is_reported_by_queries_and_verify(
    store: Path, settings: AuditSettings, verifier_file: Path
) -> None:
    _sql(store, "UPDATE records SET decision = 'allow' WHERE leaf_index = 12")
    code, _, err = run_cli(["audit", "query", "--store", str(store), "--decision", "allow"])
    assert code == 1
    assert "record 12: its query columns differ from the record (decision)" in err

    async def query() -> None:
        log = AuditLog(dataclasses.replace(settings, checkpoint_every_records=10_000))
        await log.start()
        try:
            with pytest.raises(IntegrityError, match="record 12"):
                await log.query(RecordFilter(decision="allow"), -1, 100)
        finally:
            await log.stop()

    asyncio.run(query())


def test_two_rows_with_one_index_name_the_duplicate(store: Path, verifier_file: Path) -> None:
    with sqlite3.connect(store) as connection:
        # Without the primary key a second row 20 fits: the table rebuilt by hand.
        connection.execute("CREATE TABLE copy AS SELECT * FROM records")
        connection.execute("INSERT INTO copy SELECT * FROM records WHERE leaf_index = 20")
        connection.execute("DROP TABLE records")
        connection.execute("ALTER TABLE copy RENAME TO records")
    code, output = _verify(store, verifier_file)
    assert code == 1
    assert "record 20: is stored twice" in output


def test_a_gap_names_the_first_missing_record(store: Path, verifier_file: Path) -> None:
    _sql(store, "DELETE FROM records WHERE leaf_index IN (17, 18)")
    code, output = _verify(store, verifier_file)
    assert code == 1
    assert "record 17: is missing (records 17..18 are not in the store)" in output


def test_a_node_hash_that_proofs_would_read_is_checked(store: Path, verifier_file: Path) -> None:
    _sql(store, "UPDATE nodes SET hash = zeroblob(32) WHERE level = 4 AND node_index = 1")
    code, output = _verify(store, verifier_file)
    assert code == 1
    assert "stored node 4/1 does not match the records it covers" in output
    _sql(store, "DELETE FROM nodes WHERE level = 4 AND node_index = 1")
    code, output = _verify(store, verifier_file)
    assert "stored node 4/1 is missing" in output


def test_a_stored_tree_head_that_disagrees_with_the_records_is_named(
    store: Path, verifier_file: Path
) -> None:
    _sql(store, "UPDATE tree_head SET tree_size = 41, frontier = zeroblob(96)")
    code, output = _verify(store, verifier_file)
    assert code == 1
    assert "the stored tree head says 41 records, the store holds 40" in output
    _sql(store, "UPDATE tree_head SET tree_size = 40, frontier = zeroblob(64)")
    code, output = _verify(store, verifier_file)
    assert (code, "the stored tree head's hashes do not match the records" in output) == (1, True)
    _sql(store, "UPDATE tree_head SET frontier = zeroblob(5)")
    code, output = _verify(store, verifier_file)
    assert (code, "the stored tree head is malformed" in output) == (1, True)


def test_backup_while_appending_is_consistent_and_verifies(
    settings: AuditSettings, verifier_file: Path, tmp_path: Path
) -> None:
    async def scenario() -> tuple[int, str]:
        log = AuditLog(dataclasses.replace(settings, checkpoint_every_records=25))
        await log.start()
        writing = asyncio.gather(*(log.append(make_record(n)) for n in range(300)))
        await asyncio.sleep(0.01)
        # While the log appends: a consistent copy, taken through SQLite's backup API.
        backup = await asyncio.to_thread(
            run_cli,
            ["audit", "backup", "--store", str(settings.store), "--key", str(verifier_file),
             str(tmp_path / "backup.db")],
        )  # fmt: skip
        await writing
        await log.stop()
        return backup[0], backup[1] + backup[2]

    code, output = asyncio.run(scenario())
    assert code == 0, output
    assert "the copy verifies" in output
    code, output = _verify(tmp_path / "backup.db", verifier_file)
    assert code == 0, output


def test_after_shutdown_the_file_alone_holds_the_whole_log(
    settings: AuditSettings, verifier_file: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        log = AuditLog(settings)
        await log.start()
        for n in range(30):
            await log.append(make_record(n))
        await log.record_with_proof(3)  # opens the reader connection
        await log.stop()

    asyncio.run(scenario())
    assert isinstance(settings.store, Path)
    wal = settings.store.with_name(settings.store.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0
    copy = tmp_path / "plain-copy.db"
    copy.write_bytes(settings.store.read_bytes())
    code, output = _verify(copy, verifier_file, "--require-signed")
    assert code == 0, output
    assert "OK: tree_size 30 " in output


def test_query_rows_carry_the_records_they_describe(store: Path) -> None:
    reader = SQLiteAuditStore(store, readonly=True)
    try:
        rows = reader.query(RecordFilter(decision="deny"), -1, 100)
    finally:
        reader.close()
    assert [row.index for row in rows] == list(range(0, 40, 3))
    assert all(json.loads(row.data)["decision"] == "deny" for row in rows)
