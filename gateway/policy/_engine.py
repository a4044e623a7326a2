"""`decide()`: the pure decision function. No I/O; the clock is the `now` argument.

Before any action: two credentials that disagree on the subject, or on a trusted
organisation, are refused (unless the policy's settings allow it) -> 401
identity.conflict; the request path answers it as an authentication failure.

Order of evaluation for model actions (deny overrides, default deny):

1. unknown model                                   -> 404 model.unknown
2. before release_at, caller neither internal nor
   named by any grant for the model                -> 404 model.prerelease (hidden)
3. an active suspension                            -> 403 suspended.<dimension>
4. before release_at, no grant window open now     -> 403 grant.not_yet_valid / grant.expired
5. the access class's nationality rule fails and
   no active grant carries a nationality exception -> 403 nationality.missing / .denied
6. otherwise allowed: allow.internal, allow.grant or allow.released

An attribute counts only if its source is trusted for it and its value lies in that
source's scope; otherwise it is treated as missing and the rule trail says why
(``attribute.untrusted_source[...]`` or ``attribute.out_of_scope[...]``). An error while
evaluating a model action on a model the caller might not be allowed to see answers
the 404 of an unknown model, so no failure path reveals a hidden model.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ._model import AccessClass, Decision, Grant, Model

if TYPE_CHECKING:
    from gateway.identity.principal import Principal

    from ._policy import Policy

ACTIONS = ("model.invoke", "model.list", "audit.read", "admin")
_MODEL_ACTIONS = frozenset({"model.invoke", "model.list"})
_ROLE_FOR_ACTION = {"audit.read": "auditor", "admin": "operator"}
_NO_RULES: tuple[str, ...] = ()


class _Caller:
    """The trusted view of a principal, computed once per call."""

    __slots__ = ("conflicts", "nationalities", "organisations", "roles", "rules", "subject")

    def __init__(self, policy: Policy, principal: Principal) -> None:
        trust = policy._trust
        roles_by_value = policy._roles_by_value
        organisations: set[str] = set()
        by_source: dict[str, set[str]] = {}
        nationalities: set[str] = set()
        roles: set[str] = set()
        untrusted: list[str] = []
        for attribute in principal.attributes:
            name = attribute.name
            source = attribute.source
            scopes = trust.get(name)
            if scopes is None or source not in scopes:
                untrusted.append(f"attribute.untrusted_source[{name}:{source}]")
                continue
            value = attribute.value
            allowed = scopes[source]
            if allowed is not None and value not in allowed:
                # Never the value itself: it is whatever the credential said.
                untrusted.append(f"attribute.out_of_scope[{name}:{source}]")
                continue
            if name == "organisation":
                organisations.add(value)
                by_source.setdefault(source, set()).add(value)
            elif name == "nationality":
                nationalities.add(value)
            entries = roles_by_value.get((name, value))
            if entries is not None:
                for role, role_sources in entries:
                    if role_sources is None or source in role_sources:
                        roles.add(role)
        if len(untrusted) > 1:
            untrusted = sorted(set(untrusted))
        self.subject = principal.subject
        self.organisations = organisations
        self.nationalities = sorted(nationalities)
        self.roles = frozenset(roles)
        self.rules = untrusted
        self.conflicts = _conflicts(policy, principal, by_source)


def _conflicts(policy: Policy, principal: Principal, by_source: dict[str, set[str]]) -> list[str]:
    """Rule ids of the disagreements between the request's credentials that the policy
    refuses: different subjects, or different sets of trusted organisations."""
    found: list[str] = []
    settings = policy.settings
    credentials = principal.credentials
    if (
        len(credentials) > 1
        and settings.subject_conflict == "refuse"
        and len({credential.subject for credential in credentials}) > 1
    ):
        found.append("identity.conflict[subject]")
    if (
        len(by_source) > 1
        and settings.organisation_conflict == "refuse"
        and len({frozenset(values) for values in by_source.values()}) > 1
    ):
        found.append(f"identity.conflict[organisation:{','.join(sorted(by_source))}]")
    return found


def decide(
    policy: Policy, principal: Principal, action: str, model: str | None, now: datetime
) -> Decision:
    """Decide whether `principal` may perform `action` on `model` at instant `now`.

    `action` is one of "model.invoke", "model.list" (model = public model id),
    "audit.read" or "admin" (model None). `now` must be an aware datetime.
    Never raises: any error while evaluating is a denial with reason ``policy.error``.
    """
    try:
        if now.utcoffset() is None:
            raise ValueError("now must be an aware datetime")
        caller = _Caller(policy, principal)
        if caller.conflicts:
            return _conflict(policy, caller)
        if action in _MODEL_ACTIONS:
            return _decide_model(policy, caller, model, now)
        role = _ROLE_FOR_ACTION.get(action)
        if role is None:
            return _deny(
                policy, caller, "action.unknown", 403, "permission_denied", "action.unknown"
            )
        if role in caller.roles:
            return _allow(policy, caller, "allow.role", [*caller.rules, f"role:{role}"])
        return _deny(
            policy, caller, "role.required", 403, "permission_denied", f"role.required[{role}]"
        )
    except Exception as exc:  # noqa: BLE001 - fail closed: any evaluation error is a denial
        hidden = action in _MODEL_ACTIONS and _may_be_hidden(policy, model, now)
        return Decision(
            allowed=False,
            reason="policy.error",
            status=404 if hidden else 403,
            error_code="model_not_found" if hidden else "policy_error",
            rules=(f"policy.error[{type(exc).__name__}]",),
            grant_id=None,
            grant_not_after=None,
            obligations=(),
            policy_version=getattr(policy, "version", ""),
            roles=frozenset(),
        )


def _may_be_hidden(policy: Policy, model_id: str | None, now: datetime) -> bool:
    """Whether an error's answer for `model_id` must look like an unknown model's."""
    try:
        found = policy.models.get(model_id) if model_id is not None else None
        return found is None or (found.release_at is not None and now < found.release_at)
    except Exception:  # noqa: BLE001 - if even this fails, hide rather than reveal
        return True


def _conflict(policy: Policy, caller: _Caller) -> Decision:
    return Decision(
        allowed=False,
        reason="identity.conflict",
        status=401,
        error_code="unauthenticated",
        rules=(*caller.rules, *caller.conflicts),
        grant_id=None,
        grant_not_after=None,
        obligations=(),
        policy_version=policy.version,
        roles=frozenset(),
    )


def visible_models(policy: Policy, principal: Principal, now: datetime) -> list[str]:
    """The ids of the models `principal` may invoke at `now`, sorted. Empty on any error
    and for conflicting credentials."""
    try:
        if now.utcoffset() is None:
            raise ValueError("now must be an aware datetime")
        caller = _Caller(policy, principal)
        if caller.conflicts:
            return []
        return sorted(
            model_id
            for model_id in policy.models
            if _decide_model(policy, caller, model_id, now).allowed
        )
    except Exception:  # noqa: BLE001 - fail closed: list nothing rather than too much
        return []


def _decide_model(policy: Policy, caller: _Caller, model_id: str | None, now: datetime) -> Decision:
    rules = caller.rules.copy()
    model = policy.models.get(model_id) if model_id is not None else None
    if model is None:
        rules.append("model.unknown")
        return _deny(policy, caller, "model.unknown", 404, "model_not_found", rules=rules)
    rules.append(f"model:{model.id}")
    release_at = model.release_at
    prerelease = release_at is not None and now < release_at
    internal = "internal" in caller.roles
    earliest = release_at - policy.settings.max_prerelease_lead if release_at is not None else None
    matching = _matching_grants(policy, caller, model)
    active = [
        grant
        for grant in matching
        if grant.not_before <= now < grant.not_after and (earliest is None or now >= earliest)
    ]

    if prerelease:
        if internal:
            rules.append("role:internal")
        elif not matching:
            rules.append(f"model:{model.id}/prerelease")
            return _deny(policy, caller, "model.prerelease", 404, "model_not_found", rules=rules)

    suspended = _suspension(policy, caller, model, now)
    if suspended is not None:
        rules.append(suspended)
        dimension = suspended[len("suspension:") : suspended.index("[")]
        return _deny(policy, caller, f"suspended.{dimension}", 403, "suspended", rules=rules)

    if prerelease and not internal and not active:
        return _deny_window(policy, caller, matching, now, earliest, rules)

    passed, missing = _nationality(policy.access_classes[model.access_class], caller, rules)
    if passed:
        if prerelease and not internal:
            grant = _pick(active)
            rules.append(f"grant:{grant.id}")
            return _allow(policy, caller, "allow.grant", rules, grant)
        return _allow(policy, caller, "allow.internal" if prerelease else "allow.released", rules)

    excepted = [grant for grant in active if grant.nationality_exception is not None]
    if excepted:
        grant = _pick(excepted)
        rules.append(f"grant:{grant.id}")
        rules.append(f"grant:{grant.id}/nationality_exception")
        return _allow(
            policy, caller, "allow.grant", rules, grant, (f"nationality_exception:{grant.id}",)
        )
    reason = "nationality.missing" if missing else "nationality.denied"
    return _deny(policy, caller, reason, 403, "nationality_restricted", rules=rules)


def _matching_grants(policy: Policy, caller: _Caller, model: Model) -> list[Grant]:
    """Grants for `model` naming one of the caller's trusted organisations (and subject)."""
    found: list[Grant] = []
    index = policy._grants_by_model_organisation
    for organisation in caller.organisations:
        grants = index.get((model.id, organisation))
        if grants is not None:
            found.extend(g for g in grants if not g.subjects or caller.subject in g.subjects)
    return found


def _pick(grants: list[Grant]) -> Grant:
    """The grant a decision cites: the one open longest, then by id, so the choice is stable."""
    return max(grants, key=lambda grant: (grant.not_after, grant.id))


def _deny_window(
    policy: Policy,
    caller: _Caller,
    matching: list[Grant],
    now: datetime,
    earliest: datetime | None,
    rules: list[str],
) -> Decision:
    def opens(grant: Grant) -> datetime:
        return max(grant.not_before, earliest) if earliest is not None else grant.not_before

    upcoming = [grant for grant in matching if now < opens(grant)]
    if upcoming:
        grant = min(upcoming, key=lambda g: (opens(g), g.id))
        reason, code = "grant.not_yet_valid", "grant_not_yet_valid"
    else:
        grant = _pick(matching)
        reason, code = "grant.expired", "grant_expired"
    rules.append(f"grant:{grant.id}/{reason.removeprefix('grant.')}")
    return _deny(policy, caller, reason, 403, code, rules=rules, grant=grant)


def _suspension(policy: Policy, caller: _Caller, model: Model, now: datetime) -> str | None:
    """The rule id of the first active suspension that applies, or None."""
    index = policy._suspensions
    candidates: list[tuple[str, str]] = [
        ("model", model.id),
        ("access_class", model.access_class),
    ]
    candidates.extend(("organisation", value) for value in sorted(caller.organisations))
    candidates.append(("subject", caller.subject))
    candidates.extend(("country", value) for value in caller.nationalities)
    for dimension, value in candidates:
        found = index[dimension].get(value)
        if found is None:
            continue
        for suspension in found:
            if suspension.since <= now and (suspension.until is None or now < suspension.until):
                return f"suspension:{dimension}[{suspension.value}]"
    return None


def _nationality(access_class: AccessClass, caller: _Caller, rules: list[str]) -> tuple[bool, bool]:
    """Evaluate the class's nationality rule; returns (passed, failed because missing)."""
    rule = access_class.nationality
    prefix = f"class:{access_class.name}/nationality"
    nationalities = caller.nationalities
    if not nationalities:
        if rule.missing == "allow":
            rules.append(f"{prefix}.missing[allow]")
            return True, False
        rules.append(f"{prefix}.missing")
        return False, True
    allow_codes = rule.allow_codes
    deny_codes = rule.deny_codes
    passes = 0
    for code in nationalities:
        if code in deny_codes:
            rules.append(f"{prefix}.deny[{code}]")
        elif allow_codes is not None and code not in allow_codes:
            rules.append(f"{prefix}.not_allowed[{code}]")
        else:
            rules.append(f"{prefix}.allow[{code}]")
            passes += 1
    if len(nationalities) > 1:
        rules.append(f"{prefix}.combine[{rule.combine}]")
    passed = passes == len(nationalities) if rule.combine == "all" else passes > 0
    return passed, False


def _allow(
    policy: Policy,
    caller: _Caller,
    reason: str,
    rules: list[str],
    grant: Grant | None = None,
    obligations: tuple[str, ...] = (),
) -> Decision:
    return Decision(
        allowed=True,
        reason=reason,
        status=200,
        error_code=None,
        rules=tuple(rules),
        grant_id=grant.id if grant is not None else None,
        grant_not_after=grant.not_after if grant is not None else None,
        obligations=obligations,
        policy_version=policy.version,
        roles=caller.roles,
    )


def _deny(
    policy: Policy,
    caller: _Caller,
    reason: str,
    status: int,
    error_code: str,
    rule: str | None = None,
    *,
    rules: list[str] | None = None,
    grant: Grant | None = None,
) -> Decision:
    trail = tuple(rules) if rules is not None else (*caller.rules, rule) if rule else _NO_RULES
    return Decision(
        allowed=False,
        reason=reason,
        status=status,
        error_code=error_code,
        rules=trail,
        grant_id=grant.id if grant is not None else None,
        grant_not_after=grant.not_after if grant is not None else None,
        obligations=(),
        policy_version=policy.version,
        roles=caller.roles,
    )
