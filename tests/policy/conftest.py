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
from gateway.policy import Policy, load_policy
from tests.signing import LAB, TEST_APPROVERS, approvers_yaml, sign_file  # noqa: F401 - shared

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
@pytest.fixture(scope="session")
def approver_keys() -> dict[str, Ed25519PrivateKey]:
    return {key_id: Ed25519PrivateKey.generate() for key_id in TEST_APPROVERS}


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
