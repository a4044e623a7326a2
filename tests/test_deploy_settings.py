"""The settings files the repository ships parse, so `make run` and compose start."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateway.config import Section
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def load(name: str, replacements: dict[str, str]) -> Settings:
    text = (REPO / "deploy" / name).read_text()
    for old, new in replacements.items():
        text = text.replace(old, new)
    return Settings.from_section(Section(yaml.safe_load(text), name, "", REPO / "deploy"))


def test_the_demo_settings_parse(pki: Path, tmp_path: Path) -> None:
    settings = load(
        "gateway.yaml",
        {"../certs/dev": str(pki), "../policies": str(REPO / "policies"), "../var": str(tmp_path)},
    )
    assert (settings.host, settings.port) == ("127.0.0.1", 8443)
    assert settings.tls.enabled
    assert sorted(settings.routes) == ["muse-1", "muse-spark-2"]


def test_the_compose_settings_parse(pki: Path, tmp_path: Path) -> None:
    settings = load(
        "gateway.compose.yaml",
        {
            "/etc/gateway/certs": str(pki),
            "/etc/gateway/policies": str(REPO / "policies"),
            "/var/lib/gateway": str(tmp_path),
        },
    )
    assert settings.host == "0.0.0.0"  # noqa: S104 - inside the container, by design
    assert settings.upstreams[0].base_url == "http://upstream:9000/v1"


def test_a_typo_in_a_key_names_the_file_and_key(pki: Path, tmp_path: Path) -> None:
    from gateway.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        load("gateway.yaml", {"../certs/dev": str(pki), "max_body_bytes": "max_body_byte"})
    assert str(caught.value).startswith("gateway.yaml: limits.max_body_byte: unknown key")
