"""`Policy`: the validated policy content plus the indexes `decide()` needs to stay fast."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._model import (
    AccessClass,
    Approver,
    CountryGroup,
    Grant,
    Model,
    RoleRule,
    Settings,
    Suspension,
)

if TYPE_CHECKING:
    from gateway.identity.principal import Attribute, Principal

    from ._model import Decision

_EMPTY: frozenset[str] = frozenset()


class Policy:
    """An immutable, validated policy. Build it with `load_policy()`.

    Everything is precomputed here so that `decide()` does a handful of dictionary
    look-ups: trusted sources per attribute, roles per attribute value, grants by
    (model, organisation), suspensions per dimension value.
    """

    __slots__ = (
        "_grants_by_model_organisation",
        "_roles_by_value",
        "_suspensions",
        "_trust",
        "access_classes",
        "approvers",
        "country_groups",
        "grants",
        "models",
        "role_rules",
        "settings",
        "suspensions",
        "trust",
        "version",
    )

    def __init__(
        self,
        *,
        settings: Settings,
        trust: Mapping[str, Iterable[str]],
        role_rules: Iterable[RoleRule],
        country_groups: Iterable[CountryGroup],
        access_classes: Iterable[AccessClass],
        models: Iterable[Model],
        grants: Iterable[Grant],
        suspensions: Iterable[Suspension],
        approvers: Iterable[Approver] = (),
        pause: Callable[[], None] | None = None,
    ) -> None:
        """Build the indexes; `pause`, if given, is called between steps of the work."""
        pause = pause or _nothing
        self.settings = settings
        self.trust: Mapping[str, frozenset[str]] = MappingProxyType(
            {name: frozenset(sources) for name, sources in trust.items()}
        )
        self.role_rules: tuple[RoleRule, ...] = tuple(role_rules)
        self.country_groups: Mapping[str, CountryGroup] = MappingProxyType(
            {group.name: group for group in country_groups}
        )
        self.access_classes: Mapping[str, AccessClass] = MappingProxyType(
            {item.name: item for item in access_classes}
        )
        self.models: Mapping[str, Model] = MappingProxyType(
            {model.id: model for model in sorted(models, key=lambda m: m.id)}
        )
        self.grants: tuple[Grant, ...] = tuple(grants)
        self.suspensions: tuple[Suspension, ...] = tuple(suspensions)
        self.approvers: Mapping[str, Approver] = MappingProxyType(
            {approver.id: approver for approver in approvers}
        )

        self._trust: dict[str, frozenset[str]] = dict(self.trust)
        roles_by_value: dict[tuple[str, str], list[tuple[str, frozenset[str] | None]]] = {}
        for rule in self.role_rules:
            for value in rule.values:
                roles_by_value.setdefault((rule.attribute, value), []).append(
                    (rule.role, rule.sources)
                )
        self._roles_by_value = {key: tuple(entries) for key, entries in roles_by_value.items()}
        pause()
        by_model_organisation: dict[tuple[str, str], list[Grant]] = {}
        for grant in self.grants:
            for model_id in grant.models:
                by_model_organisation.setdefault((model_id, grant.organisation), []).append(grant)
        self._grants_by_model_organisation = {
            key: tuple(entries) for key, entries in by_model_organisation.items()
        }
        pause()
        suspensions_index: dict[str, dict[str, list[Suspension]]] = {
            dimension: {}
            for dimension in ("model", "access_class", "organisation", "subject", "country")
        }
        for suspension in self.suspensions:
            values = (
                self.country_groups[suspension.value].codes
                if suspension.dimension == "country" and suspension.value in self.country_groups
                else (suspension.value,)
            )
            for value in values:
                suspensions_index[suspension.dimension].setdefault(value, []).append(suspension)
        self._suspensions = {
            dimension: {value: tuple(entries) for value, entries in index.items()}
            for dimension, index in suspensions_index.items()
        }
        pause()
        self.version = hashlib.sha256(canonical_content(self, pause).encode()).hexdigest()

    def is_trusted(self, attribute: Attribute) -> bool:
        """Whether the policy trusts `attribute.source` to assert `attribute.name`."""
        return attribute.source in self._trust.get(attribute.name, _EMPTY)

    def decide(
        self, principal: Principal, action: str, model: str | None, now: datetime
    ) -> Decision:
        """Same as `decide(policy, principal, action, model, now)`."""
        from ._engine import decide

        return decide(self, principal, action, model, now)

    def visible_models(self, principal: Principal, now: datetime) -> list[str]:
        """Same as `visible_models(policy, principal, now)`."""
        from ._engine import visible_models

        return visible_models(self, principal, now)

    def __repr__(self) -> str:
        return f"<Policy {self.version[:12]} models={len(self.models)} grants={len(self.grants)}>"


def _nothing() -> None:
    pass


def canonical_content(policy: Policy, pause: Callable[[], None] | None = None) -> str:
    """The policy content as canonical JSON; its SHA-256 is the policy version.

    Built from the validated content rather than the files, so comments, layout and
    the split into files do not change the version; any change of meaning does.
    """

    pause = pause or _nothing

    def instant(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    def grant_content(grant: Grant) -> list[Any]:
        pause()
        return [
            grant.organisation,
            sorted(grant.subjects),
            sorted(grant.models),
            instant(grant.not_before),
            instant(grant.not_after),
            grant.purpose,
            grant.nationality_exception,
            sorted([s.key_id, s.signature.hex()] for s in grant.signatures),
        ]

    content: dict[str, Any] = {
        "settings": {
            "max_prerelease_lead_seconds": policy.settings.max_prerelease_lead.total_seconds(),
            "min_approvers": policy.settings.min_approvers,
        },
        "trust": {name: sorted(sources) for name, sources in policy.trust.items()},
        "roles": sorted(
            [
                rule.role,
                rule.attribute,
                sorted(rule.values),
                sorted(rule.sources) if rule.sources is not None else [],
            ]
            for rule in policy.role_rules
        ),
        "country_groups": {
            name: [group.effective_from.isoformat(), group.source, sorted(group.codes)]
            for name, group in policy.country_groups.items()
        },
        "access_classes": {
            name: {
                "allow": sorted(item.nationality.allow_codes)
                if item.nationality.allow_codes is not None
                else None,
                "deny": sorted(item.nationality.deny_codes),
                "combine": item.nationality.combine,
                "missing": item.nationality.missing,
            }
            for name, item in policy.access_classes.items()
        },
        "models": {
            model.id: [model.access_class, instant(model.release_at), model.description]
            for model in policy.models.values()
        },
        "grants": {grant.id: grant_content(grant) for grant in policy.grants},
        "approvers": {
            approver.id: [
                approver.organisation,
                approver.public_key.hex(),
                approver.authority,
                instant(approver.not_valid_before),
                instant(approver.not_valid_after),
            ]
            for approver in policy.approvers.values()
        },
        "suspensions": sorted(
            [item.dimension, item.value, item.reason, instant(item.since), instant(item.until)]
            for item in sorted(policy.suspensions, key=repr)
        ),
    }
    pause()
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
