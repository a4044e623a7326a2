"""`diff_policies`: which outcomes change between two policies, and from when.

Both policies are asked the same questions: representative callers (every
organisation either policy names, plus one with no organisation; every country
either policy names, one it does not name, and no nationality) for every model,
at every instant where either policy can change its mind (release times, grant
windows, suspensions). Decisions only change at those instants, so comparing
there finds every change and the earliest instant it takes effect.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from gateway.identity.principal import Attribute, Principal

from ._countries import ISO_3166_ALPHA_2
from ._engine import decide
from ._policy import Policy

_START = datetime(1970, 1, 1, tzinfo=UTC)
_SUBJECT = "any-subject"


@dataclass(frozen=True, slots=True)
class Change:
    """Outcomes for one organisation x model that differ from `since` on."""

    since: datetime | None  # None: for as far back as either policy goes
    model: str
    access_class: str
    organisation: str | None
    subject: str | None
    nationalities: tuple[str, ...]  # each entry a comma-joined set, "" for none
    old: str
    new: str


def _organisations(policy: Policy) -> set[str]:
    names = {grant.organisation for grant in policy.grants}
    names |= {s.value for s in policy.suspensions if s.dimension == "organisation"}
    for rule in policy.role_rules:
        if rule.attribute == "organisation":
            names |= rule.values
    for values in policy.trust.get("organisation", {}).values():
        names |= values or set()
    return names


def _countries(policy: Policy) -> set[str]:
    codes: set[str] = set()
    for item in policy.access_classes.values():
        codes |= item.nationality.deny_codes
        codes |= item.nationality.allow_codes or set()
    for suspension in policy.suspensions:
        if suspension.dimension == "country":
            group = policy.country_groups.get(suspension.value)
            codes |= group.codes if group is not None else {suspension.value}
    for values in policy.trust.get("nationality", {}).values():
        codes |= values or set()
    return codes


def _instants(policy: Policy) -> set[datetime]:
    lead = policy.settings.max_prerelease_lead
    instants: set[datetime] = set()
    for model in policy.models.values():
        if model.release_at is not None:
            instants |= {model.release_at, model.release_at - lead}
    for grant in policy.grants:
        instants |= {grant.not_before, grant.not_after}
    for suspension in policy.suspensions:
        instants.add(suspension.since)
        if suspension.until is not None:
            instants.add(suspension.until)
    return instants


def _outcome(policy: Policy, principal: Principal, model: str, now: datetime) -> str:
    decision = decide(policy, principal, "model.invoke", model, now)
    return f"{'allow' if decision.allowed else 'deny'} {decision.reason}"


def diff_policies(old: Policy, new: Policy) -> list[Change]:
    """Every change of outcome from `old` to `new`, earliest first."""
    organisations: list[str | None] = [None, *sorted(_organisations(old) | _organisations(new))]
    named = _countries(old) | _countries(new)
    unnamed = next(code for code in sorted(ISO_3166_ALPHA_2) if code not in named)
    nationality_sets = [(), *((code,) for code in sorted(named)), (unnamed,)]
    instants = [_START, *sorted(_instants(old) | _instants(new))]
    models = sorted(set(old.models) | set(new.models))

    def sources(name: str) -> set[str]:
        return set(old.trust.get(name, ())) | set(new.trust.get(name, ()))

    organisation_sources = sources("organisation")
    nationality_sources = sources("nationality")
    subjects: dict[str | None, list[str]] = defaultdict(lambda: [_SUBJECT])
    for policy in (old, new):
        for grant in policy.grants:
            subjects[grant.organisation].extend(sorted(grant.subjects))
        for suspension in policy.suspensions:
            if suspension.dimension == "subject":
                subjects[None].append(suspension.value)

    grouped: dict[Change, list[str]] = defaultdict(list)
    for organisation in organisations:
        org_attributes = (
            {Attribute("organisation", organisation, s) for s in organisation_sources}
            if organisation is not None
            else set()
        )
        for subject in dict.fromkeys(subjects[organisation] + subjects[None]):
            for nationalities in nationality_sets:
                attributes = org_attributes | {
                    Attribute("nationality", code, s)
                    for code in nationalities
                    for s in nationality_sources
                }
                principal = Principal(subject, "diff", frozenset(attributes))
                for model in models:
                    previous: tuple[str, str] | None = None
                    for instant in instants:
                        pair = (
                            _outcome(old, principal, model, instant),
                            _outcome(new, principal, model, instant),
                        )
                        if pair[0] != pair[1] and pair != previous:
                            access_class = (new.models.get(model) or old.models[model]).access_class
                            key = Change(
                                since=instant if instant != _START else None,
                                model=model,
                                access_class=access_class,
                                organisation=organisation,
                                subject=subject if subject != _SUBJECT else None,
                                nationalities=(),
                                old=pair[0],
                                new=pair[1],
                            )
                            grouped[key].append(",".join(nationalities))
                        previous = pair
    changes = [replace(key, nationalities=tuple(values)) for key, values in grouped.items()]
    changes.sort(
        key=lambda c: (c.since or _START - timedelta(days=1), c.model, c.organisation or "")
    )
    return changes
