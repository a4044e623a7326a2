"""Loading a policy directory: parse, validate against the schema, cross-check, build.

Layout of a policy directory::

    *.yaml / *.yml          policy content; top-level keys: settings, trust, roles,
                            access_classes, models, grants, suspensions, approvers,
                            approver_authorities
    country-groups/*.yaml   one country group per file
    tests/                  policy test cases (not policy content)

A list section (models, grants, suspensions, approvers, approver_authorities) may be
split over several files; a mapping section (settings, trust, roles, access_classes)
may too, as long as no key is defined twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._approvals import VerifiedSignatures, verify_grant_approvals
from ._approvers import (
    GrantReport,
    approval_error,
    load_approvers,
    load_authorities,
    read_signatures,
    signature_lines,
)
from ._countries import ISO_3166_ALPHA_2
from ._errors import PolicyLoadError
from ._model import (
    AccessClass,
    Approver,
    ConflictRule,
    CountryGroup,
    Grant,
    Model,
    NationalityRule,
    Quota,
    RateLimits,
    RoleRule,
    Settings,
    Suspension,
)
from ._policy import Policy
from ._trust import ATTRIBUTE_NAMES, TrustScopes, may_assert, read_trust
from ._yaml import Node, parse_yaml

SUSPENSION_DIMENSIONS = ("model", "organisation", "subject", "country", "access_class")
_LIST_SECTIONS = ("models", "grants", "suspensions", "approvers", "approver_authorities")
_MAP_SECTIONS = ("settings", "trust", "roles", "access_classes")
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")


def load_policy(directory: str | Path) -> Policy:
    """Load and validate the policy in `directory`; raise PolicyLoadError if it is invalid."""
    return _load(Path(directory), None)


def load_policy_pausing(
    directory: str | Path,
    pause: Callable[[], None],
    verified: VerifiedSignatures | None = None,
) -> Policy:
    """`load_policy`, calling `pause()` now and then (used by reloads in a worker thread);
    `verified` spares verifying again the grant signatures an earlier load verified."""
    policy = _builder(Path(directory), pause, approvals_required=True, verified=verified).build()
    if verified is not None:
        verified.keep_seen()
    return policy


def inspect_grants(directory: str | Path) -> tuple[Policy, list[GrantReport]]:
    """Load the policy without requiring grant approvals, and report on every grant.

    For `gateway grant sign` and `gateway grant verify` only: the Policy returned may
    hold grants that lack approvals and must never serve a decision.
    """
    builder = _builder(Path(directory), None, approvals_required=False)
    return builder.build(), builder.grant_reports


@dataclass
class _Sections:
    lists: dict[str, list[Node]] = field(default_factory=lambda: {n: [] for n in _LIST_SECTIONS})
    maps: dict[str, list[Node]] = field(default_factory=lambda: {n: [] for n in _MAP_SECTIONS})


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.iterdir()
        if path.is_file() and path.suffix in (".yaml", ".yml") and not path.name.startswith(".")
    )


def policy_files(directory: Path) -> list[Path]:
    """The files a policy in `directory` is read from: its *.yaml and *.yml files and
    those of its country-groups folder; empty when it is no policy folder."""
    groups = directory / "country-groups"
    return _yaml_files(directory) + (_yaml_files(groups) if groups.is_dir() else [])


def _read(path: Path, pause: Callable[[], None] | None) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(str(path), "", None, f"cannot read file: {exc}") from exc
    return parse_yaml(text, str(path), pause)


def _load(directory: Path, pause: Callable[[], None] | None) -> Policy:
    return _builder(directory, pause, approvals_required=True).build()


def _builder(
    directory: Path,
    pause: Callable[[], None] | None,
    *,
    approvals_required: bool,
    verified: VerifiedSignatures | None = None,
) -> _Builder:
    if not directory.is_dir():
        raise PolicyLoadError(str(directory), "", None, "policy directory not found")
    sections = _Sections()
    for path in _yaml_files(directory):
        top = Node(_read(path, pause), str(path), "")
        top.reject_unknown(*_MAP_SECTIONS, *_LIST_SECTIONS)
        for name in _LIST_SECTIONS:
            sections.lists[name].extend(top.nodes(name))
        for name in _MAP_SECTIONS:
            if top.has(name):
                sections.maps[name].append(top.node(name))
    groups_dir = directory / "country-groups"
    groups = (
        [Node(_read(path, pause), str(path), "") for path in _yaml_files(groups_dir)]
        if groups_dir.is_dir()
        else []
    )
    return _Builder(sections, groups, pause, approvals_required, verified)


def _merged(nodes: list[Node]) -> list[tuple[Node, str]]:
    """(node, key) pairs of several mapping sections, refusing a key defined twice."""
    seen: dict[str, Node] = {}
    pairs = []
    for node in nodes:
        for key in node.data:
            if key in seen:
                other = seen[key]
                node.fail(key, f"already defined in {other.file}:{other.line(key)}")
            seen[key] = node
            pairs.append((node, key))
    return pairs


def _quota(node: Node) -> Quota:
    node.reject_unknown("requests", "tokens")
    quota = Quota(
        requests=node.integer("requests", None, minimum=1),
        tokens=node.integer("tokens", None, minimum=1),
    )
    if quota.requests is None and quota.tokens is None:
        node.fail(None, "a quota names requests, tokens or both")
    return quota


def _rate_limits(node: Node) -> RateLimits:
    node.reject_unknown("principal_per_minute", "organisation_per_minute", "organisations")
    overrides: list[tuple[str, int]] = []
    if node.has("organisations"):
        body = node.node("organisations")
        for name in body.data:
            overrides.append((str(name), body.integer(str(name), minimum=1)))
    return RateLimits(
        principal_per_minute=node.integer("principal_per_minute", None, minimum=1),
        organisation_per_minute=node.integer("organisation_per_minute", None, minimum=1),
        organisations=tuple(sorted(overrides)),
    )


def _country_group(node: Node) -> CountryGroup:
    node.reject_unknown("name", "effective_from", "source", "codes", "description")
    codes = node.strings("codes")
    for index, code in enumerate(codes):
        if code not in ISO_3166_ALPHA_2:
            node.fail_item("codes", index, f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return CountryGroup(
        name=node.string("name"),
        effective_from=node.day("effective_from"),
        source=node.string("source"),
        codes=frozenset(codes),
        description=node.string("description", ""),
    )


class _Builder:
    def __init__(
        self,
        sections: _Sections,
        groups: list[Node],
        pause: Callable[[], None] | None,
        approvals_required: bool = True,
        verified: VerifiedSignatures | None = None,
    ) -> None:
        self.sections = sections
        self.groups: dict[str, CountryGroup] = {}
        for node in groups:
            group = _country_group(node)
            if group.name in self.groups:
                node.fail("name", f"country group {group.name!r} is defined twice")
            self.groups[group.name] = group
        self.pause = pause
        self.trust: TrustScopes = {}
        self.warnings: list[str] = []
        self.approvals_required = approvals_required
        self.verified = verified
        self.grant_reports: list[GrantReport] = []

    def build(self) -> Policy:
        settings = self._settings()
        self.trust, warnings = read_trust(
            _merged(self.sections.maps["trust"]), lambda node, key: self._countries(node, key)[1]
        )
        self.warnings.extend(warnings)
        roles = self._roles()
        classes = self._access_classes()
        models = self._models(classes)
        approvers = load_approvers(
            self.sections.lists["approvers"],
            load_authorities(self.sections.lists["approver_authorities"]),
        )
        grants = self._grants(models, settings, approvers)
        suspensions = self._suspensions(models, classes)
        self._warn_unreachable_grantees(grants)
        return Policy(
            settings=settings,
            trust=self.trust,
            role_rules=roles,
            country_groups=self.groups.values(),
            access_classes=classes.values(),
            models=models.values(),
            grants=grants,
            suspensions=suspensions,
            approvers=approvers.values(),
            pause=self.pause,
            warnings=self.warnings,
        )

    def _settings(self) -> Settings:
        default = Settings()
        lead, approvers = default.max_prerelease_lead, default.min_approvers
        rate_limits = default.rate_limits
        conflicts: dict[str, ConflictRule] = {
            "subject": default.subject_conflict,
            "organisation": default.organisation_conflict,
        }
        for node, key in _merged(self.sections.maps["settings"]):
            if key == "max_prerelease_lead":
                lead = node.duration(key, lead)
            elif key == "min_approvers":
                approvers = node.integer(key, minimum=1)
            elif key == "rate_limits":
                rate_limits = _rate_limits(node.node(key, required=True))
            elif key == "credential_conflicts":
                body = node.node(key, required=True)
                body.reject_unknown(*conflicts)
                for name in conflicts:
                    conflicts[name] = body.choice(name, ("refuse", "allow"), "refuse")
            else:
                node.fail(
                    key,
                    "unknown key (expected one of: max_prerelease_lead, min_approvers, "
                    "credential_conflicts, rate_limits)",
                )
        return Settings(
            max_prerelease_lead=lead,
            min_approvers=approvers,
            subject_conflict=conflicts["subject"],
            organisation_conflict=conflicts["organisation"],
            rate_limits=rate_limits,
        )

    def _warn_unreachable_grantees(self, grants: list[Grant]) -> None:
        for grant in grants:
            if not may_assert(self.trust, "organisation", grant.organisation, None):
                self.warnings.append(
                    f"grant {grant.id}: no source is trusted to assert organisation "
                    f"{grant.organisation!r}, so the grant can never apply"
                )

    def _roles(self) -> list[RoleRule]:
        rules = []
        for node, role in _merged(self.sections.maps["roles"]):
            if not _IDENTIFIER.fullmatch(role):
                node.fail(role, "role names are letters, digits, '.', '_', '-'")
            for item in node.nodes(role):
                item.reject_unknown("attribute", "value", "values", "sources")
                attribute = item.choice("attribute", ATTRIBUTE_NAMES)
                if item.has("value") == item.has("values"):
                    item.fail(None, "give exactly one of value or values")
                values = item.strings("values") if item.has("values") else [item.string("value")]
                sources = item.strings("sources", None)
                trusted = self.trust.get(attribute, {})
                for index, source in enumerate(sources or ()):
                    if source not in trusted:
                        item.fail_item(
                            "sources", index, f"{source} is not trusted for {attribute} in trust"
                        )
                allowed = frozenset(sources) if sources is not None else None
                for value in values:
                    if not may_assert(self.trust, attribute, value, allowed):
                        item.fail(
                            "values" if item.has("values") else "value",
                            f"no source of this rule may assert {attribute} {value!r} "
                            f"(outside every scope in trust)",
                        )
                rules.append(
                    RoleRule(
                        role=role,
                        attribute=attribute,
                        values=frozenset(values),
                        sources=frozenset(sources) if sources is not None else None,
                    )
                )
        return rules

    def _countries(self, node: Node, key: str) -> tuple[tuple[str, ...], frozenset[str]]:
        entries = node.strings(key)
        codes: set[str] = set()
        for index, entry in enumerate(entries):
            if entry in self.groups:
                codes |= self.groups[entry].codes
            elif entry in ISO_3166_ALPHA_2:
                codes.add(entry)
            elif len(entry) == 2 and entry.isalpha():
                node.fail_item(key, index, f"{entry!r} is not an ISO 3166-1 alpha-2 country code")
            else:
                node.fail_item(key, index, f"unknown country group {entry!r}")
        return tuple(entries), frozenset(codes)

    def _access_classes(self) -> dict[str, AccessClass]:
        classes = {}
        for node, name in _merged(self.sections.maps["access_classes"]):
            if not _IDENTIFIER.fullmatch(name):
                node.fail(name, "access class names are letters, digits, '.', '_', '-'")
            body = node.node(name, required=True)
            body.reject_unknown("description", "nationality")
            rule = body.node("nationality", required=True)
            rule.reject_unknown("allow", "deny", "combine", "missing")
            allow: tuple[str, ...] | None = None
            allow_codes: frozenset[str] | None = None
            if rule.has("allow"):
                allow, allow_codes = self._countries(rule, "allow")
            deny: tuple[str, ...] = ()
            deny_codes: frozenset[str] = frozenset()
            if rule.has("deny"):
                deny, deny_codes = self._countries(rule, "deny")
            classes[name] = AccessClass(
                name=name,
                description=body.string("description", ""),
                nationality=NationalityRule(
                    allow=allow,
                    deny=deny,
                    combine=rule.choice("combine", ("all", "any"), "all"),
                    missing=rule.choice("missing", ("deny", "allow"), "deny"),
                    allow_codes=allow_codes,
                    deny_codes=deny_codes,
                ),
            )
        return classes

    def _models(self, classes: dict[str, AccessClass]) -> dict[str, Model]:
        models: dict[str, Model] = {}
        for node in self.sections.lists["models"]:
            if self.pause is not None:
                self.pause()
            node.reject_unknown("id", "access_class", "release_at", "description", "upstream")
            model_id = node.string("id")
            if not _IDENTIFIER.fullmatch(model_id):
                node.fail("id", "model ids are letters, digits, '.', '_', ':', '/', '-'")
            if model_id in models:
                node.fail("id", f"duplicate model id {model_id!r}")
            access_class = node.string("access_class")
            if access_class not in classes:
                node.fail("access_class", f"unknown access class {access_class!r}")
            models[model_id] = Model(
                id=model_id,
                access_class=access_class,
                release_at=node.instant("release_at", None),
                description=node.string("description", ""),
                upstream=node.string("upstream", None),
            )
        return models

    def _grants(
        self, models: dict[str, Model], settings: Settings, approvers: dict[str, Approver]
    ) -> list[Grant]:
        grants: list[Grant] = []
        seen: set[str] = set()
        for node in self.sections.lists["grants"]:
            if self.pause is not None:
                self.pause()
            if "approvers" in node.data:
                node.fail(
                    "approvers",
                    "grants are approved by signatures, not names: list the approver keys in "
                    "the top-level approvers section and sign with `gateway grant sign`",
                )
            node.reject_unknown(
                "id",
                "grantee",
                "models",
                "not_before",
                "not_after",
                "purpose",
                "nationality_exception",
                "quota",
                "signatures",
            )
            grant_id = node.string("id")
            if not _IDENTIFIER.fullmatch(grant_id):
                node.fail("id", "grant ids are letters, digits, '.', '_', ':', '/', '-'")
            if grant_id in seen:
                node.fail("id", f"duplicate grant id {grant_id!r}")
            seen.add(grant_id)
            grantee = node.node("grantee", required=True)
            grantee.reject_unknown("organisation", "subjects")
            model_ids = node.strings("models")
            if not model_ids:
                node.fail("models", "must name at least one model")
            not_before = node.instant("not_before")
            not_after = node.instant("not_after")
            if not_after <= not_before:
                node.fail("not_after", "must be later than not_before")
            for index, model_id in enumerate(model_ids):
                model = models.get(model_id)
                if model is None:
                    node.fail_item("models", index, f"unknown model {model_id!r}")
                if model.release_at is not None:
                    earliest = model.release_at - settings.max_prerelease_lead
                    if not_before < earliest:
                        node.fail(
                            "not_before",
                            f"opens before {earliest.isoformat()}, which is {model_id}'s "
                            f"release_at minus max_prerelease_lead",
                        )
            exception = None
            if node.has("nationality_exception"):
                body = node.node("nationality_exception")
                body.reject_unknown("reason")
                exception = body.string("reason")
            grant = Grant(
                id=grant_id,
                organisation=grantee.string("organisation"),
                subjects=frozenset(grantee.strings("subjects", [])),
                models=tuple(model_ids),
                not_before=not_before,
                not_after=not_after,
                purpose=node.string("purpose"),
                nationality_exception=exception,
                quota=_quota(node.node("quota")) if node.has("quota") else None,
                signatures=read_signatures(node),
            )
            result = verify_grant_approvals(grant, approvers, settings, self.verified)
            self.grant_reports.append(
                GrantReport(grant, node.file, node.line(), signature_lines(node), result)
            )
            if result.approved:
                grant = replace(grant, digest=result.digest, approvals=result.approved_by)
            elif self.approvals_required:
                raise approval_error(node, result)
            grants.append(grant)
        return grants

    def _suspensions(
        self, models: dict[str, Model], classes: dict[str, AccessClass]
    ) -> list[Suspension]:
        suspensions = []
        for node in self.sections.lists["suspensions"]:
            node.reject_unknown(*SUSPENSION_DIMENSIONS, "reason", "since", "until")
            named = [name for name in SUSPENSION_DIMENSIONS if node.has(name)]
            if len(named) != 1:
                node.fail(None, f"name exactly one of: {', '.join(SUSPENSION_DIMENSIONS)}")
            dimension = named[0]
            value = node.string(dimension)
            if dimension == "model" and value not in models:
                node.fail(dimension, f"unknown model {value!r}")
            if dimension == "access_class" and value not in classes:
                node.fail(dimension, f"unknown access class {value!r}")
            if (
                dimension == "country"
                and value not in ISO_3166_ALPHA_2
                and value not in self.groups
            ):
                node.fail(dimension, f"{value!r} is neither a country code nor a country group")
            since = node.instant("since")
            until = node.instant("until", None)
            if until is not None and until <= since:
                node.fail("until", "must be later than since")
            suspensions.append(
                Suspension(
                    dimension=dimension,  # type: ignore[arg-type]
                    value=value,
                    reason=node.string("reason"),
                    since=since,
                    until=until,
                )
            )
        return suspensions
