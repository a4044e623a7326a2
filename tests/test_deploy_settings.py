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
    assert (settings.metrics.host, settings.metrics.port) == ("127.0.0.1", 9102)
    assert settings.metrics.loopback


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


def test_the_fleet_settings_parse_and_name_one_postgresql_log(pki: Path) -> None:
    (pki / "upstream.key").touch()
    settings = load(
        "fleet/gateway.yaml",
        {"/etc/gateway/certs": str(pki), "/etc/gateway/policies": str(REPO / "policies")},
    )
    assert settings.audit.store == "postgresql://gateway@database:5432/audit"
    forwarded = settings.identity.forwarded_certificate
    assert forwarded is not None
    assert forwarded.format == "pem-urlencoded"
    assert [str(n) for n in forwarded.trusted_proxies] == ["172.28.0.10/32"]


def test_the_fleet_compose_file_passes_no_secret_and_keeps_durability_on() -> None:
    compose = yaml.safe_load((REPO / "deploy" / "fleet" / "compose.yaml").read_text())
    database = compose["services"]["database"]
    assert "synchronous_commit=on" in database["command"]
    assert "fsync=on" in database["command"]
    for service in compose["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if "PASSWORD" in name:
                assert str(value).startswith("${"), "secrets come from the environment only"
    nginx = (REPO / "deploy" / "fleet" / "nginx.conf").read_text()
    assert "proxy_set_header X-Client-Cert $ssl_client_escaped_cert;" in nginx
