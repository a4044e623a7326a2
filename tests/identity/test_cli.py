"""`gateway certs`: what `issue` writes, `inspect` reads back through the same parser."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from gateway.identity.cli import register


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


def test_inspect_shows_the_citizenship_that_issue_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    assert _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA") == 0
    assert _run(
        "certs", "issue", "--ca-dir", str(ca), "--out", str(tmp_path / "dana"),
        "--cn", "dana", "--org", "US CAISI", "--ou", "evaluator",
        "--citizenship", "USA", "--citizenship", "CN", "--residence", "D",
    ) == 0  # fmt: skip
    capsys.readouterr()

    assert _run("certs", "inspect", str(tmp_path / "dana.pem")) == 0
    report = json.loads(capsys.readouterr().out)

    assert (
        report["citizenship"],
        report["residence"],
        report["common_name"],
        report["organisation"],
        report["organisational_units"],
    ) == (["CN", "US"], ["DE"], "dana", ["US CAISI"], ["evaluator"])


def test_keys_are_written_readable_only_by_the_owner(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA")
    _run("certs", "server", "--ca-dir", str(ca), "--out", str(tmp_path / "srv"), "--host", "x")

    modes = {stat.S_IMODE(p.stat().st_mode) for p in (ca / "ca-key.pem", tmp_path / "srv-key.pem")}

    assert {0o600} == modes


def test_issue_with_an_unknown_country_fails_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA")

    code = _run(
        "certs", "issue", "--ca-dir", str(ca), "--out", str(tmp_path / "x"),
        "--cn", "x", "--org", "o", "--citizenship", "XXA",
    )  # fmt: skip

    assert (code, (tmp_path / "x.pem").exists()) == (2, False)
    assert "XXA" in capsys.readouterr().err


def test_inspect_of_a_missing_file_fails(tmp_path: Path) -> None:
    assert _run("certs", "inspect", str(tmp_path / "missing.pem")) == 2
