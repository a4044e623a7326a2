"""examples/evaluator_sdk.py, run as a user runs it: every option explains itself, and a
caller without files or a gateway that is not there ends in one line, not a traceback."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.identity.pki import init_ca, issue_client

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "evaluator_sdk.py"


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("certs")
    init_ca(folder / "corp-ca", "Test CA")
    issue_client(folder / "corp-ca", folder / "alice", common_name="alice", organisation="o")
    return folder


def test_every_option_has_help() -> None:
    spec = importlib.util.spec_from_file_location("evaluator_sdk", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser: argparse.ArgumentParser = module.build_parser()
    assert parser.description
    assert [a.dest for a in parser._actions if not a.help] == []


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--who", "zed"], "--who zed: no such file {certs}/zed.pem; give a caller whose"),
        (["--certs", "{certs}/nowhere"], "--certs {certs}/nowhere: no such file"),
        (["--base-url", "garbage"], "--base-url garbage: give an https:// or http:// URL"),
        # Port 9 on localhost: nothing listens there.
        (["--base-url", "https://127.0.0.1:9/v1"],
         "cannot reach the gateway at --base-url https://127.0.0.1:9/v1 ("),
    ],
)  # fmt: skip
def test_a_call_that_cannot_be_made_ends_in_one_line(
    certs: Path, argv: list[str], said: str
) -> None:
    result = run("--certs", str(certs), *(word.format(certs=certs) for word in argv))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert said.format(certs=certs) in result.stderr
