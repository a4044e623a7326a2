import argparse
import contextlib
import io
import json
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.audit import (
    AuditLog,
    AuditSettings,
    Checkpoint,
    CompactRange,
    format_checkpoint,
    leaf_hash,
)
from gateway.audit.cli import register
from gateway.audit.note import generate_signer

from .conftest import ORIGIN, make_record


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Parse `argv` with the real sub-parsers and run the chosen command."""
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = args.func(args)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
async def log_store(settings: AuditSettings) -> Path:
    """A store of 40 records with checkpoints at sizes 10, 20, 30 and 40."""
    log = AuditLog(settings)
    await log.start()
    for n in range(40):
        await log.append(make_record(n))
    await log.stop()
    return settings.store


def _verify(store: Path, key: Path, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(["audit", "verify", "--store", str(store), "--key", str(key), *extra])
    return code, out + err


def _execute(store: Path, sql: str, *parameters: object) -> None:
    with sqlite3.connect(store) as connection:
        connection.execute(sql, parameters)


def _record(store: Path, index: int) -> tuple[bytes, bytes]:
    with sqlite3.connect(store) as connection:
        row = connection.execute(
            "SELECT data, leaf_hash FROM records WHERE leaf_index = ?", (index,)
        ).fetchone()
    return bytes(row[0]), bytes(row[1])


def _repair_head(store: Path) -> None:
    """Make the stored tree head agree with the records, as a careful forger would."""
    with sqlite3.connect(store) as connection:
        rows = connection.execute("SELECT data FROM records ORDER BY leaf_index").fetchall()
    state = CompactRange()
    for (data,) in rows:
        state.append(leaf_hash(bytes(data)))
    _execute(store, "UPDATE tree_head SET tree_size = ?, frontier = ?",
             state.size, b"".join(state.hashes))  # fmt: skip


def test_verify_passes_an_untouched_log(log_store: Path, verifier_file: Path) -> None:
    code, output = _verify(log_store, verifier_file)
    assert code == 0
    assert "tree_size 40" in output


def test_verify_names_a_record_with_one_byte_changed(log_store: Path, verifier_file: Path) -> None:
    data, _ = _record(log_store, 23)
    _execute(log_store, "UPDATE records SET data = ? WHERE leaf_index = 23",
             data.replace(b"req-23", b"req-2X"))  # fmt: skip
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "record 23:" in output


def test_verify_names_a_record_rewritten_as_text(log_store: Path, verifier_file: Path) -> None:
    # What `UPDATE records SET data = replace(data, ...)` does from the sqlite3 shell.
    _execute(log_store, "UPDATE records SET data = replace(data, 'req-7', 'req-X')")
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "record 0: is not stored as bytes" in output


def test_verify_names_the_checkpoint_over_a_record_rewritten_with_its_hash(
    log_store: Path, verifier_file: Path
) -> None:
    data, _ = _record(log_store, 23)
    forged = data.replace(b"req-23", b"req-2X")
    # A careful forger rewrites the hash and the query column too: the checkpoint catches it.
    _execute(log_store, "UPDATE records SET data = ?, leaf_hash = ?, request_id = 'req-2X'"
             " WHERE leaf_index = 23", forged, leaf_hash(forged))  # fmt: skip
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "checkpoint at size 30:" in output
    assert "20..29" in output


def test_verify_names_a_deleted_record(log_store: Path, verifier_file: Path) -> None:
    _execute(log_store, "DELETE FROM records WHERE leaf_index = 17")
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "record 17:" in output


def test_verify_names_the_first_of_two_swapped_records(
    log_store: Path, verifier_file: Path
) -> None:
    five, six = _record(log_store, 5), _record(log_store, 6)
    _execute(log_store, "UPDATE records SET data = ?, leaf_hash = ? WHERE leaf_index = 5", *six)
    _execute(log_store, "UPDATE records SET data = ?, leaf_hash = ? WHERE leaf_index = 6", *five)
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "record 5:" in output


def test_verify_names_the_first_record_of_a_truncated_tail(
    log_store: Path, verifier_file: Path
) -> None:
    _execute(log_store, "DELETE FROM records WHERE leaf_index >= 35")
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "record 35:" in output


def test_trusted_checkpoint_exposes_truncation_with_checkpoints_removed(
    log_store: Path, verifier_file: Path, tmp_path: Path
) -> None:
    code, trusted, _ = run_cli(["audit", "checkpoint", "--store", str(log_store)])
    assert code == 0
    (tmp_path / "trusted").write_text(trusted)
    _execute(log_store, "DELETE FROM records WHERE leaf_index >= 30")
    _execute(log_store, "DELETE FROM checkpoints WHERE tree_size > 30")
    _execute(log_store, "DELETE FROM nodes WHERE (node_index + 1) * (1 << level) > 30")
    _repair_head(log_store)  # everything the store says now agrees with itself
    assert _verify(log_store, verifier_file)[0] == 0
    code, output = _verify(
        log_store, verifier_file, "--trusted-checkpoint", str(tmp_path / "trusted")
    )
    assert code == 1
    assert "record 30:" in output


def test_verify_names_a_checkpoint_with_an_altered_signature(
    log_store: Path, verifier_file: Path
) -> None:
    with sqlite3.connect(log_store) as connection:
        (note,) = connection.execute("SELECT note FROM checkpoints WHERE tree_size = 20").fetchone()
    head, _, encoded = note.rstrip("\n").rpartition(" ")
    altered = encoded[:20] + ("A" if encoded[20] != "A" else "B") + encoded[21:]
    _execute(
        log_store, "UPDATE checkpoints SET note = ? WHERE tree_size = 20", f"{head} {altered}\n"
    )
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "checkpoint at size 20:" in output


def test_verify_names_a_checkpoint_re_signed_with_another_key(
    log_store: Path, verifier_file: Path
) -> None:
    with sqlite3.connect(log_store) as connection:
        (root,) = connection.execute(
            "SELECT root_hash FROM checkpoints WHERE tree_size = 20"
        ).fetchone()
    note = generate_signer(ORIGIN).sign(format_checkpoint(Checkpoint(ORIGIN, 20, bytes(root))))
    _execute(log_store, "UPDATE checkpoints SET note = ? WHERE tree_size = 20", note)
    code, output = _verify(log_store, verifier_file)
    assert code == 1
    assert "checkpoint at size 20:" in output


def test_prove_bundle_checks_offline_and_a_tampered_bundle_fails(
    log_store: Path, verifier_file: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "proof.json"
    code, _, _ = run_cli(["audit", "prove", "--store", str(log_store), "--index", "12",
                          "--out", str(bundle)])  # fmt: skip
    assert code == 0
    code, out, _ = run_cli(
        ["audit", "check-proof", "--bundle", str(bundle), "--key", str(verifier_file)]
    )
    assert code == 0
    assert "record 12" in out
    content = json.loads(bundle.read_text())
    content["leaf_index"] = 13
    bundle.write_text(json.dumps(content))
    code, _, _ = run_cli(
        ["audit", "check-proof", "--bundle", str(bundle), "--key", str(verifier_file)]
    )
    assert code == 1


async def test_consistency_proves_the_log_extends_an_old_checkpoint(
    settings: AuditSettings, log_store: Path, verifier_file: Path, tmp_path: Path
) -> None:
    _, old, _ = run_cli(["audit", "checkpoint", "--store", str(log_store)])
    (tmp_path / "old").write_text(old)
    log = AuditLog(settings)
    await log.start()
    for n in range(40, 55):
        await log.append(make_record(n))
    await log.stop()
    code, out, _ = run_cli(["audit", "consistency", "--store", str(log_store), "--old",
                            str(tmp_path / "old"), "--key", str(verifier_file)])  # fmt: skip
    assert code == 0
    assert (json.loads(out)["old_size"], json.loads(out)["new_size"]) == (40, 55)


def test_query_prints_matching_records_as_json_lines(log_store: Path) -> None:
    code, out, _ = run_cli(["audit", "query", "--store", str(log_store), "--decision", "deny",
                            "--organisation", "lab", "--limit", "3"])  # fmt: skip
    assert code == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert [record["index"] for record in records] == [0, 6, 12]


def test_export_ocsf_maps_each_record_to_api_activity(log_store: Path) -> None:
    code, out, _ = run_cli(["audit", "export", "--store", str(log_store), "--format", "ocsf"])
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert len(events) == 40
    first = events[1]
    assert (first["class_uid"], first["category_uid"], first["activity_id"], first["type_uid"]) == (
        6003,
        6,
        1,
        600301,
    )
    assert first["actor"]["user"]["uid"] == "user-1"
    assert first["src_endpoint"]["ip"] == "127.0.0.1"
    moment = datetime(2026, 11, 27, 6, 0, 1, 123456, tzinfo=UTC)
    assert first["time"] == int(moment.timestamp() * 1000)
    assert first["unmapped"]["policy_version"] == "sha256:abc"


def test_keys_generate_writes_private_files_that_load(tmp_path: Path) -> None:
    code, _, _ = run_cli(["keys", "generate", "--out", str(tmp_path / "k"), "--name", ORIGIN])
    assert code == 0
    for name in ("audit-signing.key", "audit-hmac.key"):
        assert stat.S_IMODE((tmp_path / "k" / name).stat().st_mode) == 0o600
    public = (tmp_path / "k" / "audit-signing.pub").read_text()
    assert public.startswith(f"{ORIGIN}+")
    assert "PRIVATE" not in public
    code, _, err = run_cli(["keys", "generate", "--out", str(tmp_path / "k"), "--name", ORIGIN])
    assert code == 2
    assert "exists" in err


def test_verify_of_a_missing_store_is_bad_input_naming_it(
    tmp_path: Path, verifier_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _verify(tmp_path / "nothing.db", verifier_file)
    assert exited.value.code == 2
    assert f"argument --store: no such file: {tmp_path / 'nothing.db'}" in capsys.readouterr().err
