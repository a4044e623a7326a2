"""Both stores, as the fleet uses them: many writer processes on one log, copies between
stores byte for byte, schema versions, and the store URL grammar."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gateway.audit import (
    AuditLog,
    AuditSettings,
    SchemaError,
    StoreError,
    load_verifier,
    open_store,
    parse_location,
    verify_store,
)
from gateway.audit.stores import SCHEMA_VERSION
from tests.postgres import private_schema

from .conftest import make_record
from .test_cli import run_cli
from .test_tree import NaiveTree

HELPER = Path(__file__).with_name("crash_writer.py")
REPO = Path(__file__).parents[2]


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """A store location of each kind: a SQLite file, or a private PostgreSQL schema."""
    if request.param == "sqlite":
        yield tmp_path / "store" / "audit.db"
    else:
        with private_schema() as url:
            yield url


def _settings(settings: AuditSettings, location: Path | str) -> AuditSettings:
    return dataclasses.replace(settings, store=location)


def _writer(settings: AuditSettings, count: int, label: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            str(HELPER),
            str(settings.store),
            str(settings.signing_key),
            str(settings.hmac_key),
            settings.origin,
            str(count),
            label,
        ],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )


@pytest.mark.slow
async def test_writer_processes_racing_on_one_store_share_one_tree(
    settings: AuditSettings, location: Path | str, verifier_file: Path
) -> None:
    settings = _settings(settings, location)
    writers = [_writer(settings, 400, label) for label in ("a", "b", "c", "d")]
    acknowledged: dict[int, str] = {}
    try:
        for process in writers:
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0
            for line in out.decode().splitlines():
                index, request_id = line.split()
                assert int(index) not in acknowledged, f"index {index} handed out twice"
                acknowledged[int(index)] = request_id
    finally:
        for process in writers:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert sorted(acknowledged) == list(range(1600))
    store = open_store(location, readonly=True)
    try:
        result = verify_store(store, load_verifier(verifier_file), require_signed=True)
        stored = {row.index: bytes(row.data) for row in store.iter_records()}
        checkpoints = store.checkpoints()
    finally:
        store.close()
    assert (result.tree_size, result.unsigned) == (1600, 0)
    for index, request_id in acknowledged.items():
        assert f'"request_id":"{request_id}"'.encode() in stored[index]
    # One tree: every checkpoint any process signed is a root of the same leaves.
    naive = NaiveTree([stored[i] for i in range(1600)])
    for checkpoint in checkpoints:
        assert checkpoint.root_hash == naive.mth(0, checkpoint.tree_size)


async def test_a_log_continues_across_processes_and_restarts(
    settings: AuditSettings, location: Path | str
) -> None:
    settings = _settings(settings, location)
    first, second = AuditLog(settings), AuditLog(settings)
    await first.start()
    await second.start()
    indexes = await asyncio.gather(
        *(log.append(make_record(n)) for n, log in enumerate([first, second] * 20))
    )
    assert sorted(indexes) == list(range(40))
    await first.stop()
    assert await second.append(make_record(40)) == 40
    await second.stop()
    again = AuditLog(settings)
    await again.start()
    assert again.tree_size == 41
    await again.stop()


async def test_checkpoint_history_pages_from_the_newest_checkpoint_down(
    settings: AuditSettings, location: Path | str
) -> None:
    settings = _settings(settings, location)
    log = AuditLog(settings)
    await log.start()
    for n in range(60):  # a checkpoint is due every 10 records (the settings)
        await log.append(make_record(n))
    await log.stop()  # the signer runs after appends return: let it finish, then read
    log = AuditLog(settings)
    await log.start()
    size, everything = await log.checkpoint_history(limit=1000)
    assert size == 60
    assert len(everything) >= 2  # at 60 (the final one) and before it
    sizes = [checkpoint.tree_size for checkpoint in everything]
    assert sizes == sorted(set(sizes), reverse=True)
    assert sizes[0] <= size
    paged: list[int] = []
    before = None
    while True:
        _, page = await log.checkpoint_history(before, limit=2)
        assert len(page) <= 2
        if not page:
            break
        paged.extend(checkpoint.tree_size for checkpoint in page)
        before = page[-1].tree_size
    assert paged == sizes
    await log.stop()


def test_copy_moves_a_log_byte_for_byte_between_store_kinds(
    settings: AuditSettings, verifier_file: Path, tmp_path: Path
) -> None:
    sqlite_source = tmp_path / "source.db"

    async def write() -> None:
        log = AuditLog(_settings(settings, sqlite_source))
        await log.start()
        for n in range(75):
            await log.append(make_record(n))
        await log.stop()

    asyncio.run(write())
    trusted = tmp_path / "trusted"
    code, note, _ = run_cli(["audit", "checkpoint", "--store", str(sqlite_source)])
    trusted.write_text(note)
    key = ["--key", str(verifier_file), "--trusted-checkpoint", str(trusted)]
    back = tmp_path / "back.db"
    with private_schema() as url:
        code, out, err = run_cli(["audit", "copy", str(sqlite_source), url, *key])
        assert code == 0, err
        assert "copied 75 records" in out
        assert "password" not in out
        code, out, err = run_cli(["audit", "copy", url, str(back), *key])
        assert code == 0, err
        # A copy never lands on a log that already has records.
        code, _, err = run_cli(["audit", "copy", str(sqlite_source), url, *key])
        assert code == 2
        assert "not empty" in err
    assert _everything(sqlite_source) == _everything(back)
    code, out, _ = run_cli(["audit", "verify", "--store", str(back), *key])
    assert code == 0, out


def _everything(path: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with sqlite3.connect(path) as connection:
        records = connection.execute("SELECT * FROM records ORDER BY leaf_index").fetchall()
        checkpoints = connection.execute(
            "SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size"
        ).fetchall()
    return records, checkpoints


async def test_a_store_with_a_newer_schema_is_refused(
    settings: AuditSettings, location: Path | str
) -> None:
    settings = _settings(settings, location)
    open_store(location).close()
    if isinstance(location, Path):
        with sqlite3.connect(location) as connection:
            connection.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    else:
        with psycopg.connect(location, autocommit=True) as connection:
            connection.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaError, match="newer than this gateway"):
        open_store(location)
    log = AuditLog(settings)
    with pytest.raises(Exception, match="newer than this gateway"):
        await log.start()


async def test_an_old_single_writer_store_is_migrated_and_keeps_verifying(
    settings: AuditSettings, verifier_file: Path, tmp_path: Path
) -> None:
    store = tmp_path / "old.db"
    log = AuditLog(_settings(settings, store))
    await log.start()
    for n in range(23):
        await log.append(make_record(n))
    await log.stop()
    # Make it the layout of the single-writer gateway: no schema version, no tree head.
    with sqlite3.connect(store) as connection:
        connection.execute("DROP TABLE schema_version")
        connection.execute("DROP TABLE tree_head")
    again = AuditLog(_settings(settings, store))
    with pytest.raises(Exception, match="gateway audit migrate"):
        await again.start()
    code, out, err = run_cli(["audit", "migrate", "--store", str(store)])
    assert (code, err) == (0, "")
    assert "23 records" in out
    await again.start()
    assert await again.append(make_record(23)) == 23
    await again.stop()
    code, out, _ = run_cli(["audit", "verify", "--store", str(store), "--key", str(verifier_file)])
    assert code == 0, out


def test_store_locations_name_a_file_or_a_database(tmp_path: Path) -> None:
    assert parse_location("var/audit.db", tmp_path) == tmp_path / "var" / "audit.db"
    assert parse_location("sqlite:///var/audit.db", tmp_path) == tmp_path / "var" / "audit.db"
    assert parse_location("sqlite:////srv/audit.db", tmp_path) == Path("/srv/audit.db")
    url = "postgresql://gateway@db.internal:5432/audit"
    assert parse_location(url) == url
    for bad in ("mysql://x/y", "sqlite://", "sqlite:///"):
        with pytest.raises(ValueError, match=r"sqlite|scheme"):
            parse_location(bad)


def test_an_unreachable_database_is_a_store_error_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://gateway:s3cret@127.0.0.1:1/audit", write_timeout=0.5)
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)
