"""`gateway policy check|test|explain|diff`, driven through argparse."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.policy.cli import register

from .conftest import EXAMPLE, sign_file

EVALUATOR = """subject: evaluator-1
issuer: ca:agency
attributes:
  - {name: organisation, value: US CAISI, source: ca:agency}
  - {name: nationality, value: US, source: ca:agency}
  - {name: nationality, value: FR, source: oidc:corp-idp}
auth_methods: [mtls]
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", *argv])
    status: int = args.func(args)
    return status


def test_check_accepts_the_example_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", str(EXAMPLE)) == 0
    out = capsys.readouterr().out
    assert "policy OK" in out
    assert "2 models" in out


def test_check_rejects_an_invalid_policy(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policy_dir / "extra.yaml").write_text("grantz: []\n")
    assert run("check", str(policy_dir)) == 2
    assert "extra.yaml:1: grantz: unknown key" in capsys.readouterr().err


def test_example_policy_tests_pass(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("test", str(EXAMPLE)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].endswith("passed, 0 failed")
    assert all(line.startswith("PASS") for line in lines[:-1])
    assert len(lines) > 10


def test_failing_policy_test_is_reported_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "policy"
    shutil.copytree(EXAMPLE, directory)
    # Suspending the grantee makes the "inside the window" cases fail.
    with (directory / "suspensions.yaml").open("a") as file:
        file.write(
            "  - organisation: US CAISI\n    reason: test\n    since: 2026-01-01T00:00:00Z\n"
        )
    assert run("test", str(directory)) == 1
    out = capsys.readouterr().out
    assert "FAIL  evaluator inside the grant window is allowed" in out
    assert "expected reason allow.grant, got suspended.organisation" in out
    assert "failed" in out.splitlines()[-1]
    assert not out.splitlines()[-1].endswith(" 0 failed")


def test_invalid_policy_test_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "policy"
    shutil.copytree(EXAMPLE, directory)
    (directory / "tests" / "broken.yaml").write_text("cases:\n  - name: x\n    principal: nobody\n")
    assert run("test", str(directory)) == 2
    assert "broken.yaml:3: cases[0].principal" in capsys.readouterr().err


def test_explain_prints_decision_and_rule_trail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    principal = tmp_path / "evaluator.yaml"
    principal.write_text(EVALUATOR)
    argv = ["explain", str(EXAMPLE), "--principal", str(principal), "--model", "muse-spark-2"]
    assert run(*argv, "--at", "2027-01-08T00:00:00Z") == 0
    out = capsys.readouterr().out
    assert "deny (403 grant_expired)" in out
    assert "grant.expired" in out
    assert "attribute.untrusted_source[nationality:oidc:corp-idp]" in out
    assert run(*argv, "--at", "2026-12-20T00:00:00Z", "--json") == 0
    decision = json.loads(capsys.readouterr().out)
    assert (decision["allowed"], decision["reason"]) == (True, "allow.grant")
    assert decision["grant_not_after"] == "2027-01-08T00:00:00Z"


def test_explain_rejects_an_instant_without_time_zone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    principal = tmp_path / "evaluator.yaml"
    principal.write_text(EVALUATOR)
    with pytest.raises(SystemExit) as exited:
        run("explain", str(EXAMPLE), "--principal", str(principal), "--at", "2026-12-20T00:00:00")
    assert exited.value.code == 2
    assert "argument --at: '2026-12-20T00:00:00' has no time zone" in capsys.readouterr().err


def test_diff_reports_changes_from_the_instant_they_take_effect(
    policy_dir: Path,
    approver_keys: dict[str, Ed25519PrivateKey],
    capsys: pytest.CaptureFixture[str],
) -> None:
    grants = policy_dir / "grants.yaml"
    text = grants.read_text().replace("2027-01-08T00:00:00Z", "2027-01-10T00:00:00Z")
    grants.write_text(text[: text.index("    signatures:")])  # the old ones no longer verify
    sign_file(grants, approver_keys, ("lab-approver-1", "lab-approver-2"))
    assert run("diff", str(EXAMPLE), str(policy_dir)) == 0
    out = capsys.readouterr().out
    assert (
        'from 2027-01-08T00:00:00Z: muse-spark-2 [frontier] organisation "US CAISI", '
        "nationality US: deny grant.expired -> allow allow.grant"
    ) in out
    assert "Acme" not in out


def test_diff_of_identical_policies_reports_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("diff", str(EXAMPLE), str(EXAMPLE)) == 0
    assert "no outcome changes" in capsys.readouterr().out


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from gateway.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "test", "diff"])
def test_a_folder_without_policy_files_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    (tmp_path / "README.md").write_text("not a policy\n")
    folders = [str(tmp_path)] * (2 if command == "diff" else 1)
    err = _refused(["policy", command, *folders], capsys)
    assert f"{tmp_path} holds no policy files: give the policy folder" in err
    assert "policy OK" not in err


def test_check_of_a_file_says_it_is_not_a_policy_folder(
    capsys: pytest.CaptureFixture[str],
) -> None:
    file = EXAMPLE / "models.yaml"
    err = _refused(["policy", "check", str(file)], capsys)
    assert f"argument DIR: {file} is a file, not a policy folder" in err


def test_explain_without_a_model_says_model_is_needed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    principal = tmp_path / "p.yaml"
    principal.write_text(EVALUATOR)
    argv = ["explain", str(EXAMPLE), "--principal", str(principal), "--at", "2026-12-20T00:00Z"]
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert "--action model.invoke needs --model MODEL" in err
    assert "muse-1" in err
    assert run(*argv, "--action", "admin") == 0
