"""The witness settings: `audit.witnesses` in the gateway's file, and the witness's own
file. A bad value names the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditSettings
from gateway.audit.cosignature import generate_cosigner
from gateway.audit.keys import HMAC_KEY_FILE, SIGNING_KEY_FILE, VERIFIER_KEY_FILE
from gateway.config import ConfigError, Section
from gateway.witness import WitnessServerSettings

from .conftest import ORIGIN

WITNESS = generate_cosigner("witness.test/w1")


def _audit(key_dir: Path, **extra: Any) -> AuditSettings:
    data = {
        "store": "audit.db",
        "origin": ORIGIN,
        "signing_key": str(key_dir / SIGNING_KEY_FILE),
        "hmac_key": str(key_dir / HMAC_KEY_FILE),
        **extra,
    }
    return AuditSettings.from_section(Section(data, "gateway.yaml", "audit", key_dir))


def _witness(**fields: Any) -> dict[str, Any]:
    return {"url": "https://witness.test/", "key": WITNESS.verifier.to_string(), **fields}


def test_a_witness_is_configured_by_url_and_key(key_dir: Path) -> None:
    settings = _audit(key_dir, witnesses=[_witness()], witness_retry_max_seconds=30)
    [witness] = settings.witnesses
    assert witness.name == "witness.test/w1"
    assert witness.add_checkpoint_url == "https://witness.test/add-checkpoint"
    assert settings.witness_retry_max_seconds == 30.0


@pytest.mark.parametrize(
    ("witnesses", "extra", "key", "message"),
    [
        ([_witness(key="nonsense")], {}, "audit.witnesses[0].key", "not a witness verifier key"),
        ([_witness(name="other/w")], {}, "audit.witnesses[0].name", "must equal the name"),
        ([_witness(url="ftp://witness.test/")], {}, "audit.witnesses[0].url", "http"),
        ([_witness(url="https://u:p@witness.test/")], {}, "audit.witnesses[0].url", "credentials"),
        ([_witness(), _witness()], {}, "audit.witnesses[1].key", "listed twice"),
        ([_witness(colour="blue")], {}, "audit.witnesses[0].colour", "unknown key"),
        (
            [_witness()],
            {"witness_retry_seconds": 10, "witness_retry_max_seconds": 5},
            "audit.witness_retry_max_seconds",
            "at least witness_retry_seconds",
        ),
    ],
)
def test_a_bad_witness_setting_names_its_key(
    key_dir: Path, witnesses: list[Any], extra: dict[str, Any], key: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _audit(key_dir, witnesses=witnesses, **extra)
    assert caught.value.key == key
    assert message in str(caught.value)


def test_the_log_key_is_not_a_witness_key(key_dir: Path) -> None:
    log_key = (key_dir / VERIFIER_KEY_FILE).read_text().strip()
    with pytest.raises(ConfigError, match="type 0x04"):
        _audit(key_dir, witnesses=[_witness(key=log_key)])


def _server(tmp_path: Path, key_dir: Path, **fields: Any) -> WitnessServerSettings:
    (tmp_path / "witness.key").write_text(WITNESS.to_string() + "\n")
    data = {
        "signing_key": "witness.key",
        "state": "var/witness.db",
        "logs": [{"origin": ORIGIN, "key": (key_dir / VERIFIER_KEY_FILE).read_text().strip()}],
        **fields,
    }
    return WitnessServerSettings.from_section(Section(data, "witness.yaml", "", tmp_path))


def test_the_witness_file_names_its_logs_key_and_state(tmp_path: Path, key_dir: Path) -> None:
    settings = _server(tmp_path, key_dir)
    assert list(settings.logs) == [ORIGIN]
    assert settings.state == tmp_path / "var" / "witness.db"
    assert (settings.host, settings.port, settings.certificate) == ("127.0.0.1", 7380, None)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"logs": []}, "logs"),
        ({"logs": [{"origin": ORIGIN, "key": WITNESS.verifier.to_string()}]}, "logs[0].key"),
        ({"signing_key": "missing.key"}, "signing_key"),
        ({"tls": {"certificate": "witness.key"}}, "tls.certificate"),
        ({"listen": {"port": -1}}, "listen.port"),
        ({"witnesses": []}, "witnesses"),
    ],
)
def test_a_bad_witness_file_names_its_key(
    tmp_path: Path, key_dir: Path, fields: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _server(tmp_path, key_dir, **fields)
    assert caught.value.key == key


def test_a_log_signer_key_is_not_a_witness_signer_key(tmp_path: Path, key_dir: Path) -> None:
    (tmp_path / "log.key").write_text((key_dir / SIGNING_KEY_FILE).read_text())
    with pytest.raises(ConfigError) as caught:
        _server(tmp_path, key_dir, signing_key="log.key")
    assert caught.value.key == "signing_key"
    assert "PRIVATE" not in str(caught.value)
