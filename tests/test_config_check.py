"""`gateway config check FILE`, run for real on good and broken settings files."""

from __future__ import annotations

import shutil
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from gateway.audit import AuditLog, AuditSettings, generate_keys
from gateway.cli import main
from gateway.config_check.checks import check_config
from tests.audit.conftest import make_record
from tests.harness import ORIGIN, REPO, gateway_settings
from tests.postgres import private_schema

CHECK_TIME = datetime(2026, 12, 1, tzinfo=UTC)


def write_settings(tmp_path: Path, pki: Path, **overrides: Any) -> Path:
    return gateway_settings(
        tmp_path, pki, REPO / "policies", "http://127.0.0.1:9", port=0, overrides=overrides
    )


def line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["config", "check", str(path), "--connect-timeout", "2"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_good_file_passes_and_says_what_was_checked(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = check(write_settings(tmp_path, pki), capsys)
    assert status == 0
    assert "config OK" in out
    for part in ("settings", "tls", "policy", "audit store"):
        assert f"  {part}" in out
    assert "certificate and key match" in out
    assert "1 grants (all approved), 2 approver keys" in out
    # The example policy trusts two token issuers these settings do not configure.
    assert "the policy trusts oidc:agency-idp, which these settings do not configure" in err


def test_a_bad_value_names_the_file_key_and_line(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_settings(tmp_path, pki)
    path.write_text(path.read_text().replace("pool_size: 64", "pool_size: -1"))
    status, out, err = check(path, capsys)
    assert status == 2
    assert (
        f"error: {path}:{line_of(path, 'pool_size')}: upstreams[0].pool_size: must be at least 1"
        in err
    )
    assert "config invalid" in out


def test_a_file_that_does_not_exist_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        check(tmp_path / "nowhere.yaml", capsys)
    assert exited.value.code == 2
    assert "argument FILE: no such file: " in capsys.readouterr().err


def test_a_private_key_that_does_not_match_the_certificate(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_settings(tmp_path, pki)
    path.write_text(path.read_text().replace("server-key.pem", "alice-key.pem"))
    status, _, err = check(path, capsys)
    assert status == 2
    line = line_of(path, "certificate: ")
    assert f"{path}:{line}: tls.certificate: cannot load the certificate and private key" in err


def test_an_invalid_policy_is_named_at_its_own_file_and_line(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    grants = policies / "grants.yaml"
    grants.write_text(grants.read_text().replace("purpose: pre-release", "purpose: early"))
    path = write_settings(tmp_path, pki, policy={"directory": str(policies)})
    status, _, err = check(path, capsys)
    assert status == 2
    assert f"{grants}:{line_of(grants, 'key_id: chief-scientist')}: grants[0].signatures[0]" in err
    assert "has 0 of the 2 approvals it needs" in err


def test_an_unset_credential_variable_is_named(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_TEST_NO_SUCH_KEY", raising=False)
    path = write_settings(tmp_path, pki)
    data = yaml.safe_load(path.read_text())
    data["upstreams"][0]["credential"] = {"env": "GATEWAY_TEST_NO_SUCH_KEY"}
    path.write_text(yaml.safe_dump(data))
    status, _, err = check(path, capsys)
    assert status == 2
    assert f"{path}:{line_of(path, 'env: GATEWAY')}: upstreams[0].credential.env" in err


def test_warnings_do_not_fail_the_check(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_settings(
        tmp_path,
        pki,
        models=[
            {"id": "muse-spark-2", "upstream": "demo"},
            {"id": "muse-3", "upstream": "demo"},
        ],
    )
    (tmp_path / "upstream.key").chmod(0o644)
    status, out, err = check(path, capsys)
    assert status == 0
    assert "warnings)" in out
    assert "the policy's model muse-1 has no route" in err
    assert "model muse-3 is routed but unknown to the policy" in err
    assert "upstreams[0].credential.file: the upstream credential can be read by other users" in err


def test_certificates_near_or_past_their_end(tmp_path: Path, pki: Path) -> None:
    path = write_settings(tmp_path, pki)
    certificate = x509.load_pem_x509_certificate((pki / "server.pem").read_bytes())
    ends = certificate.not_valid_after_utc
    soon = check_config(path, now=ends - timedelta(days=3))
    assert soon.status == 0
    assert [(f.severity, f.key) for f in soon.findings if f.key == "tls.certificate"] == [
        ("warning", "tls.certificate")
    ]
    late = check_config(path, now=ends + timedelta(days=1))
    assert late.status == 2
    errors = [str(f) for f in late.findings if f.key == "tls.certificate"]
    assert errors == [
        f"{path}:{line_of(path, 'certificate: ')}: tls.certificate: the certificate expired on "
        f"{ends:%Y-%m-%d}"
    ]


def test_an_out_of_date_crl_fails_the_check(tmp_path: Path, pki: Path) -> None:
    ca = x509.load_pem_x509_certificate((pki / "agency-ca" / "ca.pem").read_bytes())
    key = serialization.load_pem_private_key(
        (pki / "agency-ca" / "ca-key.pem").read_bytes(), password=None
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(CHECK_TIME - timedelta(days=10))
        .next_update(CHECK_TIME - timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    (tmp_path / "agency.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    identity = {
        "certificate_authorities": [
            {
                "id": "agency",
                "bundle": str(pki / "agency-ca" / "ca.pem"),
                "crls": [str(tmp_path / "agency.crl")],
            },
            {"id": "corp", "bundle": str(pki / "corp-ca" / "ca.pem")},
        ]
    }
    path = gateway_settings(
        tmp_path, pki, REPO / "policies", "http://127.0.0.1:9", port=0, identity=identity
    )
    report = check_config(path, now=CHECK_TIME)
    assert report.status == 2
    (finding,) = [f for f in report.findings if f.severity == "error"]
    assert finding.key == "identity.certificate_authorities[0].crls"
    assert finding.line == line_of(path, "crls:")
    assert "the CRL is out of date" in finding.message


# -- the audit store ------------------------------------------------------------------------


def test_a_sqlite_store_whose_folder_cannot_be_made_is_unreachable(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    path = write_settings(tmp_path, pki, audit_store=str(tmp_path / "a-file" / "audit.db"))
    status, out, err = check(path, capsys)
    assert status == 1
    assert f"{path}:{line_of(path, 'store: ')}: audit.store: cannot create" in err
    assert "the audit store cannot be used now" in out


async def _write_store(store: Path, keys: Path) -> None:
    log = AuditLog(
        AuditSettings(
            store=store,
            origin=ORIGIN,
            signing_key=keys / "audit-signing.key",
            hmac_key=keys / "audit-hmac.key",
        )
    )
    await log.start()
    for number in range(3):
        await log.append(make_record(number))
    await log.stop()


async def test_an_existing_store_is_checked_against_the_signing_key(
    tmp_path: Path, pki: Path
) -> None:
    store = tmp_path / "var" / "audit.db"
    await _write_store(store, pki)
    path = write_settings(tmp_path, pki, audit_store=str(store))
    report = check_config(path, now=CHECK_TIME)
    assert report.status == 0
    assert (
        "audit store",
        f"{store}: 3 records, latest checkpoint at 3 verifies with the signing key",
    ) in report.checked


async def test_a_store_signed_with_another_key_fails_the_check(tmp_path: Path, pki: Path) -> None:
    other = tmp_path / "other-keys"
    generate_keys(other, ORIGIN)
    store = tmp_path / "var" / "audit.db"
    await _write_store(store, other)
    path = write_settings(tmp_path, pki, audit_store=str(store))
    report = check_config(path, now=CHECK_TIME)
    assert report.status == 2
    (finding,) = [f for f in report.findings if f.severity == "error"]
    assert (finding.key, finding.line) == ("audit.store", line_of(path, "store: "))
    assert "does not verify with the configured signing key" in finding.message


def test_a_postgresql_store_is_reached(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with private_schema() as url:
        status, out, _ = check(write_settings(tmp_path, pki, audit_store=url), capsys)
    assert status == 0
    assert "reachable, empty" in out


def test_an_unreachable_postgresql_store_fails_quickly(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"postgresql://gateway:secret-password@127.0.0.1:{port}/audit"
    started = time.monotonic()
    status, out, err = check(write_settings(tmp_path, pki, audit_store=url), capsys)
    assert status == 1
    assert time.monotonic() - started < 10
    assert "audit.store: audit store postgresql://gateway@127.0.0.1" in err
    assert "secret-password" not in out + err


def test_the_quota_counter_store_is_reached_or_named_unreachable(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reached = write_settings(tmp_path, pki, quotas={"store": "redis://127.0.0.1:6379/0"})
    status, out, _ = check(reached, capsys)
    assert status == 0
    assert "quota counters" in out
    assert "redis://127.0.0.1:6379: reachable" in out
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    url = f"redis://default:secret-password@127.0.0.1:{port}/0"
    started = time.monotonic()
    status, out, err = check(write_settings(tmp_path, pki, quotas={"store": url}), capsys)
    assert status == 1
    assert time.monotonic() - started < 10
    assert f"quotas.store: redis://127.0.0.1:{port} cannot be reached" in err
    assert "secret-password" not in out + err


@pytest.mark.parametrize("value", ["-1", "0", "x", "nan", "inf"])
def test_connect_timeout_must_be_a_positive_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    settings = tmp_path / "gateway.yaml"
    settings.write_text("{}\n")
    with pytest.raises(SystemExit) as exited:
        main(["config", "check", str(settings), "--connect-timeout", value])
    assert exited.value.code == 2
    assert (
        f"argument --connect-timeout: {value!r} is not a positive number: give a number "
        "greater than 0" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis://u:secret-password@127.0.0.1:99999/0",
        "redis://u:secret-password@127.0.0.1:abc/0",
        "redis://127.0.0.1:6379/0?socket_timeout=x",
    ],
)
def test_a_malformed_quota_store_url_is_named_not_a_traceback(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    status, out, err = check(write_settings(tmp_path, pki, quotas={"store": url}), capsys)
    assert status == 2, out + err
    assert "quotas.store: not a usable Redis URL" in err
    assert "secret-password" not in out + err
