"""Bounded label values: no label may carry a prompt, a token or an unbounded value.

Every label a metric gets passes through one of these. A value is kept only if it is
in a known set (routes the app serves, models the settings route, organisations and
grants the policy names), or, for reason codes, if it has the shape of one and fewer
than `limit` distinct values were admitted so far. Anything else becomes `other`, so
no input an attacker chooses (a model name, a path, a header) can add a series.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.policy import Policy

__all__ = [
    "NAME_PATTERN",
    "NONE",
    "OTHER",
    "REASON_PATTERN",
    "BoundedLabel",
    "PolicyLabels",
    "policy_organisations",
]

OTHER = "other"
NONE = "none"

REASON_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}(?:\.[a-z][a-z0-9_]{0,47}){1,2}")
"""A reason code's shape: `family.detail` (`nationality.denied`, `suspended.model`)."""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/:]{0,127}")
"""A configured name's shape (a witness, named as C2SP keys are: `witness.example/w1`):
no spaces, at most 128 characters."""


class BoundedLabel:
    """Maps a value to itself if it is `known` or admitted under `pattern`, else `other`.

    At most `limit` values are admitted under the pattern (first come); None is `none`.
    """

    __slots__ = ("_admitted", "_known", "_limit", "_pattern")

    def __init__(
        self,
        known: Iterable[str] = (),
        *,
        pattern: re.Pattern[str] | None = None,
        limit: int = 0,
    ) -> None:
        self._known = {value: value for value in known}
        self._admitted: dict[str, str] = {}
        self._pattern = pattern
        self._limit = limit

    def __call__(self, value: str | None) -> str:
        if value is None:
            return NONE
        found = self._known.get(value) or self._admitted.get(value)
        return found if found is not None else self._admit(value)

    def _admit(self, value: str) -> str:
        if (
            self._pattern is not None
            and len(self._admitted) < self._limit
            and self._pattern.fullmatch(value) is not None
        ):
            self._admitted[value] = value
            return value
        return OTHER


class PolicyLabels:
    """Organisations and grant ids the current policy names, recomputed when it changes."""

    __slots__ = ("_grants", "_organisations", "_policy")

    def __init__(self) -> None:
        self._policy: Policy | None = None
        self._organisations = BoundedLabel()
        self._grants = BoundedLabel()

    def organisation(self, policy: Policy, value: str | None) -> str:
        if policy is not self._policy:
            self._load(policy)
        return self._organisations(value)

    def grant(self, policy: Policy, value: str | None) -> str:
        if policy is not self._policy:
            self._load(policy)
        return self._grants(value)

    def _load(self, policy: Policy) -> None:
        self._policy = policy
        self._organisations = BoundedLabel(policy_organisations(policy))
        self._grants = BoundedLabel(grant.id for grant in policy.grants)


def policy_organisations(policy: Policy) -> frozenset[str]:
    """Every organisation the policy names: in grants, role rules, trust scopes, suspensions."""
    names = {grant.organisation for grant in policy.grants}
    for rule in policy.role_rules:
        if rule.attribute == "organisation":
            names.update(rule.values)
    for values in policy.trust.get("organisation", {}).values():
        names.update(values or ())
    names.update(s.value for s in policy.suspensions if s.dimension == "organisation")
    return frozenset(names)
