"""Objects added at run time (the admin API): suspensions and grants, validated exactly as
the same objects in a policy file are, against the policy in force, and combined with it.

    parse_suspension(policy, text, where) -> Suspension     (origin "api")
    parse_grant(policy, text, where)      -> Grant          (origin "api")
    DynamicObjects(...).apply(policy)     -> Policy          the effective policy

`text` is the object as JSON (or YAML); errors are PolicyLoadError naming `where`, the
field path and the line, as for a file. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ._errors import PolicyLoadError
from ._loader import _Builder, _Sections
from ._model import Grant, Suspension
from ._policy import Policy
from ._yaml import Node, parse_yaml

__all__ = ["DynamicObjects", "parse_grant", "parse_suspension"]


def _builder(policy: Policy, kind: str, text: str, where: str) -> _Builder:
    node = Node(parse_yaml(text, where, None), where, "")
    sections = _Sections()
    sections.lists[kind] = [node]
    builder = _Builder(sections, [], None)
    builder.groups = dict(policy.country_groups)
    builder.trust = {name: dict(sources) for name, sources in policy.trust.items()}
    return builder


def parse_suspension(policy: Policy, text: str, where: str, object_id: str) -> Suspension:
    """A suspension as posted, valid under `policy`, named `object_id`."""
    builder = _builder(policy, "suspensions", text, where)
    (suspension,) = builder._suspensions(dict(policy.models), dict(policy.access_classes))
    return replace(suspension, origin="api", id=object_id)


def parse_grant(policy: Policy, text: str, where: str) -> Grant:
    """A grant as posted, valid under `policy` (its window, models and approvals), whose id
    no grant of the policy files uses."""
    builder = _builder(policy, "grants", text, where)
    (grant,) = builder._grants(dict(policy.models), policy.settings)
    if any(existing.id == grant.id for existing in policy._static_grants):
        raise PolicyLoadError(where, "id", None, f"grant {grant.id!r} exists in the policy files")
    return replace(grant, origin="api")


@dataclass(frozen=True, slots=True)
class DynamicObjects:
    """What the admin API added: suspensions, grants, and file grants revoked early.

    `digests` names every object (id -> SHA-256 of its stored form) for the version.
    """

    suspensions: tuple[Suspension, ...] = ()
    grants: tuple[Grant, ...] = ()
    revoked: frozenset[str] = frozenset()
    digests: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def version(self) -> str:
        """SHA-256 over the objects in force; empty when there are none."""
        if not self.digests:
            return ""
        text = "\n".join(f"{name} {digest}" for name, digest in sorted(self.digests))
        return hashlib.sha256(text.encode()).hexdigest()

    def apply(self, policy: Policy) -> Policy:
        """The effective policy: `policy` with these objects."""
        return policy.with_dynamic(self.suspensions, self.grants, self.revoked, self.version)

    @classmethod
    def of(
        cls,
        suspensions: Iterable[Suspension],
        grants: Iterable[Grant],
        revoked: Iterable[str],
        digests: Iterable[tuple[str, str]],
    ) -> DynamicObjects:
        return cls(tuple(suspensions), tuple(grants), frozenset(revoked), tuple(digests))
