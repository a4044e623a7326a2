"""`gateway grant keys generate | sign | verify`, run as the real command."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from gateway.cli import main
from gateway.policy import load_policy
from gateway.policy.approver_keys import public_key_text

from .conftest import EXAMPLE

GRANT_ID = "caisi-muse-spark-2-eval"


def write_key(path: Path, key: Ed25519PrivateKey) -> Path:
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    return path


@pytest.fixture
def keys(tmp_path: Path, approver_keys: dict[str, Ed25519PrivateKey]) -> dict[str, Path]:
    folder = tmp_path / "keys"
    folder.mkdir()
    return {
        key_id: write_key(folder / f"{key_id}.key", key) for key_id, key in approver_keys.items()
    }


def unsigned(policy_dir: Path) -> Path:
    grants = policy_dir / "grants.yaml"
    text = grants.read_text()
    grants.write_text(text[: text.index("    signatures:")])
    return grants


def test_keys_generate_writes_a_private_key_only_its_owner_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "approver-keys"
    assert (
        main(
            [
                "grant",
                "keys",
                "generate",
                "--out",
                str(out),
                "--id",
                "cso",
                "--organisation",
                "Example AI Labs",
            ]
        )
        == 0
    )
    private, public = out / "cso.key", out / "cso.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    printed = capsys.readouterr().out
    assert public.read_text().strip() in printed
    assert "organisation: Example AI Labs" in printed
    assert "PRIVATE KEY" not in printed
    # Never overwritten.
    assert main(["grant", "keys", "generate", "--out", str(out), "--id", "cso"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_keys_generate_refuses_an_id_that_is_not_a_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["grant", "keys", "generate", "--out", str(tmp_path), "--id", "../escape"]) == 2
    assert list(tmp_path.iterdir()) == []
    assert "key ids are letters" in capsys.readouterr().err


def test_sign_adds_signatures_and_keeps_the_rest_of_the_file(
    policy_dir: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    grants = unsigned(policy_dir)
    before = grants.read_text()
    argv = ["grant", "sign", "--key", str(keys["lab-approver-1"]), str(grants), "--id", GRANT_ID]
    assert main(argv) == 0
    assert "1 of 2 approvals (the grant does not load" in capsys.readouterr().out
    assert (
        main(["grant", "sign", "--key", str(keys["lab-approver-2"]), str(grants), "--id", GRANT_ID])
        == 0
    )
    after = grants.read_text()
    assert after.startswith(before)  # comments, layout and every other line untouched
    added = after[len(before) :].splitlines()
    assert [line.split(":")[0] for line in added] == [
        "    signatures",
        "      - key_id",
        "        signature",
        "      - key_id",
        "        signature",
    ]
    assert load_policy(policy_dir).grants[0].approvals == ("lab-approver-1", "lab-approver-2")


def test_signing_twice_with_one_key_changes_nothing(
    policy_dir: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    grants = unsigned(policy_dir)
    argv = ["grant", "sign", "--key", str(keys["lab-approver-1"]), str(grants), "--id", GRANT_ID]
    assert main(argv) == 0
    once = grants.read_text()
    assert main(argv) == 0
    assert grants.read_text() == once
    assert "already carries a valid signature by lab-approver-1" in capsys.readouterr().out


def test_signing_again_after_an_edit_replaces_the_stale_signature(
    policy_dir: Path, keys: dict[str, Path]
) -> None:
    grants = unsigned(policy_dir)
    for key_id in ("lab-approver-1", "lab-approver-2"):
        assert (
            main(["grant", "sign", "--key", str(keys[key_id]), str(grants), "--id", GRANT_ID]) == 0
        )
    grants.write_text(grants.read_text().replace("2027-01-08T00:00:00Z", "2027-01-07T00:00:00Z"))
    for key_id in ("lab-approver-2", "lab-approver-1"):
        assert (
            main(["grant", "sign", "--key", str(keys[key_id]), str(grants), "--id", GRANT_ID]) == 0
        )
    text = grants.read_text()
    assert text.count("key_id:") == 2
    assert load_policy(policy_dir).grants[0].approvals == ("lab-approver-1", "lab-approver-2")


@pytest.mark.parametrize(
    ("key_id", "message"),
    [
        ("caisi-approver", "belongs to the grantee organisation US CAISI"),
        (None, "this key is not an approver key"),
    ],
)
def test_a_signature_that_would_not_count_is_not_written(
    policy_dir: Path,
    keys: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    key_id: str | None,
    message: str,
) -> None:
    grants = unsigned(policy_dir)
    before = grants.read_text()
    key = (
        keys[key_id]
        if key_id
        else write_key(tmp_path / "stranger.key", Ed25519PrivateKey.generate())
    )
    assert main(["grant", "sign", "--key", str(key), str(grants), "--id", GRANT_ID]) == 2
    assert message in capsys.readouterr().err
    assert grants.read_text() == before


def test_sign_rewrites_a_flow_list_of_signatures_as_a_block(
    policy_dir: Path, keys: dict[str, Path]
) -> None:
    grants = unsigned(policy_dir)
    grants.write_text(grants.read_text() + "    signatures: []   # none yet\n")
    for key_id in ("lab-approver-1", "lab-approver-2"):
        assert (
            main(["grant", "sign", "--key", str(keys[key_id]), str(grants), "--id", GRANT_ID]) == 0
        )
    assert load_policy(policy_dir).grants[0].approvals == ("lab-approver-1", "lab-approver-2")


def test_sign_refuses_a_grant_written_in_flow_style(
    policy_dir: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    extra = policy_dir / "flow.yaml"
    extra.write_text(
        "grants:\n  - {id: flow-grant, grantee: {organisation: US CAISI}, models: [muse-spark-2],"
        " not_before: 2026-12-20T00:00:00Z, not_after: 2026-12-21T00:00:00Z, purpose: test}\n"
    )
    before = extra.read_text()
    argv = ["grant", "sign", "--key", str(keys["lab-approver-1"]), str(extra), "--id", "flow-grant"]
    assert main(argv) == 2
    assert "written in flow style" in capsys.readouterr().err
    assert extra.read_text() == before


def test_sign_refuses_an_invalid_policy_and_an_unknown_grant(
    policy_dir: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    grants = policy_dir / "grants.yaml"
    argv = ["grant", "sign", "--key", str(keys["lab-approver-1"]), str(grants), "--id", "nope"]
    assert main(argv) == 2
    assert "holds no grant with id 'nope'" in capsys.readouterr().err
    (policy_dir / "models.yaml").write_text("models: {}\n")
    assert main([*argv[:-1], GRANT_ID]) == 2
    assert "policy invalid" in capsys.readouterr().err


def test_sign_refuses_a_file_that_is_not_an_ed25519_private_key(
    policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "not-a-key.key"
    secret.write_text("s3cr3t-token-value\n")
    argv = [
        "grant",
        "sign",
        "--key",
        str(secret),
        str(policy_dir / "grants.yaml"),
        "--id",
        GRANT_ID,
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is not an unencrypted PEM private key" in err
    assert "s3cr3t" not in err


def test_verify_shows_who_signed_and_what_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grant", "verify", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert f"grant {GRANT_ID}  {EXAMPLE / 'grants.yaml'}:5" in out
    where = EXAMPLE / "grants.yaml"
    assert f"counts  {where}:13  key chief-scientist: counts (approver of Example AI Labs)" in out
    assert f"counts  {where}:15  key general-counsel: counts (approver of Example AI Labs)" in out
    assert "approved    yes, 2 of 2: chief-scientist, general-counsel" in out


def test_verify_fails_for_a_grant_without_enough_approvals(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grants = policy_dir / "grants.yaml"
    grants.write_text(grants.read_text().replace("purpose: pre-release", "purpose: early"))
    assert main(["grant", "verify", str(policy_dir), "--id", GRANT_ID]) == 1
    out = capsys.readouterr().out
    assert f"ignored {policy_dir / 'grants.yaml'}:15  key general-counsel: does not verify" in out
    assert "approved    NO, 0 of 2: the grant does not load" in out
    assert main(["grant", "verify", str(policy_dir), "--id", "nope"]) == 2


def test_policy_check_names_the_grant_the_signatures_and_the_line(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grants = policy_dir / "grants.yaml"
    grants.write_text(grants.read_text().replace("purpose: pre-release", "purpose: early"))
    assert main(["policy", "check", str(policy_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{grants}:13: grants[0].signatures[0]: grant {GRANT_ID} has 0 of the 2 approvals" in err
    assert "signatures[1] (line 15) key general-counsel: does not verify" in err


def test_policy_explain_shows_the_grant_digest_and_its_approvers(
    example_grant_digest: str, capsys: pytest.CaptureFixture[str]
) -> None:
    principal = EXAMPLE.parent / "examples" / "principals" / "alice.yaml"
    argv = ["policy", "explain", str(EXAMPLE), "--principal", str(principal)]
    assert main([*argv, "--model", "muse-spark-2", "--at", "2026-12-20T00:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert f"grant digest sha256:{example_grant_digest}" in out
    assert "approved by  chief-scientist, general-counsel" in out


@pytest.fixture
def example_grant_digest() -> str:
    return load_policy(EXAMPLE).grants[0].digest


def test_the_public_key_printed_is_the_one_the_policy_lists(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    assert public_key_text(key).startswith("ed25519:")
    assert len(public_key_text(key)) == len("ed25519:") + 44


def test_policy_check_warns_of_a_signature_that_does_not_count_on_an_approved_grant(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grants = policy_dir / "grants.yaml"
    stranger = base64.b64encode(bytes(64)).decode()
    grants.write_text(
        grants.read_text() + f"      - key_id: nobody\n        signature: {stranger}\n"
    )
    assert main(["policy", "check", str(policy_dir)]) == 0
    captured = capsys.readouterr()
    assert "policy OK" in captured.out
    assert (
        f"warning: grant {GRANT_ID}: signatures[2] key nobody: is not an approver key of this "
        "policy"
    ) in captured.err


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_sign_says_what_is_wrong_with_the_file(
    policy_dir: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    sign = ["grant", "sign", "--key", str(keys["lab-approver-1"]), "--id", GRANT_ID]
    missing = policy_dir / "missing.yaml"
    assert f"argument FILE: no such file: {missing}" in _refused([*sign, str(missing)], capsys)
    assert f"argument FILE: {policy_dir} is a folder" in _refused([*sign, str(policy_dir)], capsys)
    notes = policy_dir / "notes.txt"
    notes.write_text("grants: []\n")
    assert f"argument FILE: {notes} is not a grants YAML file: give the *.yaml" in _refused(
        [*sign, str(notes)], capsys
    )
    assert main([*sign, str(policy_dir / "models.yaml")]) == 2
    assert "models.yaml holds no grants (no grants: list)" in capsys.readouterr().err
    (policy_dir / "grants.yaml").write_text("grants: [\n  :: {\n")
    assert main([*sign, str(policy_dir / "grants.yaml")]) == 2
    assert "grants.yaml:2: invalid YAML" in capsys.readouterr().err


def test_sign_names_key_when_the_key_is_unusable(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grants = str(policy_dir / "grants.yaml")
    err = _refused(["grant", "sign", "--key", str(policy_dir), grants, "--id", GRANT_ID], capsys)
    assert f"argument --key: {policy_dir} is a folder" in err
    assert main(["grant", "sign", "--key", grants, grants, "--id", GRANT_ID]) == 2
    assert f"--key {grants}: is not an unencrypted PEM private key" in capsys.readouterr().err


def test_verify_refuses_a_folder_without_policy_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["grant", "verify", str(tmp_path)], capsys)
    assert f"argument DIR: {tmp_path} holds no policy files: give the policy folder" in err
