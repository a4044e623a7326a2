"""Load-time validation: every error names the file, the key path and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import PolicyError, PolicyLoadError, load_policy

GRANT = """grants:
  - id: extra-grant
    grantee: {{organisation: US CAISI}}
    models: [{model}]
    not_before: {not_before}
    not_after: {not_after}
    purpose: test
"""


def grant(
    model: str = "muse-spark-2",
    not_before: str = "2026-12-20T00:00:00Z",
    not_after: str = "2026-12-21T00:00:00Z",
) -> str:
    return GRANT.format(model=model, not_before=not_before, not_after=not_after)


def load_error(directory: Path, name: str, text: str) -> PolicyLoadError:
    (directory / name).write_text(text)
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(directory)
    return caught.value


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        (grant(not_before="2026-12-16T15:59:59Z"), "grants[0].not_before", 5, "opens before"),
        (grant(not_after="2026-12-20T00:00:00Z"), "grants[0].not_after", 6, "later than"),
        (grant(model="muse-9"), "grants[0].models[0]", 4, "unknown model"),
        (grant(), "grants[0].signatures", 2, "has no signatures"),
        (grant() + "    approvers: [a, b]\n", "grants[0].approvers", 8, "approved by signatures"),
        (
            grant() + "    signatures:\n      - {key_id: a, signature: not-base64}\n",
            "grants[0].signatures[0].signature",
            9,
            "not an Ed25519 signature: it is not base64",
        ),
        (
            grant() + "    signatures:\n      - {key_id: a, signature: AAAA}\n",
            "grants[0].signatures[0].signature",
            9,
            "decodes to 3 bytes, not 64",
        ),
        (
            grant() + "    signatures:\n      - {key_id: a}\n",
            "grants[0].signatures[0].signature",
            9,
            "is required",
        ),
        (grant(not_before="2026-12-20"), "grants[0].not_before", 5, "date-time"),
        (grant(not_before="2026-12-20T00:00:00"), "grants[0].not_before", 5, "time zone"),
        (grant().replace("purpose", "porpose"), "grants[0].porpose", 7, "unknown key"),
        (
            "models:\n  - {id: m, access_class: secret}\n",
            "models[0].access_class",
            2,
            "unknown access class",
        ),
        (
            "models:\n  - {id: m, access_class: general}\n  - {id: m, access_class: general}\n",
            "models[1].id",
            3,
            "duplicate model",
        ),
        (
            "access_classes:\n  x:\n    nationality:\n      allow: [US, ZZ]\n",
            "access_classes.x.nationality.allow[1]",
            4,
            "not an ISO 3166-1",
        ),
        (
            'access_classes:\n  x:\n    nationality:\n      deny: ["E:9"]\n',
            "access_classes.x.nationality.deny[0]",
            4,
            "unknown country group",
        ),
        (
            "access_classes:\n  x:\n    nationality: {combine: some}\n",
            "access_classes.x.nationality.combine",
            3,
            "expected one of",
        ),
        (
            "access_classes:\n  general:\n    nationality: {}\n",
            "access_classes.general",
            2,
            "already defined",
        ),
        (
            "suspensions:\n  - {reason: r, since: 2026-01-01T00:00:00Z}\n",
            "suspensions[0]",
            2,
            "exactly one",
        ),
        (
            "suspensions:\n  - {model: nope, reason: r, since: 2026-01-01T00:00:00Z}\n",
            "suspensions[0].model",
            2,
            "unknown model",
        ),
        ("trust:\n  shoe_size: [ca:corp]\n", "trust.shoe_size", 2, "unknown attribute"),
        ("grantz: []\n", "grantz", 1, "unknown key"),
        ("models: {id: x}\n", "models", 1, "expected a list"),
    ],
)
def test_invalid_policy_names_file_key_and_line(
    policy_dir: Path, text: str, key: str, line: int, message: str
) -> None:
    error = load_error(policy_dir, "extra.yaml", text)
    assert error.file == str(policy_dir / "extra.yaml")
    assert (error.key, error.line) == (key, line)
    assert message in error.message
    assert str(error).startswith(f"{policy_dir / 'extra.yaml'}:{line}: {key}: ")
    assert isinstance(error, PolicyError)


def test_min_approvers_is_configurable(policy_dir: Path) -> None:
    (policy_dir / "settings.yaml").write_text("settings:\n  min_approvers: 3\n")
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert (caught.value.key, caught.value.line) == ("grants[0].signatures", 12)
    assert caught.value.file.endswith("grants.yaml")
    assert "has 2 of the 3 approvals it needs" in caught.value.message


def test_max_prerelease_lead_is_configurable(policy_dir: Path) -> None:
    (policy_dir / "settings.yaml").write_text("settings:\n  max_prerelease_lead: 29d\n")
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert (caught.value.key, caught.value.line) == ("grants[0].not_before", 9)


def test_invalid_code_in_a_country_group_file(policy_dir: Path) -> None:
    (policy_dir / "country-groups" / "bad.yaml").write_text(
        'name: "X:1"\neffective_from: 2025-01-01\nsource: test\ncodes: [US, XX]\n'
    )
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    error = caught.value
    assert error.file.endswith("bad.yaml")
    assert (error.key, error.line) == ("codes[1]", 4)


def test_role_source_must_be_trusted_for_the_attribute(policy_dir: Path) -> None:
    text = "roles:\n  vip:\n    - {attribute: nationality, value: US, sources: [oidc:corp-idp]}\n"
    error = load_error(policy_dir, "extra.yaml", text)
    assert (error.key, error.line) == ("roles.vip[0].sources[0]", 3)


def test_country_code_no_stays_a_string(policy_dir: Path) -> None:
    (policy_dir / "extra.yaml").write_text(
        "access_classes:\n  nordic:\n    nationality: {allow: [NO, SE]}\n"
    )
    policy = load_policy(policy_dir)
    assert policy.access_classes["nordic"].nationality.allow_codes == frozenset({"NO", "SE"})


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("models: [\n", 2, "invalid YAML"),
        ("a: &x 1\nb: *x\n", 1, "anchors"),
        ("models: !!python/object x\n", 1, "tags"),
        ("grants: []\n---\ngrants: []\n", 2, "single YAML document"),
        ("grants: []\ngrants: []\n", 2, "duplicate key"),
    ],
)
def test_yaml_level_errors_name_the_line(
    policy_dir: Path, text: str, line: int, message: str
) -> None:
    error = load_error(policy_dir, "extra.yaml", text)
    assert error.line == line
    assert message in error.message


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="not found"):
        load_policy(tmp_path / "nothing")


def test_tests_folder_is_not_policy_content(policy_dir: Path) -> None:
    (policy_dir / "tests").mkdir()
    (policy_dir / "tests" / "cases.yaml").write_text("cases: []\n")
    assert load_policy(policy_dir).version == load_policy(policy_dir.parent / "policy").version


def test_version_ignores_comments_but_not_meaning(policy_dir: Path) -> None:
    before = load_policy(policy_dir).version
    path = policy_dir / "models.yaml"
    path.write_text("# a comment\n" + path.read_text())
    assert load_policy(policy_dir).version == before
    path.write_text(path.read_text().replace("frontier model", "frontier language model"))
    assert load_policy(policy_dir).version != before
