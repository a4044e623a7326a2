"""Paths in a settings file are resolved once, where the file is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, Section
from gateway.settings import load_settings
from tests.harness import REPO, gateway_settings


def test_a_relative_path_is_made_absolute_without_dot_dot(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "policies").mkdir()
    section = Section(
        {"directory": "../policies/./"}, "gateway.yaml", "policy", tmp_path / "deploy"
    )

    assert section.path_value("directory") == (tmp_path / "policies").resolve()
    assert ".." not in section.path_value("directory").parts


def test_a_symbolic_link_is_resolved_to_its_target(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    section = Section({"store": "link/audit.db"}, "gateway.yaml", "audit", tmp_path)

    assert (
        section.path_value("store", must_exist=False) == (tmp_path / "real" / "audit.db").resolve()
    )


def test_a_missing_file_is_named_as_written(tmp_path: Path) -> None:
    section = Section({"bundle": "../nowhere/ca.pem"}, "gateway.yaml", "identity", tmp_path)
    with pytest.raises(ConfigError) as caught:
        section.path_value("bundle")
    assert str(caught.value) == "gateway.yaml: identity.bundle: file not found: ../nowhere/ca.pem"


def test_every_path_of_a_settings_file_read_through_a_dot_dot_is_normalised(
    tmp_path: Path, pki: Path
) -> None:
    # The settings file sits in deploy/ and reaches everything through "..", as the demo's does.
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    written = gateway_settings(deploy, pki, REPO / "policies", "http://127.0.0.1:9", port=0)
    text = (
        written.read_text()
        .replace(str(pki), f"../{pki.name}")
        .replace(str(REPO / "policies"), "../policies")
    )
    (tmp_path / pki.name).symlink_to(pki)
    (tmp_path / "policies").symlink_to(REPO / "policies")
    written.write_text(text)

    settings = load_settings(deploy / "gateway.yaml")

    paths = [
        settings.policy.directory,
        settings.audit.store,
        settings.audit.signing_key,
        settings.audit.hmac_key,
        settings.tls.certificate,
        *(authority.bundle for authority in settings.identity.certificate_authorities),
    ]
    assert all(path is not None and path.is_absolute() for path in paths)
    assert [path for path in paths if path is not None and ".." in path.parts] == []
    assert settings.policy.directory == (REPO / "policies").resolve()


def _settings_text(tmp_path: Path, pki: Path) -> str:
    return gateway_settings(
        tmp_path, pki, REPO / "policies", "http://127.0.0.1:9", port=0
    ).read_text()


def _line_of(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_a_bad_value_names_its_key_and_line(tmp_path: Path, pki: Path) -> None:
    text = _settings_text(tmp_path, pki).replace("pool_size: 64", "pool_size: many")
    (tmp_path / "gateway.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "gateway.yaml")
    assert (caught.value.key, caught.value.line) == (
        "upstreams[0].pool_size",
        _line_of(text, "pool_size"),
    )
    assert str(caught.value).startswith(f"{tmp_path / 'gateway.yaml'}:{caught.value.line}: ")


def test_an_error_raised_without_a_line_gets_the_line_of_its_key(tmp_path: Path, pki: Path) -> None:
    # Bundles are read by the identity settings, which raise ConfigError with a key only.
    (tmp_path / "not-a-bundle.pem").write_text("nothing here\n")
    text = _settings_text(tmp_path, pki).replace(
        str(pki / "corp-ca" / "ca.pem"), str(tmp_path / "not-a-bundle.pem")
    )
    (tmp_path / "gateway.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "gateway.yaml")
    assert caught.value.key == "identity.certificate_authorities[1].bundle"
    assert caught.value.line == _line_of(text, "not-a-bundle.pem")


@pytest.mark.parametrize(
    ("replacement", "message"),
    [
        ("watch: yes", "expected true or false"),  # YAML 1.1 booleans are plain text
        ("watch: &flag true", "anchors and aliases are not supported"),
        ("watch: !!bool true", "explicit tags are not supported"),
    ],
)
def test_settings_read_as_yaml_1_2_without_anchors_or_tags(
    tmp_path: Path, pki: Path, replacement: str, message: str
) -> None:
    text = _settings_text(tmp_path, pki).replace("watch: true", replacement)
    (tmp_path / "gateway.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "gateway.yaml")
    assert message in caught.value.message
    assert caught.value.line == _line_of(text, replacement)
