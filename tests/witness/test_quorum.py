"""`gateway audit verify --witness VKEY ... --quorum K` over a store two real witnesses
cosigned, and `gateway audit checkpoint` printing the cosigned note."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from gateway.audit import AuditSettings
from gateway.audit.cosignature import CosignatureSigner, generate_cosigner
from gateway.audit.keys import VERIFIER_KEY_FILE
from tests.audit.test_cli import run_cli
from tests.witness import spec

from .support import Running, append, caught_up, until, witness_apps


@dataclasses.dataclass
class Witnessed:
    store: Path
    key: Path
    signers: list[CosignatureSigner]


@pytest.fixture
async def witnessed(settings: AuditSettings, tmp_path: Path, key_dir: Path) -> Witnessed:
    """A store whose every checkpoint both witnesses cosigned (the last one at stop)."""
    signers, apps, states = witness_apps(settings, tmp_path, 2)
    async with Running(settings, signers, apps, states) as running:
        await append(running.log, 23)
        await until(caught_up(running.submitter, 20))
    return Witnessed(settings.store, key_dir / VERIFIER_KEY_FILE, signers)  # type: ignore[arg-type]


def _verify(witnessed: Witnessed, *extra: str) -> tuple[int, str]:
    code, out, err = run_cli(
        ["audit", "verify", "--store", str(witnessed.store), "--key", str(witnessed.key), *extra]
    )
    return code, out + err


def _keys(*signers: CosignatureSigner) -> list[str]:
    return [arg for signer in signers for arg in ("--witness", signer.verifier.to_string())]


def test_a_quorum_the_cosignatures_meet_passes(witnessed: Witnessed) -> None:
    code, output = _verify(witnessed, *_keys(*witnessed.signers), "--quorum", "2")
    assert code == 0, output
    assert "newest checkpoint at size 23 cosigned by 2 of 2 listed witnesses" in output


def test_a_quorum_larger_than_the_cosigners_fails(witnessed: Witnessed) -> None:
    absent = generate_cosigner("witness.test/absent")
    code, output = _verify(witnessed, *_keys(*witnessed.signers, absent), "--quorum", "3")
    assert code == 1
    assert "cosigned by 2 of the listed witnesses" in output
    code, _ = _verify(witnessed, *_keys(*witnessed.signers, absent), "--quorum", "2")
    assert code == 0


def test_without_a_quorum_every_listed_witness_must_have_cosigned(witnessed: Witnessed) -> None:
    absent = generate_cosigner("witness.test/absent")
    assert _verify(witnessed, *_keys(witnessed.signers[0]))[0] == 0
    assert _verify(witnessed, *_keys(witnessed.signers[0], absent))[0] == 1


def test_a_witness_key_given_in_a_file_counts(witnessed: Witnessed, tmp_path: Path) -> None:
    key_file = tmp_path / "w0.pub"
    key_file.write_text(witnessed.signers[0].verifier.to_string() + "\n")
    assert _verify(witnessed, "--witness", str(key_file))[0] == 0


def test_an_altered_stored_cosignature_fails_the_check(witnessed: Witnessed) -> None:
    with sqlite3.connect(witnessed.store) as connection:
        line = connection.execute(
            "SELECT line FROM cosignatures WHERE tree_size = 23 AND witness = ?",
            (witnessed.signers[0].name,),
        ).fetchone()[0]
        altered = line[:-6] + ("A" if line[-6] != "A" else "B") + line[-5:]
        connection.execute("UPDATE cosignatures SET line = ? WHERE line = ?", (altered, line))
    code, output = _verify(witnessed, *_keys(*witnessed.signers), "--quorum", "1")
    assert code == 1
    assert "does not verify" in output


def test_the_trusted_checkpoint_must_be_witnessed_too(witnessed: Witnessed, tmp_path: Path) -> None:
    with sqlite3.connect(witnessed.store) as connection:
        note = connection.execute("SELECT note FROM checkpoints WHERE tree_size = 20").fetchone()[0]
        cosigned = [
            row[0]
            for row in connection.execute("SELECT line FROM cosignatures WHERE tree_size = 20")
        ]
    assert len(cosigned) == 2
    trusted = tmp_path / "trusted.checkpoint"
    trusted.write_text(note)  # kept without its cosignatures
    extra = ["--trusted-checkpoint", str(trusted), *_keys(*witnessed.signers), "--quorum", "2"]
    # The store holds the cosignatures of the trusted checkpoint's size: they count.
    assert _verify(witnessed, *extra)[0] == 0
    with sqlite3.connect(witnessed.store) as connection:
        connection.execute("DELETE FROM cosignatures WHERE tree_size = 20")
    code, output = _verify(witnessed, *extra)
    assert code == 1
    assert "checkpoint at size 20: trusted checkpoint: cosigned by 0" in output
    trusted.write_text(note + "".join(cosigned))  # kept with its cosignatures
    assert _verify(witnessed, *extra)[0] == 0


def test_the_cosigned_note_printed_carries_each_witness_line(witnessed: Witnessed) -> None:
    code, out, _ = run_cli(["audit", "checkpoint", "--store", str(witnessed.store)])
    assert code == 0
    text, lines = spec.note_text_and_lines(out)
    for signer in witnessed.signers:
        name, public = spec.public_key_of(signer.verifier.to_string())
        assert any(spec.cosignature_timestamp(text, line, name, public) for line in lines)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--quorum", "1"], "give the witnesses' keys with --witness"),
        (["--witness", "nonsense"], "neither a witness key"),
    ],
)
def test_bad_witness_arguments_are_refused(
    witnessed: Witnessed, extra: list[str], message: str
) -> None:
    if "--witness" in extra:
        with pytest.raises(SystemExit) as exit_info:
            _verify(witnessed, *extra)
        assert exit_info.value.code == 2
        return
    code, output = _verify(witnessed, *extra)
    assert code == 2
    assert message in output


def test_one_key_listed_twice_is_refused(witnessed: Witnessed) -> None:
    signer = witnessed.signers[0]
    alias = CosignatureSigner("witness.test/alias", b"\x01" * 32)
    again = CosignatureSigner("witness.test/again", b"\x01" * 32)
    code, output = _verify(witnessed, *_keys(signer, signer))
    assert code == 2
    assert "the same public key is given twice" in output
    assert _verify(witnessed, *_keys(alias, again))[0] == 2
