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
from dataclasses import replace

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


def parse_grant(
    policy: Policy, text: str, where: str, file_grant_ids: frozenset[str] = frozenset()
) -> Grant:
    """A grant as posted, valid under `policy` (its window, models and approvals), whose id
    is none of `file_grant_ids` (the ids of the policy files' grants)."""
    builder = _builder(policy, "grants", text, where)
    (grant,) = builder._grants(dict(policy.models), policy.settings, dict(policy.approvers))
    if grant.id in file_grant_ids:
        raise PolicyLoadError(where, "id", None, f"grant {grant.id!r} exists in the policy files")
    return replace(grant, origin="api")


class DynamicObjects:
    """What the admin API added, kept up to date one object at a time: suspensions,
    grants (with their index by model and organisation), file grants revoked early, and
    a digest per object for the version.

    Mutable by design (the owner applies each change as it comes, in O(that object));
    `apply` makes the immutable effective Policy.
    """

    def __init__(self) -> None:
        self.suspensions: dict[str, Suspension] = {}
        self.grants: dict[str, Grant] = {}
        self.grant_index: dict[tuple[str, str], tuple[Grant, ...]] = {}
        self.revoked: dict[str, str] = {}  # object id -> revoked grant id
        self._hashes: dict[str, bytes] = {}

    def add(self, object_id: str, digest: str, item: Suspension | Grant | str) -> None:
        """Add one object (a revocation is the revoked grant's id)."""
        self.discard(object_id)
        if isinstance(item, Suspension):
            self.suspensions[object_id] = item
        elif isinstance(item, Grant):
            self.grants[object_id] = item
            for model in item.models:
                key = (model, item.organisation)
                self.grant_index[key] = (*self.grant_index.get(key, ()), item)
        else:
            self.revoked[object_id] = item
        self._hashes[object_id] = hashlib.sha256(f"{object_id} {digest}".encode()).digest()

    def discard(self, object_id: str) -> None:
        """Remove one object, if present."""
        self.suspensions.pop(object_id, None)
        self.revoked.pop(object_id, None)
        self._hashes.pop(object_id, None)
        grant = self.grants.pop(object_id, None)
        if grant is not None:
            for model in grant.models:
                key = (model, grant.organisation)
                kept = tuple(entry for entry in self.grant_index.get(key, ()) if entry is not grant)
                if kept:
                    self.grant_index[key] = kept
                else:
                    self.grant_index.pop(key, None)

    @property
    def version(self) -> str:
        """SHA-256 over the objects in force (ids and digests); empty when there are none."""
        if not self._hashes:
            return ""
        return hashlib.sha256(b"".join(sorted(self._hashes.values()))).hexdigest()

    def apply(self, policy: Policy) -> Policy:
        """The effective policy: `policy` with these objects. A revocation closes a grant
        of its id wherever it came from, a run-time grant included (two replicas may have
        stored a grant and its revocation at once)."""
        revoked = frozenset(self.revoked.values())
        grants: Iterable[Grant] = self.grants.values()
        index = self.grant_index
        if revoked & {grant.id for grant in grants}:
            grants = [grant for grant in grants if grant.id not in revoked]
            index = {
                key: kept
                for key, entries in index.items()
                if (kept := tuple(grant for grant in entries if grant.id not in revoked))
            }
        return policy.with_dynamic(self.suspensions.values(), grants, index, revoked, self.version)
