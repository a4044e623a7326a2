"""Fixtures for the policy tests: the example policy and a writable copy of it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from gateway.identity.principal import Attribute, Principal
from gateway.policy import Policy, load_policy

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


@pytest.fixture(scope="session")
def example() -> Policy:
    return load_policy(EXAMPLE)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A writable copy of the example policy (without its tests)."""
    target = tmp_path / "policy"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("tests"))
    return target


@pytest.fixture
def edit(policy_dir: Path) -> Callable[[str, str], Policy]:
    """Write `text` to file `name` in the copy and load the result."""

    def write(name: str, text: str) -> Policy:
        (policy_dir / name).write_text(text)
        return load_policy(policy_dir)

    return write
