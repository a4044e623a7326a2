"""decide(): every reason code and every boundary, on the example policy and variants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from gateway.identity.principal import Attribute, Principal
from gateway.policy import Decision, Policy, decide, visible_models

from .conftest import at, person

RELEASE = at("2027-01-15T16:00:00Z")
OPENS = at("2026-12-16T16:00:00Z")
CLOSES = at("2027-01-08T00:00:00Z")
INSIDE = at("2026-12-20T12:00:00Z")
SECOND = timedelta(seconds=1)
CAISI = person("US CAISI", ("US",), roles=("evaluator",))
CUSTOMER = person("Northwind", ("US",), "ca:corp")
STAFF = person("Example AI Labs", ("US",), "ca:corp")


def test_evaluator_inside_the_window_is_allowed_with_the_grant(example: Policy) -> None:
    decision = decide(example, CAISI, "model.invoke", "muse-spark-2", INSIDE)
    assert (decision.allowed, decision.reason, decision.status) == (True, "allow.grant", 200)
    assert decision.error_code is None
    assert decision.grant_id == "caisi-muse-spark-2-eval"
    assert decision.grant_not_after == CLOSES
    assert decision.rules[-1] == "grant:caisi-muse-spark-2-eval"
    assert "class:frontier/nationality.allow[US]" in decision.rules
    assert decision.roles == frozenset({"evaluator"})
    assert decision.policy_version == example.version


def test_grant_opens_at_not_before_inclusive(example: Policy) -> None:
    assert decide(example, CAISI, "model.invoke", "muse-spark-2", OPENS).allowed
    before = decide(example, CAISI, "model.invoke", "muse-spark-2", OPENS - SECOND)
    assert (before.reason, before.status, before.error_code) == (
        "grant.not_yet_valid",
        403,
        "grant_not_yet_valid",
    )
    assert before.grant_id == "caisi-muse-spark-2-eval"


def test_grant_closes_at_not_after_exclusive(example: Policy) -> None:
    assert decide(example, CAISI, "model.invoke", "muse-spark-2", CLOSES - SECOND).allowed
    after = decide(example, CAISI, "model.invoke", "muse-spark-2", CLOSES)
    assert (after.reason, after.status, after.error_code) == ("grant.expired", 403, "grant_expired")


def test_model_is_released_at_release_at_inclusive(example: Policy) -> None:
    released = decide(example, CUSTOMER, "model.invoke", "muse-spark-2", RELEASE)
    assert (released.allowed, released.reason) == (True, "allow.released")
    hidden = decide(example, CUSTOMER, "model.invoke", "muse-spark-2", RELEASE - SECOND)
    assert (hidden.allowed, hidden.reason, hidden.status, hidden.error_code) == (
        False,
        "model.prerelease",
        404,
        "model_not_found",
    )


def test_hidden_model_looks_exactly_like_an_unknown_model(example: Policy) -> None:
    hidden = decide(example, CUSTOMER, "model.invoke", "muse-spark-2", INSIDE)
    unknown = decide(example, CUSTOMER, "model.invoke", "no-such-model", INSIDE)
    assert unknown.reason == "model.unknown"
    assert (hidden.status, hidden.error_code) == (unknown.status, unknown.error_code)


def test_internal_staff_may_use_a_prerelease_model(example: Policy) -> None:
    decision = decide(example, STAFF, "model.invoke", "muse-spark-2", INSIDE)
    assert (decision.allowed, decision.reason) == (True, "allow.internal")
    assert "internal" in decision.roles


def test_internal_role_requires_the_corp_ca_as_source(example: Policy) -> None:
    claimed = person("Example AI Labs", ("US",), "oidc:corp-idp")
    decision = decide(example, claimed, "model.invoke", "muse-spark-2", INSIDE)
    assert decision.reason == "model.prerelease"
    assert "internal" not in decision.roles


def test_dual_national_is_denied_under_combine_all(example: Policy) -> None:
    dual = person("US CAISI", ("US", "FR"))
    decision = decide(example, dual, "model.invoke", "muse-spark-2", INSIDE)
    assert (decision.reason, decision.error_code) == (
        "nationality.denied",
        "nationality_restricted",
    )
    assert "class:frontier/nationality.not_allowed[FR]" in decision.rules
    assert "class:frontier/nationality.combine[all]" in decision.rules


def test_missing_nationality_is_denied_by_default(example: Policy) -> None:
    decision = decide(example, person("US CAISI"), "model.invoke", "muse-spark-2", INSIDE)
    assert (decision.reason, decision.status) == ("nationality.missing", 403)


def test_nationality_from_an_untrusted_source_is_ignored_and_recorded(example: Policy) -> None:
    principal = person(
        "Northwind", (), "ca:corp", extra=(Attribute("nationality", "US", "oidc:corp-idp"),)
    )
    decision = decide(example, principal, "model.invoke", "muse-1", INSIDE)
    assert decision.reason == "nationality.missing"
    assert "attribute.untrusted_source[nationality:oidc:corp-idp]" in decision.rules


def test_is_trusted_follows_the_trust_section_and_its_scopes(example: Policy) -> None:
    assert example.is_trusted(Attribute("nationality", "US", "ca:corp"))
    assert example.is_trusted(Attribute("organisation", "Globex Corp", "oidc:corp-idp"))
    assert not example.is_trusted(Attribute("organisation", "US CAISI", "oidc:corp-idp"))
    assert not example.is_trusted(Attribute("role", "evaluator", "ca:corp"))
    assert not example.is_trusted(Attribute("nationality", "US", "oidc:corp-idp"))
    assert not example.is_trusted(Attribute("residence", "US", "oidc:agency-idp"))


def test_embargoed_group_member_is_denied_the_general_model(example: Policy) -> None:
    decision = decide(
        example, person("Northwind", ("IR",), "ca:corp"), "model.invoke", "muse-1", INSIDE
    )
    assert decision.reason == "nationality.denied"
    assert "class:general/nationality.deny[IR]" in decision.rules


def test_suspended_organisation_is_denied(example: Policy) -> None:
    acme = person("Acme Reseller Ltd", ("US",), "ca:corp")
    decision = decide(example, acme, "model.invoke", "muse-1", INSIDE)
    assert (decision.reason, decision.status, decision.error_code) == (
        "suspended.organisation",
        403,
        "suspended",
    )
    assert "suspension:organisation[Acme Reseller Ltd]" in decision.rules


def test_suspension_starts_at_since_inclusive(example: Policy) -> None:
    acme = person("Acme Reseller Ltd", ("US",), "ca:corp")
    since = at("2026-06-01T00:00:00Z")
    assert decide(example, acme, "model.invoke", "muse-1", since - SECOND).allowed
    assert not decide(example, acme, "model.invoke", "muse-1", since).allowed


def test_suspension_never_reveals_a_hidden_model(example: Policy) -> None:
    acme = person("Acme Reseller Ltd", ("US",), "ca:corp")
    decision = decide(example, acme, "model.invoke", "muse-spark-2", INSIDE)
    assert (decision.reason, decision.status) == ("model.prerelease", 404)


def test_model_list_follows_the_invoke_rules(example: Policy) -> None:
    assert decide(example, CAISI, "model.list", "muse-spark-2", INSIDE).allowed
    assert decide(example, CUSTOMER, "model.list", "muse-spark-2", INSIDE).status == 404


def test_visible_models_lists_only_what_the_caller_may_invoke(example: Policy) -> None:
    assert visible_models(example, CAISI, INSIDE) == ["muse-1", "muse-spark-2"]
    assert visible_models(example, CUSTOMER, INSIDE) == ["muse-1"]
    assert visible_models(example, CUSTOMER, RELEASE) == ["muse-1", "muse-spark-2"]
    assert example.visible_models(person(), INSIDE) == []


def test_policy_models_expose_the_model_catalogue(example: Policy) -> None:
    model = example.models["muse-spark-2"]
    assert (model.access_class, model.release_at) == ("frontier", RELEASE)
    assert list(example.models) == ["muse-1", "muse-spark-2"]


@pytest.mark.parametrize(("action", "role"), [("audit.read", "auditor"), ("admin", "operator")])
def test_control_actions_need_their_role(example: Policy, action: str, role: str) -> None:
    holder = person("Example AI Labs", (), "ca:corp", roles=(role,))
    allowed = decide(example, holder, action, None, INSIDE)
    assert (allowed.allowed, allowed.reason, allowed.status) == (True, "allow.role", 200)
    denied = decide(example, CAISI, action, None, INSIDE)
    assert (denied.reason, denied.status, denied.error_code) == (
        "role.required",
        403,
        "permission_denied",
    )
    assert denied.rules == (f"role.required[{role}]",)


def test_role_from_an_untrusted_source_for_that_role_does_not_count(example: Policy) -> None:
    claimed = person("Example AI Labs", (), "oidc:corp-idp", roles=("auditor",))
    assert decide(example, claimed, "audit.read", None, INSIDE).reason == "role.required"


def test_unknown_action_is_denied(example: Policy) -> None:
    decision = decide(example, CAISI, "model.delete", "muse-1", INSIDE)
    assert (decision.allowed, decision.reason) == (False, "action.unknown")


def test_naive_instant_is_a_policy_error(example: Policy) -> None:
    decision = decide(example, CAISI, "audit.read", None, datetime(2026, 12, 20))
    assert (decision.allowed, decision.reason, decision.error_code) == (
        False,
        "policy.error",
        "policy_error",
    )


def test_any_exception_during_evaluation_is_a_denial(example: Policy) -> None:
    broken = object.__new__(type(example))  # a Policy whose indexes were never built
    decision = decide(broken, CAISI, "audit.read", None, INSIDE)
    assert (decision.allowed, decision.reason, decision.status) == (False, "policy.error", 403)


def _unreadable_principal() -> Principal:
    # Evaluating it raises: its attributes are not a set of attributes.
    return Principal("x", "ca:agency", attributes=None)  # type: ignore[arg-type]


def test_an_error_on_a_model_the_caller_may_not_see_answers_like_an_unknown_model(
    example: Policy,
) -> None:
    hidden = decide(example, _unreadable_principal(), "model.invoke", "muse-spark-2", INSIDE)
    unknown = decide(example, CUSTOMER, "model.invoke", "no-such-model", INSIDE)
    assert (hidden.allowed, hidden.reason) == (False, "policy.error")
    assert (hidden.status, hidden.error_code) == (unknown.status, unknown.error_code)


def test_an_error_on_a_released_model_is_a_policy_error(example: Policy) -> None:
    decision = decide(example, _unreadable_principal(), "model.invoke", "muse-1", INSIDE)
    assert (decision.reason, decision.status, decision.error_code) == (
        "policy.error",
        403,
        "policy_error",
    )


def test_an_error_that_leaves_the_model_in_doubt_answers_like_an_unknown_model(
    example: Policy,
) -> None:
    broken = object.__new__(type(example))
    naive = decide(example, CAISI, "model.invoke", "muse-1", datetime(2026, 12, 20))
    unbuilt = decide(broken, CAISI, "model.list", "muse-1", INSIDE)
    assert (naive.reason, naive.status, naive.error_code) == (
        "policy.error",
        404,
        "model_not_found",
    )
    assert (unbuilt.reason, unbuilt.status) == ("policy.error", 404)


def test_decide_method_equals_function(example: Policy) -> None:
    assert example.decide(CAISI, "model.invoke", "muse-spark-2", INSIDE) == decide(
        example, CAISI, "model.invoke", "muse-spark-2", INSIDE
    )


def test_decision_is_frozen(example: Policy) -> None:
    decision = decide(example, CAISI, "model.invoke", "muse-1", INSIDE)
    with pytest.raises(AttributeError):
        decision.allowed = False  # type: ignore[misc]
    assert not hasattr(decision, "__dict__")


EXCEPTION_GRANT = """
grants:
  - id: dual-national-exception
    grantee: {organisation: US CAISI, subjects: [evaluator-7]}
    models: [muse-spark-2]
    not_before: 2026-12-20T00:00:00Z
    not_after: 2026-12-24T00:00:00Z
    purpose: evaluation by a named dual national
    approvers: [chief-scientist, general-counsel, export-control-officer]
    nationality_exception: {reason: export licence on file}
"""


def test_nationality_exception_allows_and_is_an_obligation(
    edit: Callable[[str, str], Policy],
) -> None:
    policy = edit("exception.yaml", EXCEPTION_GRANT)
    dual = person("US CAISI", ("US", "FR"), subject="evaluator-7")
    decision = decide(policy, dual, "model.invoke", "muse-spark-2", INSIDE)
    assert (decision.allowed, decision.reason) == (True, "allow.grant")
    assert decision.grant_id == "dual-national-exception"
    assert decision.obligations == ("nationality_exception:dual-national-exception",)
    assert "grant:dual-national-exception/nationality_exception" in decision.rules


def test_nationality_exception_is_limited_to_its_subjects_and_window(
    edit: Callable[[str, str], Policy],
) -> None:
    policy = edit("exception.yaml", EXCEPTION_GRANT)
    other = person("US CAISI", ("US", "FR"), subject="evaluator-8")
    assert decide(policy, other, "model.invoke", "muse-spark-2", INSIDE).reason == (
        "nationality.denied"
    )
    named = person("US CAISI", ("US", "FR"), subject="evaluator-7")
    late = decide(policy, named, "model.invoke", "muse-spark-2", at("2026-12-24T00:00:00Z"))
    assert late.reason == "nationality.denied"
    assert late.obligations == ()


def test_a_grant_without_exception_never_bypasses_nationality(example: Policy) -> None:
    decision = decide(example, person("US CAISI", ("FR",)), "model.invoke", "muse-spark-2", INSIDE)
    assert (decision.allowed, decision.reason) == (False, "nationality.denied")
    assert decision.obligations == ()


VARIANTS = """
access_classes:
  open:
    nationality: {missing: allow}
  lenient:
    nationality: {allow: [US, GB], combine: any}
models:
  - {id: open-model, access_class: open}
  - {id: lenient-model, access_class: lenient}
suspensions:
  - {model: open-model, reason: incident, since: 2026-12-01T00:00:00Z, until: 2026-12-02T00:00:00Z}
  - {subject: mallory, reason: abuse, since: 2026-01-01T00:00:00Z}
  - {country: CA, reason: review, since: 2026-01-01T00:00:00Z}
  - {access_class: lenient, reason: review, since: 2027-02-01T00:00:00Z}
"""


def test_missing_allow_admits_a_caller_without_nationality(
    edit: Callable[[str, str], Policy],
) -> None:
    policy = edit("variants.yaml", VARIANTS)
    decision = decide(policy, person(), "model.invoke", "open-model", INSIDE)
    assert (decision.allowed, decision.reason) == (True, "allow.released")
    assert "class:open/nationality.missing[allow]" in decision.rules


def test_combine_any_admits_a_dual_national(edit: Callable[[str, str], Policy]) -> None:
    policy = edit("variants.yaml", VARIANTS)
    dual = person("X", ("FR", "GB"), "ca:corp")
    assert decide(policy, dual, "model.invoke", "lenient-model", INSIDE).allowed
    assert not decide(
        policy, person("X", ("FR",), "ca:corp"), "model.invoke", "lenient-model", INSIDE
    ).allowed


@pytest.mark.parametrize(
    ("principal", "model", "when", "reason"),
    [
        (person(), "open-model", at("2026-12-01T00:00:00Z"), "suspended.model"),
        (person(subject="mallory"), "open-model", INSIDE, "suspended.subject"),
        (person("X", ("CA",), "ca:corp"), "muse-1", INSIDE, "suspended.country"),
        (
            person("X", ("US",), "ca:corp"),
            "lenient-model",
            at("2027-02-01T00:00:00Z"),
            "suspended.access_class",
        ),
    ],
)
def test_each_suspension_dimension(
    edit: Callable[[str, str], Policy],
    principal: object,
    model: str,
    when: datetime,
    reason: str,
) -> None:
    policy = edit("variants.yaml", VARIANTS)
    decision: Decision = decide(policy, principal, "model.invoke", model, when)  # type: ignore[arg-type]
    assert (decision.allowed, decision.reason, decision.error_code) == (False, reason, "suspended")


def test_suspension_ends_at_until_exclusive(edit: Callable[[str, str], Policy]) -> None:
    policy = edit("variants.yaml", VARIANTS)
    assert decide(
        policy, person(), "model.invoke", "open-model", at("2026-12-02T00:00:00Z")
    ).allowed
