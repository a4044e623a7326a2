"""What the audit commands accept from a user, and how they say what is wrong.

Run through `gateway.cli.main`, the `gateway` command itself: a refusal of an argument
names the argument and what it accepts, and exits with status 2.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.audit import AuditLog, AuditSettings
from gateway.audit.keys import SIGNING_KEY_FILE
from gateway.cli import main

from .conftest import make_record


def gateway(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `gateway ARGV...`; returns (status, stdout, stderr), argparse's exits included."""
    try:
        status = main(list(argv))
    except SystemExit as exited:
        status = int(exited.code or 0)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture
async def store(settings: AuditSettings) -> Path:
    """40 records, one a second from 2026-11-27T06:00:00Z; checkpoints every 10."""
    log = AuditLog(settings)
    await log.start()
    for n in range(40):
        await log.append(make_record(n))
    await log.stop()
    return settings.store


@pytest.mark.parametrize(
    ("option", "value", "accepted"),
    [
        ("--kind", "nonsense", "'request', 'completion', 'auth_failure'"),
        ("--decision", "maybe", "'allow', 'deny'"),
        ("--limit", "0", "not a whole number of at least 1"),
        ("--limit", "ten", "not a whole number of at least 1"),
        ("--since", "last tuesday", "now, today, yesterday or tomorrow"),
        ("--until", "2026-13-01", "an ISO 8601 date-time (no zone means UTC)"),
        ("--since", "-1y", "an offset from now such as -30m, -2h, -1d, +1w"),
    ],
)
def test_query_refuses_a_value_no_record_can_match_and_names_the_option(
    store: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, accepted: str
) -> None:
    status, out, err = gateway(capsys, "audit", "query", "--store", str(store), option, value)

    assert (status, out) == (2, "")
    assert f"argument {option}: " in err
    assert accepted in err


def test_query_takes_relative_times(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The records are from 2026-11-27; "-3650d" reaches before them, "+1d" after.
    status, out, _ = gateway(
        capsys, "audit", "query", "--store", str(store), "--since", "-3650d", "--until", "+1d"
    )
    assert status == 0
    assert len(out.splitlines()) == 40

    status, out, err = gateway(capsys, "audit", "query", "--store", str(store), "--since", "today")
    assert (status, out) == (0, "")
    assert "no records match" in err


def test_query_takes_a_date_and_a_date_time_without_zone_as_utc(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = gateway(
        capsys, "audit", "query", "--store", str(store),
        "--since", "2026-11-27T06:00:10", "--until", "2026-11-27T06:00:12.5",
    )  # fmt: skip
    assert status == 0
    assert [json.loads(line)["index"] for line in out.splitlines()] == [10, 11, 12]


def test_query_refuses_since_after_until(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = gateway(
        capsys, "audit", "query", "--store", str(store), "--since", "today", "--until", "yesterday"
    )
    assert (status, out) == (2, "")
    assert "--since" in err
    assert "is after --until" in err


def test_query_says_when_it_stopped_at_the_limit(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = gateway(capsys, "audit", "query", "--store", str(store), "--limit", "5")
    assert (status, len(out.splitlines())) == (0, 5)
    assert "stopped at --limit 5; more records match" in err

    status, out, err = gateway(capsys, "audit", "query", "--store", str(store), "--limit", "40")
    assert (status, len(out.splitlines()), err) == (0, 40, "")


@pytest.mark.parametrize("command", ["query", "export", "checkpoint"])
def test_a_missing_store_is_named_with_its_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    status, _, err = gateway(capsys, "audit", command, "--store", str(tmp_path / "none.db"))
    assert status == 2
    assert f"argument --store: no such file: {tmp_path / 'none.db'}" in err


@pytest.mark.parametrize("command", ["query", "export", "checkpoint"])
def test_a_file_that_is_no_store_is_named_with_its_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    (tmp_path / "notes.txt").write_text("not a database, just text\n" * 100)
    status, _, err = gateway(capsys, "audit", command, "--store", str(tmp_path / "notes.txt"))
    assert status == 2
    assert f"--store {tmp_path / 'notes.txt'}: not a readable audit store" in err
    assert "Traceback" not in err


def test_a_signer_key_given_as_the_verifier_key_is_named(
    store: Path, key_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "proof.json"
    assert gateway(capsys, "audit", "prove", "--store", str(store), "--index", "3",
                   "--out", str(bundle))[0] == 0  # fmt: skip
    status, _, err = gateway(
        capsys, "audit", "check-proof", "--bundle", str(bundle),
        "--key", str(key_dir / SIGNING_KEY_FILE),
    )  # fmt: skip
    assert status == 2
    assert "argument --key: " in err
    assert "is not a verifier key (<name>+<key hash>+<base64 key>)" in err


def test_a_bundle_that_is_not_json_names_the_option_and_the_expected_content(
    verifier_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bundle.json").write_text("{not json")
    status, _, err = gateway(
        capsys, "audit", "check-proof", "--bundle", str(tmp_path / "bundle.json"),
        "--key", str(verifier_file),
    )  # fmt: skip
    assert status == 2
    assert "--bundle" in err
    assert "not a proof bundle (the JSON `gateway audit prove` writes" in err


@pytest.mark.parametrize("index", ["-1", "x"])
def test_prove_refuses_an_index_that_is_not_a_leaf_index(
    store: Path, capsys: pytest.CaptureFixture[str], index: str
) -> None:
    status, _, err = gateway(capsys, "audit", "prove", "--store", str(store), "--index", index)
    assert status == 2
    assert f"argument --index: '{index}' is not a whole number of at least 0" in err


def test_prove_names_the_indexes_a_checkpoint_covers(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = gateway(capsys, "audit", "prove", "--store", str(store), "--index", "40")
    assert status == 2
    assert "--index 40 is not covered by the latest signed checkpoint" in err
    assert "indexes 0 to 39" in err


def test_keys_generate_refuses_a_name_with_a_space_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = gateway(
        capsys, "keys", "generate", "--out", str(tmp_path / "k"), "--name", "my log"
    )
    assert status == 2
    assert "--name 'my log': key name must be non-empty, printable, without spaces or '+'" in err


async def test_relative_since_counts_back_from_now(
    settings: AuditSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    log = AuditLog(settings)
    await log.start()
    now = datetime.now(UTC)
    for hours_ago in (30, 3, 1):
        moment = (now - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        await log.append(make_record(hours_ago, time=moment))
    await log.stop()

    def request_ids(since: str) -> list[str]:
        _, out, _ = gateway(
            capsys, "audit", "query", "--store", str(settings.store), "--since", since
        )
        return [json.loads(line)["request_id"] for line in out.splitlines()]

    assert [request_ids(since) for since in ("-2h", "-1d", "-2d")] == [
        ["req-1"],
        ["req-3", "req-1"],
        ["req-30", "req-3", "req-1"],
    ]
