"""Fixtures for the policy tests: the example policy, a writable copy of it, and approver
keys made per test session (the example's own approver keys have no private halves)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.identity.principal import Attribute, Principal
from gateway.policy import Policy, load_policy, sign_grant
from gateway.policy._approvers import encode_signature
from gateway.policy._grant_edit import add_signature
from gateway.policy._loader import inspect_grants
from gateway.policy.approver_keys import public_key_text

EXAMPLE = Path(__file__).resolve().parents[2] / "policies"


def at(text: str) -> datetime:
    """An aware instant from ISO 8601 text."""
    return datetime.fromisoformat(text)


def person(
    organisation: str | None = None,
    nationalities: tuple[str, ...] = (),
    source: str = "ca:agency",
    *,
    subject: str = "subject-1",
    roles: tuple[str, ...] = (),
    extra: tuple[Attribute, ...] = (),
) -> Principal:
    """A principal whose attributes all come from `source`."""
    attributes = {Attribute("nationality", code, source) for code in nationalities}
    attributes |= {Attribute("role", role, source) for role in roles}
    if organisation is not None:
        attributes.add(Attribute("organisation", organisation, source))
    return Principal(
        subject=subject,
        issuer=source,
        attributes=frozenset(attributes | set(extra)),
        auth_methods=frozenset({"mtls"}),
    )


# Approver keys of the test session: (organisation, key) by key id.
LAB = "Example AI Labs"
TEST_APPROVERS = {
    "lab-approver-1": LAB,
    "lab-approver-2": LAB,
    "lab-approver-3": LAB,
    "caisi-approver": "US CAISI",
    "other-approver": "Northwind Audit",
}


@pytest.fixture(scope="session")
def approver_keys() -> dict[str, Ed25519PrivateKey]:
    return {key_id: Ed25519PrivateKey.generate() for key_id in TEST_APPROVERS}


def approvers_yaml(keys: dict[str, Ed25519PrivateKey]) -> str:
    """An `approvers` section listing `keys` with their TEST_APPROVERS organisations."""
    lines = ["approvers:"]
    for key_id, key in keys.items():
        lines += [
            f"  - id: {key_id}",
            f"    organisation: {TEST_APPROVERS[key_id]}",
            f"    public_key: {public_key_text(key)}",
        ]
    return "\n".join(lines) + "\n"


def sign_file(
    path: Path,
    keys: dict[str, Ed25519PrivateKey],
    key_ids: tuple[str, ...],
    grant: str | None = None,
) -> None:
    """Sign the grants in policy file `path` (or only `grant`) with `key_ids`, as
    `gateway grant sign` does: over the grant as loaded, added to the file's text."""
    _, reports = inspect_grants(path.parent)
    text = path.read_text()
    for report in reports:
        if Path(report.file) != path or grant not in (None, report.grant.id):
            continue
        for key_id in key_ids:
            signature = sign_grant(report.grant, key_id, keys[key_id])
            text = add_signature(
                text, str(path), report.grant.id, key_id, encode_signature(signature.signature)
            )
    path.write_text(text)


@pytest.fixture(scope="session")
def example() -> Policy:
    return load_policy(EXAMPLE)


@pytest.fixture
def policy_dir(tmp_path: Path, approver_keys: dict[str, Ed25519PrivateKey]) -> Path:
    """A writable copy of the example policy (without its tests), whose approvers also
    include the session's test keys (in approvers-test.yaml)."""
    target = tmp_path / "policy"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("tests"))
    (target / "approvers-test.yaml").write_text(approvers_yaml(approver_keys))
    return target


@pytest.fixture
def edit(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> Callable[[str, str], Policy]:
    """Write `text` to file `name` in the copy, sign its grants with two lab approver
    keys, and load the result."""

    def write(name: str, text: str) -> Policy:
        (policy_dir / name).write_text(text)
        sign_file(policy_dir / name, approver_keys, ("lab-approver-1", "lab-approver-2"))
        return load_policy(policy_dir)

    return write
