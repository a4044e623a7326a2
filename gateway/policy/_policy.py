"""`Policy`: the validated policy content plus the indexes `decide()` needs to stay fast."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._model import (
    AccessClass,
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


class Policy:
    """An immutable, validated policy. Build it with `load_policy()`.

    Everything is precomputed here so that `decide()` does a handful of dictionary
    look-ups: trusted sources per attribute (each with the values it may assert, None
    for any value), roles per attribute value, grants by (model, organisation),
    suspensions per dimension value. `warnings` are the loader's notes on a policy that
    is valid but risky (a source trusted for organisation or role with any value).
    """

    __slots__ = (
        "_grants_by_model_organisation",
        "_roles_by_value",
        "_static_grant_index",
        "_static_grant_keys",
        "_static_grants",
        "_static_suspensions",
        "_suspensions",
        "_trust",
        "access_classes",
        "country_groups",
        "grants",
        "models",
        "role_rules",
        "settings",
        "static_version",
        "suspensions",
        "trust",
        "version",
        "warnings",
    )

    def __init__(
        self,
        *,
        settings: Settings,
        trust: Mapping[str, Mapping[str, Iterable[str] | None]],
        role_rules: Iterable[RoleRule],
        country_groups: Iterable[CountryGroup],
        access_classes: Iterable[AccessClass],
        models: Iterable[Model],
        grants: Iterable[Grant],
        suspensions: Iterable[Suspension],
        pause: Callable[[], None] | None = None,
        warnings: Iterable[str] = (),
    ) -> None:
        """Build the indexes; `pause`, if given, is called between steps of the work.

        `trust` maps an attribute name to its trusted sources, each with the values it
        may assert (None: any value).
        """
        pause = pause or _nothing
        self.settings = settings
        self.warnings: tuple[str, ...] = tuple(warnings)
        self.trust: Mapping[str, Mapping[str, frozenset[str] | None]] = MappingProxyType(
            {
                name: MappingProxyType(
                    {
                        source: frozenset(values) if values is not None else None
                        for source, values in scopes.items()
                    }
                )
                for name, scopes in trust.items()
            }
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

        self._trust: dict[str, dict[str, frozenset[str] | None]] = {
            name: dict(scopes) for name, scopes in self.trust.items()
        }
        roles_by_value: dict[tuple[str, str], list[tuple[str, frozenset[str] | None]]] = {}
        for rule in self.role_rules:
            for value in rule.values:
                roles_by_value.setdefault((rule.attribute, value), []).append(
                    (rule.role, rule.sources)
                )
        self._roles_by_value = {key: tuple(entries) for key, entries in roles_by_value.items()}
        pause()
        self._grants_by_model_organisation = grant_index(self.grants)
        pause()
        self._suspensions = _suspension_index(self.suspensions, self.country_groups)
        pause()
        self.version = hashlib.sha256(canonical_content(self, pause).encode()).hexdigest()
        self.static_version = self.version
        self._static_grants = self.grants
        self._static_suspensions = self.suspensions
        self._static_grant_index = self._grants_by_model_organisation
        keys: dict[str, list[tuple[str, str]]] = {}
        for grant in self.grants:
            keys.setdefault(grant.id, []).extend(
                (model, grant.organisation) for model in grant.models
            )
        self._static_grant_keys = {grant_id: tuple(found) for grant_id, found in keys.items()}

    def with_dynamic(
        self,
        suspensions: Iterable[Suspension],
        grants: Iterable[Grant],
        grant_index: Mapping[tuple[str, str], tuple[Grant, ...]],
        revoked: frozenset[str],
        dynamic_version: str,
    ) -> Policy:
        """This policy with objects added at run time: more suspensions, more grants (and
        their index by model and organisation, which the caller keeps up to date), and
        file grants revoked early. The file policy's own indexes are copied, not rebuilt,
        so a change costs in proportion to what was added at run time. The version
        becomes SHA-256 of this version and `dynamic_version`."""
        combined = copy.copy(self)
        index = dict(self._static_grant_index)
        for grant_id in revoked:
            for key in self._static_grant_keys.get(grant_id, ()):
                index[key] = tuple(grant for grant in index[key] if grant.id != grant_id)
        for key, entries in grant_index.items():
            index[key] = index.get(key, ()) + entries
        combined._grants_by_model_organisation = index
        combined.grants = (
            *(grant for grant in self._static_grants if grant.id not in revoked),
            *grants,
        )
        combined.suspensions = (*self._static_suspensions, *suspensions)
        combined._suspensions = _suspension_index(combined.suspensions, self.country_groups)
        combined.version = (
            self.static_version
            if not dynamic_version
            else hashlib.sha256(f"{self.static_version}:{dynamic_version}".encode()).hexdigest()
        )
        return combined

    def is_trusted(self, attribute: Attribute) -> bool:
        """Whether the policy trusts `attribute.source` to assert `attribute.name` with
        `attribute.value` (the source is trusted for it and the value is in its scope)."""
        scopes = self._trust.get(attribute.name)
        if scopes is None or attribute.source not in scopes:
            return False
        values = scopes[attribute.source]
        return values is None or attribute.value in values

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


def grant_index(grants: Iterable[Grant]) -> dict[tuple[str, str], tuple[Grant, ...]]:
    """Grants by (model id, grantee organisation)."""
    index: dict[tuple[str, str], list[Grant]] = {}
    for grant in grants:
        for model_id in grant.models:
            index.setdefault((model_id, grant.organisation), []).append(grant)
    return {key: tuple(entries) for key, entries in index.items()}


def _suspension_index(
    suspensions: Iterable[Suspension], groups: Mapping[str, CountryGroup]
) -> dict[str, dict[str, tuple[Suspension, ...]]]:
    """Suspensions by dimension and value (a country group suspends each of its codes)."""
    index: dict[str, dict[str, list[Suspension]]] = {
        dimension: {}
        for dimension in ("model", "access_class", "organisation", "subject", "country")
    }
    for suspension in suspensions:
        values = (
            groups[suspension.value].codes
            if suspension.dimension == "country" and suspension.value in groups
            else (suspension.value,)
        )
        for value in values:
            index[suspension.dimension].setdefault(value, []).append(suspension)
    return {
        dimension: {value: tuple(entries) for value, entries in by_value.items()}
        for dimension, by_value in index.items()
    }


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
            sorted(grant.approvers),
            grant.nationality_exception,
        ]

    settings: dict[str, Any] = {
        "max_prerelease_lead_seconds": policy.settings.max_prerelease_lead.total_seconds(),
        "min_approvers": policy.settings.min_approvers,
    }
    # Written only when not the default, so a policy that leaves them alone keeps the
    # version it had before they existed.
    for name in ("subject_conflict", "organisation_conflict"):
        if getattr(policy.settings, name) != "refuse":
            settings[name] = getattr(policy.settings, name)
    content: dict[str, Any] = {
        "settings": settings,
        # A source trusted for any value is its bare name (as before scopes existed);
        # a scoped source is [name, sorted values].
        "trust": {
            name: [
                source if values is None else [source, sorted(values)]
                for source, values in sorted(scopes.items())
            ]
            for name, scopes in policy.trust.items()
        },
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
        "suspensions": sorted(
            [item.dimension, item.value, item.reason, instant(item.since), instant(item.until)]
            for item in sorted(policy.suspensions, key=repr)
        ),
    }
    pause()
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
