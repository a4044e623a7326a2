"""Shared fixtures: per-test keys, settings, and a helper to make realistic records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.audit import AuditSettings, generate_keys
from gateway.audit.keys import HMAC_KEY_FILE, SIGNING_KEY_FILE, VERIFIER_KEY_FILE

ORIGIN = "gateway.test/audit"
VECTORS = Path(__file__).parents[2] / ".." / "shared" / "vectors"


def make_record(number: int, **overrides: Any) -> dict[str, Any]:
    """A request record shaped like the ones the request path writes."""
    record: dict[str, Any] = {
        "kind": "request",
        "time": f"2026-11-27T06:{number // 60 % 60:02d}:{number % 60:02d}.123456Z",
        "request_id": f"req-{number}",
        "principal": {
            "subject": f"user-{number % 7}",
            "issuer": "https://idp.test",
            "organisation": "caisi" if number % 2 else "lab",
            "roles": ["evaluator"],
            "nationalities": [{"value": "US", "source": "oidc:idp"}],
            "residences": [],
            "auth_methods": ["oidc"],
            "certificate_fingerprint": None,
        },
        "model": "frontier-1",
        "route": "/v1/chat/completions",
        "decision": "allow" if number % 3 else "deny",
        "reason": "ok" if number % 3 else "nationality.denied",
        "rules": [],
        "grant_id": None,
        "policy_version": "sha256:abc",
        "client_address": "127.0.0.1",
        "request_digest": "hmac-sha256:" + "0" * 64,
        "request_bytes": 100 + number,
        "status": 200,
    }
    record.update(overrides)
    return record


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    generate_keys(directory, ORIGIN)
    return directory


@pytest.fixture
def verifier_file(key_dir: Path) -> Path:
    return key_dir / VERIFIER_KEY_FILE


@pytest.fixture
def settings(tmp_path: Path, key_dir: Path) -> AuditSettings:
    return AuditSettings(
        store=tmp_path / "var" / "audit.db",
        origin=ORIGIN,
        signing_key=key_dir / SIGNING_KEY_FILE,
        hmac_key=key_dir / HMAC_KEY_FILE,
        checkpoint_every_records=10,
        checkpoint_every_seconds=3600,
        batch_max=8,
    )
