"""Bad input to the audit and witness commands: refused with status 2, naming the option
and what is wrong, never a traceback, never a store made where none was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.cli import main
from tests.postgres import private_schema


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse refusals
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]


def test_migrate_refuses_a_file_that_holds_no_store_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    code, output = _run(["audit", "migrate", "--store", str(empty)], capsys)
    assert code == 2
    assert "holds no audit store" in output
    assert "--store" in output
    assert _tables(empty) == []


def test_migrate_refuses_an_empty_postgresql_database(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with private_schema() as url:
        code, output = _run(["audit", "migrate", "--store", url], capsys)
        assert code == 2
        assert "holds no audit store" in output
        # Still nothing there: a second look finds no store either.
        code, output = _run(["audit", "query", "--store", url], capsys)
        assert code == 2


@pytest.mark.parametrize("command", ["verify", "backup", "copy"])
@pytest.mark.parametrize("damage", ["missing", "folder", "garbage", "private key"])
def test_a_bad_key_or_trusted_checkpoint_is_bad_input_naming_the_option(
    tmp_path: Path,
    pki: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    damage: str,
) -> None:
    bad = {
        "missing": tmp_path / "nope.pub",
        "folder": tmp_path,
        "garbage": tmp_path / "garbage.pub",
        "private key": pki / "audit-signing.key",
    }[damage]
    (tmp_path / "garbage.pub").write_text("not a key\n")
    store = tmp_path / "audit.db"
    extra = {"verify": [], "backup": [str(tmp_path / "copy.db")], "copy": []}[command]
    if command == "copy":
        base = ["audit", "copy", str(store), str(tmp_path / "copy.db")]
    else:
        base = ["audit", command, "--store", str(store), *extra]
    store.write_bytes(b"")
    code, output = _run([*base, "--key", str(bad)], capsys)
    assert code == 2, output
    assert "--key" in output
    assert "Traceback" not in output
    if damage == "garbage":
        return
    good = ["--key", str(pki / "audit-signing.pub")]
    code, output = _run([*base, *good, "--trusted-checkpoint", str(bad)], capsys)
    assert code == 2, output
    assert "--trusted-checkpoint" in output


def test_witness_keys_are_never_written_over_a_file_or_where_they_cannot_be(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x\n")
    for out, expected in ((taken, "is a file"), (Path("/proc/no/such/place"), "cannot write")):
        code, output = _run(
            ["witness", "keys", "generate", "--out", str(out), "--name", "w.example/w1"], capsys
        )
        assert code == 2, output
        assert "--out" in output
        assert str(out) in output
        assert expected in output
    assert taken.read_text() == "x\n"
