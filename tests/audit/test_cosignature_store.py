"""Cosignatures in both stores: kept once per size and witness key, found by size and by
witness, added to stores created before the table existed, and copied with the log."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from gateway.audit import (
    AuditLog,
    AuditSettings,
    StoredCosignature,
    load_verifier,
    open_store,
)
from gateway.audit.copying import copy_store
from tests.postgres import private_schema

from .conftest import make_record


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    if request.param == "sqlite":
        yield tmp_path / "store" / "audit.db"
    else:
        with private_schema() as url:
            yield url


async def _log_of(settings: AuditSettings, location: Path | str, records: int) -> None:
    log = AuditLog(dataclasses.replace(settings, store=location))
    await log.start()
    for number in range(records):
        await log.append(make_record(number))
    await log.stop()


def _cosignature(size: int, witness: str, line: str = "x") -> StoredCosignature:
    return StoredCosignature(
        size, witness, b"\x01\x02\x03\x04", 1700000000, f"\u2014 {witness} {line}\n"
    )


async def test_cosignatures_are_kept_once_and_found_by_size_and_witness(
    settings: AuditSettings, location: Path | str
) -> None:
    await _log_of(settings, location, 25)  # checkpoints at 10, 20 and 25
    store = open_store(location)
    try:
        store.add_cosignatures([_cosignature(10, "w1"), _cosignature(10, "w2")])
        store.add_cosignatures([_cosignature(20, "w1"), _cosignature(10, "w1", "again")])
        assert [c.line for c in store.cosignatures(10)] == [
            "\u2014 w1 x\n",
            "\u2014 w2 x\n",
        ]
        assert [c.tree_size for c in store.cosignatures()] == [10, 10, 20]
        assert store.cosigned_size("w1", b"\x01\x02\x03\x04") == 20
        assert store.cosigned_size("w2", b"\x01\x02\x03\x04") == 10
        assert store.cosigned_size("w1", b"\x00\x00\x00\x00") == 0
        assert store.next_checkpoint(10).tree_size == 20  # type: ignore[union-attr]
        assert store.next_checkpoint(0).tree_size == 10  # type: ignore[union-attr]
        assert store.next_checkpoint(25) is None
    finally:
        store.close()


async def test_a_store_made_before_cosignatures_gets_the_table_when_opened_to_write(
    settings: AuditSettings, location: Path | str
) -> None:
    await _log_of(settings, location, 12)
    _drop_cosignatures(location)
    reader = open_store(location, readonly=True)
    try:
        assert reader.cosignatures() == []
        assert reader.cosigned_size("w1", b"\x01\x02\x03\x04") == 0
    finally:
        reader.close()
    await _log_of(settings, location, 3)  # a gateway opens it again
    writer = open_store(location)
    try:
        writer.add_cosignatures([_cosignature(10, "w1")])
        assert len(writer.cosignatures(10)) == 1
    finally:
        writer.close()


def _drop_cosignatures(location: Path | str) -> None:
    if isinstance(location, Path):
        with sqlite3.connect(location) as connection:
            connection.execute("DROP TABLE cosignatures")
    else:
        with psycopg.connect(location, autocommit=True) as connection:
            connection.execute("DROP TABLE cosignatures")


async def test_a_copy_keeps_the_cosignatures_of_the_checkpoints_it_copies(
    settings: AuditSettings, location: Path | str, tmp_path: Path, verifier_file: Path
) -> None:
    await _log_of(settings, location, 20)
    source = open_store(location)
    destination = open_store(tmp_path / "copy.db")
    try:
        source.add_cosignatures([_cosignature(10, "w1"), _cosignature(20, "w2")])
        copy_store(source, destination, load_verifier(verifier_file))
        assert destination.cosignatures() == source.cosignatures()
    finally:
        source.close()
        destination.close()
