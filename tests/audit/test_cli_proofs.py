"""Offline proofs end to end: `audit prove` / `check-proof`, `audit consistency` /
`check-consistency`, as an auditor runs them with the `gateway` command."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.audit import AuditLog, AuditSettings, generate_keys

from .conftest import ORIGIN, make_record
from .test_cli_inputs import gateway


async def write_records(settings: AuditSettings, numbers: range) -> None:
    log = AuditLog(settings)
    await log.start()
    for n in numbers:
        await log.append(make_record(n))
    await log.stop()


@pytest.fixture
async def grown(
    settings: AuditSettings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, Path]:
    """A store whose checkpoint at size 40 was kept (returned), then grown to 55."""
    await write_records(settings, range(40))
    status, note, _ = gateway(capsys, "audit", "checkpoint", "--store", str(settings.store))
    assert status == 0
    kept = tmp_path / "kept.checkpoint"
    kept.write_text(note)
    await write_records(settings, range(40, 55))
    return settings.store, kept


def test_prove_says_what_it_wrote_where(
    grown: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = grown
    bundle = tmp_path / "proof.json"
    status, out, _ = gateway(
        capsys, "audit", "prove", "--store", str(store), "--index", "12", "--out", str(bundle)
    )
    assert status == 0
    assert f"wrote the inclusion proof of record 12 in the tree of size 55 to {bundle}" in out
    assert json.loads(bundle.read_text())["leaf_index"] == 12


def test_consistency_writes_a_proof_that_checks_offline(
    grown: tuple[Path, Path],
    verifier_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, kept = grown
    proof = tmp_path / "consistency.json"
    status, out, _ = gateway(
        capsys, "audit", "consistency", "--store", str(store), "--old", str(kept),
        "--key", str(verifier_file), "--out", str(proof),
    )  # fmt: skip
    assert status == 0
    assert f"wrote the consistency proof from size 40 to size 55 to {proof}" in out

    status, out, err = gateway(
        capsys, "audit", "check-consistency", "--old", str(kept), "--proof", str(proof),
        "--key", str(verifier_file),
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert f"OK: the tree of size 55 signed by {ORIGIN} extends the tree of size 40" in out


def test_check_consistency_takes_the_new_checkpoint_from_a_file_too(
    grown: tuple[Path, Path],
    verifier_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, kept = grown
    proof = tmp_path / "consistency.json"
    gateway(capsys, "audit", "consistency", "--store", str(store), "--old", str(kept),
            "--out", str(proof))  # fmt: skip
    new = tmp_path / "new.checkpoint"
    new.write_text(gateway(capsys, "audit", "checkpoint", "--store", str(store))[1])

    status, out, _ = gateway(
        capsys, "audit", "check-consistency", "--old", str(kept), "--new", str(new),
        "--proof", str(proof), "--key", str(verifier_file),
    )  # fmt: skip
    assert status == 0
    assert "extends the tree of size 40" in out


def _check(
    capsys: pytest.CaptureFixture[str], old: Path, proof: Path, key: Path
) -> tuple[int, str, str]:
    return gateway(
        capsys, "audit", "check-consistency", "--old", str(old), "--proof", str(proof),
        "--key", str(key),
    )  # fmt: skip


@pytest.fixture
def proof_file(
    grown: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Path:
    store, kept = grown
    proof = tmp_path / "consistency.json"
    status, _, _ = gateway(
        capsys, "audit", "consistency", "--store", str(store), "--old", str(kept),
        "--out", str(proof),
    )  # fmt: skip
    assert status == 0
    return proof


def test_check_consistency_fails_on_an_altered_proof_hash(
    grown: tuple[Path, Path],
    proof_file: Path,
    verifier_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, kept = grown
    document = json.loads(proof_file.read_text())
    first = bytearray(base64.b64decode(document["proof"][0]))
    first[0] ^= 1
    document["proof"][0] = base64.b64encode(bytes(first)).decode()
    proof_file.write_text(json.dumps(document))

    status, out, err = _check(capsys, kept, proof_file, verifier_file)

    assert (status, out) == (1, "")
    assert err.startswith("FAILED: consistency proof does not lead to the")


async def test_check_consistency_fails_when_the_old_checkpoint_is_of_another_log(
    proof_file: Path,
    verifier_file: Path,
    settings: AuditSettings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A fork: a log with the same key and size 40 but other records.
    forked = AuditSettings(
        store=tmp_path / "fork" / "audit.db",
        origin=ORIGIN,
        signing_key=settings.signing_key,
        hmac_key=settings.hmac_key,
        checkpoint_every_records=10,
        checkpoint_every_seconds=3600,
    )
    log = AuditLog(forked)
    await log.start()
    for n in range(40):
        await log.append(make_record(n, request_id=f"forked-{n}"))
    await log.stop()
    other = tmp_path / "fork.checkpoint"
    other.write_text(gateway(capsys, "audit", "checkpoint", "--store", str(forked.store))[1])

    status, _, err = _check(capsys, other, proof_file, verifier_file)

    assert status == 1
    assert "FAILED: consistency proof does not lead to the first root" in err


def test_check_consistency_fails_when_sizes_disagree_with_the_old_checkpoint(
    grown: tuple[Path, Path],
    proof_file: Path,
    verifier_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, kept = grown
    document = json.loads(proof_file.read_text())
    document["old_size"] = 30
    proof_file.write_text(json.dumps(document))

    status, _, err = _check(capsys, kept, proof_file, verifier_file)

    assert status == 1
    assert "the proof starts at size 30, the --old checkpoint is at size 40" in err


def test_check_consistency_refuses_a_checkpoint_signed_by_another_key(
    grown: tuple[Path, Path], proof_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, kept = grown
    generate_keys(tmp_path / "other", ORIGIN)

    status, _, err = _check(capsys, kept, proof_file, tmp_path / "other" / "audit-signing.pub")

    assert status == 1
    assert f"FAILED: --old {kept}: note is not signed by the given key" in err


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("an extra newline", lambda note: note + "\n"),
        ("two extra newlines and spaces", lambda note: note + "\n  \n"),
        ("CRLF line ends", lambda note: note.replace("\n", "\r\n")),
        ("a byte-order mark", lambda note: "\ufeff" + note),
        ("no final newline", lambda note: note.rstrip("\n")),
    ],
)
def test_a_checkpoint_file_as_editors_save_it_is_accepted(
    grown: tuple[Path, Path],
    proof_file: Path,
    verifier_file: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    change: Callable[[str], str],
) -> None:
    _, kept = grown
    kept.write_bytes(change(kept.read_text()).encode())

    status, out, err = _check(capsys, kept, proof_file, verifier_file)
    assert (status, err) == (0, "")
    assert "extends the tree of size 40" in out

    store = grown[0]
    status, out, err = gateway(
        capsys, "audit", "consistency", "--store", str(store), "--old", str(kept),
        "--key", str(verifier_file),
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert json.loads(out)["old_size"] == 40


def test_a_changed_byte_inside_the_signed_text_still_fails(
    grown: tuple[Path, Path],
    proof_file: Path,
    verifier_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Only what no signer wrote is removed: a space added inside the note is not.
    _, kept = grown
    kept.write_text(kept.read_text().replace("\n", " \n", 1))

    status, _, err = _check(capsys, kept, proof_file, verifier_file)

    assert status == 1
    assert f"FAILED: --old {kept}: note signature does not verify" in err


def test_an_old_checkpoint_that_is_not_a_note_is_named(
    proof_file: Path, verifier_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").write_text("")

    status, _, err = _check(capsys, tmp_path / "empty", proof_file, verifier_file)

    assert status == 1
    assert f"FAILED: --old {tmp_path / 'empty'}: note has no signature block" in err


def test_a_bundle_checked_with_another_key_names_the_bundle(
    grown: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = grown
    bundle = tmp_path / "proof.json"
    gateway(capsys, "audit", "prove", "--store", str(store), "--index", "3", "--out", str(bundle))
    generate_keys(tmp_path / "other", ORIGIN)

    status, _, err = gateway(
        capsys, "audit", "check-proof", "--bundle", str(bundle),
        "--key", str(tmp_path / "other" / "audit-signing.pub"),
    )  # fmt: skip

    assert status == 1
    assert f"FAILED: --bundle {bundle}: its checkpoint: note is not signed by the given key" in err
