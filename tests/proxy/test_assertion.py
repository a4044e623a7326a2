"""The identity assertion: what it claims, how long it lives, and the key behind it."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.config import ConfigError, Section
from gateway.proxy import AssertionSettings, AssertionSigner, assertion_claims
from gateway.proxy._assertion import generate_signing_key, load_signing_key

GATEWAY = Path(sys.executable).parent / "gateway"


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_signing_key(tmp_path_factory.mktemp("assertion"))


def _decode(token: str, public: Path) -> dict[str, Any]:
    keys = KeySet.import_key_set(json.loads(public.read_text()))
    claims: dict[str, Any] = jwt.decode(token, keys, algorithms=["ES256"]).claims
    return claims


RECORD = {
    "request_id": "r-1",
    "model": "muse-spark-2",
    "reason": "allow.grant",
    "grant_id": "g-1",
    "policy_version": "v" * 64,
    "principal": {
        "subject": "alice",
        "issuer": "ca:agency",
        "organisation": "US CAISI",
        "roles": ["evaluator"],
        "auth_methods": ["mtls"],
        "nationalities": [
            {"value": "FR", "source": "oidc:corp-idp", "trusted": False},
            {"value": "US", "source": "ca:agency", "trusted": True},
        ],
    },
}


def test_only_trusted_nationalities_are_asserted() -> None:
    claims = assertion_claims(RECORD, 17)
    assert claims["nationalities"] == [{"value": "US", "source": "ca:agency"}]
    assert (claims["audit_index"], claims["request_id"], claims["sub"]) == (17, "r-1", "alice")


def test_every_assertion_has_its_own_token_id_even_for_one_request_id() -> None:
    ids = {assertion_claims(RECORD, 17)["jti"] for _ in range(100)}
    assert len(ids) == 100
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert "r-1" not in ids


def test_an_assertion_verifies_with_the_published_key(key_files: tuple[Path, Path]) -> None:
    key, public = key_files
    signer = AssertionSigner(load_signing_key(key), "gw.example/audit", lifetime_seconds=20)
    token = signer.sign(assertion_claims(RECORD, 17), "vllm-a", 1_800_000_000.5)
    claims = _decode(token, public)
    assert (claims["iss"], claims["aud"]) == ("gw.example/audit", "vllm-a")
    assert (claims["iat"], claims["exp"]) == (1_800_000_000, 1_800_000_020)
    assert json.loads(Path(public).read_text())["keys"][0]["kid"] == signer.key_id


def test_claims_cannot_stretch_the_lifetime_or_change_the_audience(
    key_files: tuple[Path, Path],
) -> None:
    key, public = key_files
    signer = AssertionSigner(load_signing_key(key), "gw")
    forged = {"sub": "a", "aud": "other", "exp": 4_000_000_000, "iat": 0, "iss": "x"}
    claims = _decode(signer.sign(forged, "vllm-a", 1_800_000_000), public)
    assert (claims["aud"], claims["iss"]) == ("vllm-a", "gw")
    assert claims["exp"] - claims["iat"] == 30


def test_the_key_files_are_private_and_public_and_never_overwritten(
    key_files: tuple[Path, Path],
) -> None:
    key, public = key_files
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "d" not in json.loads(public.read_text())["keys"][0]
    with pytest.raises(FileExistsError):
        generate_signing_key(key.parent)


@pytest.mark.parametrize(
    ("data", "named"),
    [({"lifetime_seconds": 61}, "lifetime_seconds"), ({"lifetime_seconds": 0}, "lifetime_seconds")],
)
def test_a_lifetime_beyond_a_minute_is_refused(
    key_files: tuple[Path, Path], data: dict[str, Any], named: str
) -> None:
    section = Section({"signing_key": str(key_files[0]), **data}, "gw.yaml", "identity_assertion")
    with pytest.raises(ConfigError) as refused:
        AssertionSettings.from_section(section, "gw")
    assert named in str(refused.value)


def test_a_key_that_is_not_p256_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = tmp_path / "ed25519.pem"
    other.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    section = Section({"signing_key": str(other)}, "gw.yaml", "identity_assertion")
    with pytest.raises(ConfigError) as refused:
        AssertionSettings.from_section(section, "gw")
    assert "signing_key" in str(refused.value)


def test_the_command_writes_a_key_once(tmp_path: Path) -> None:
    command = [str(GATEWAY), "keys", "assertion", "--out", str(tmp_path / "keys")]
    first = subprocess.run(command, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "keys" / "assertion-signing.key").exists()
    load_signing_key(tmp_path / "keys" / "assertion-signing.key")
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert again.returncode == 2
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
