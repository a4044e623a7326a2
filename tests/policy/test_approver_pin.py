"""The approver set pinned in the settings: a policy that lists other approver keys
(one added, one moved to another organisation) does not load, at start or on reload,
and the grants those keys sign never count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cli import main
from gateway.config import ConfigError
from gateway.policy import (
    PolicyHolder,
    PolicyLoadError,
    PolicyWatcher,
    ReloadOutcome,
    approver_set_digest,
    check_approver_pin,
    load_policy,
)
from gateway.settings import load_settings
from tests.e2e.crash_gateway import free_port
from tests.harness import gateway_settings
from tests.signing import public_key_text

GATEWAY = str(Path(sys.executable).parent / "gateway")
# Whoever can write the policy folder adds a key of their own.
INTRUDER = (
    "approvers:\n  - id: intruder\n    organisation: Northwind Audit\n"
    f"    public_key: {public_key_text(Ed25519PrivateKey.generate())}\n"
)


def _digest(directory: Path) -> str:
    return approver_set_digest(load_policy(directory))


def test_the_digest_sees_a_new_key_a_moved_key_and_a_lowered_threshold(
    policy_dir: Path,
) -> None:
    pinned = _digest(policy_dir)
    assert pinned == _digest(policy_dir)  # stable
    (policy_dir / "approvers-extra.yaml").write_text(INTRUDER)
    assert _digest(policy_dir) != pinned
    (policy_dir / "approvers-extra.yaml").unlink()
    approvers = policy_dir / "approvers.yaml"
    text = approvers.read_text()
    assert "organisation: Example AI Labs" in text
    approvers.write_text(
        text.replace("organisation: Example AI Labs", "organisation: Globex Corp", 1)
    )
    assert _digest(policy_dir) != pinned
    approvers.write_text(text)
    assert _digest(policy_dir) == pinned
    # A lowered threshold is seen too: one approver alone would open grants.
    settings = policy_dir / "settings.yaml"
    assert "min_approvers: 2" in settings.read_text()
    settings.write_text(settings.read_text().replace("min_approvers: 2", "min_approvers: 1"))
    assert _digest(policy_dir) != pinned


def test_a_policy_whose_approvers_differ_from_the_pin_is_refused(policy_dir: Path) -> None:
    policy = load_policy(policy_dir)
    pinned = approver_set_digest(policy)
    check_approver_pin(policy, pinned, str(policy_dir))
    check_approver_pin(policy, None, str(policy_dir))
    with pytest.raises(PolicyLoadError, match="approvers_sha256"):
        check_approver_pin(policy, "0" * 64, str(policy_dir))


async def test_a_reload_that_adds_an_approver_key_keeps_the_old_policy(policy_dir: Path) -> None:
    holder = PolicyHolder(load_policy(policy_dir))
    outcomes: list[ReloadOutcome] = []
    watcher = PolicyWatcher(
        policy_dir,
        holder,
        outcomes.append,
        watch_files=False,
        approvers_sha256=_digest(policy_dir),
    )
    before = holder.current
    (policy_dir / "approvers-extra.yaml").write_text(INTRUDER)
    outcome = await watcher.reload()
    assert not outcome.ok
    assert holder.current is before
    assert "approver keys or min_approvers have changed" in str(outcome.error)
    (policy_dir / "approvers-extra.yaml").unlink()
    assert (await watcher.reload()).ok


def test_the_pin_is_64_hex_digits(tmp_path: Path, pki: Path, policy_dir: Path) -> None:
    path = gateway_settings(tmp_path, pki, policy_dir, "http://127.0.0.1:9", port=0)
    settings = yaml.safe_load(path.read_text())
    settings["policy"]["approvers_sha256"] = "not-a-digest"
    path.write_text(yaml.safe_dump(settings))
    with pytest.raises(ConfigError, match=r"policy\.approvers_sha256"):
        load_settings(path)
    settings["policy"]["approvers_sha256"] = _digest(policy_dir)
    path.write_text(yaml.safe_dump(settings))
    assert load_settings(path).policy.approvers_sha256 == _digest(policy_dir)


def test_a_gateway_refuses_to_start_on_an_approver_set_it_was_not_pinned_to(
    tmp_path: Path, pki: Path, policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pinned = _digest(policy_dir)
    (policy_dir / "approvers-extra.yaml").write_text(INTRUDER)
    path = gateway_settings(tmp_path, pki, policy_dir, "http://127.0.0.1:9", port=free_port())
    settings = yaml.safe_load(path.read_text())
    settings["policy"]["approvers_sha256"] = pinned
    path.write_text(yaml.safe_dump(settings))
    started = subprocess.run(
        [GATEWAY, "serve", "--config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 2, started.stderr
    assert "approver keys or min_approvers have changed" in started.stderr
    assert "Traceback" not in started.stderr
    # config check says the same, naming the setting.
    status = main(["config", "check", str(path), "--connect-timeout", "2"])
    assert status == 2
    assert "policy.approvers_sha256" in capsys.readouterr().err
