"""Scoped trust and credential conflicts: a source vouches only for what it owns.

The finding: the customer IdP was trusted for organisation with any value, so carol's
Globex certificate plus a customer-IdP token claiming "US CAISI" was served the
pre-release model under the agency's grant, and the token alone got a 403 that told
the caller the hidden model exists.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity.principal import Attribute, Credential, Principal
from gateway.policy import Decision, Policy, PolicyLoadError, decide, load_policy, visible_models
from gateway.policy.cli import register

from .conftest import EXAMPLE, at, person

INSIDE = at("2026-12-20T12:00:00Z")
CAISI = person("US CAISI", ("US",), roles=("evaluator",))
Edit = Callable[[str, str], Policy]


def carol(*extra: Attribute, credentials: tuple[Credential, ...] = ()) -> Principal:
    """carol's Globex certificate from the lab's CA, plus whatever else she presents."""
    attributes = {
        Attribute("organisation", "Globex Corp", "ca:corp"),
        Attribute("role", "customer", "ca:corp"),
        Attribute("nationality", "US", "ca:corp"),
        *extra,
    }
    return Principal(
        subject="carol",
        issuer="ca:corp",
        attributes=frozenset(attributes),
        auth_methods=frozenset({"mtls", "oidc"} if extra else {"mtls"}),
        credentials=frozenset(credentials or {Credential("ca:corp", "carol")}),
    )


def outcome(decision: Decision) -> tuple[object, ...]:
    """Everything a decision says except its rule trail."""
    return (
        decision.allowed,
        decision.reason,
        decision.status,
        decision.error_code,
        decision.grant_id,
        decision.obligations,
        decision.roles,
    )


# -- scopes on the example policy ----------------------------------------------------------


def test_a_customer_idp_claiming_the_agency_does_not_open_the_agency_grant(
    example: Policy,
) -> None:
    claim = Attribute("organisation", "US CAISI", "oidc:corp-idp")
    decision = decide(example, carol(claim), "model.invoke", "muse-spark-2", INSIDE)

    assert (decision.allowed, decision.reason, decision.status) == (
        False,
        "model.prerelease",
        404,
    )
    assert "attribute.out_of_scope[organisation:oidc:corp-idp]" in decision.rules


def test_the_claim_alone_gets_the_404_of_an_unknown_model_not_a_403(example: Policy) -> None:
    token_only = person("US CAISI", ("US",), "oidc:corp-idp", roles=("evaluator",))
    hidden = decide(example, token_only, "model.invoke", "muse-spark-2", INSIDE)
    unknown = decide(example, token_only, "model.invoke", "muse-spark-9", INSIDE)

    assert (
        (hidden.status, hidden.error_code)
        == (unknown.status, unknown.error_code)
        == (
            404,
            "model_not_found",
        )
    )
    assert visible_models(example, token_only, INSIDE) == []


def test_a_source_inside_its_scope_still_counts(example: Policy) -> None:
    own = Attribute("organisation", "Globex Corp", "oidc:corp-idp")
    decision = decide(example, carol(own), "model.invoke", "muse-1", INSIDE)

    assert (decision.allowed, decision.reason) == (True, "allow.released")
    assert not any("out_of_scope" in rule for rule in decision.rules)


def test_a_role_outside_the_source_scope_is_not_held(example: Policy) -> None:
    claimed = person("Example AI Labs", ("US",), "ca:corp", roles=("evaluator",))

    assert "evaluator" not in decide(example, claimed, "model.list", None, INSIDE).roles


# -- conflicts between two credentials -----------------------------------------------------


def test_two_credentials_with_different_trusted_organisations_are_a_conflict(
    example: Policy,
) -> None:
    agency = Attribute("organisation", "US CAISI", "oidc:agency-idp")
    principal = carol(
        agency,
        credentials=(Credential("ca:corp", "carol"), Credential("oidc:agency-idp", "carol")),
    )

    decision = decide(example, principal, "model.invoke", "muse-spark-2", INSIDE)

    assert (decision.allowed, decision.reason, decision.status, decision.error_code) == (
        False,
        "identity.conflict",
        401,
        "unauthenticated",
    )
    assert "identity.conflict[organisation:ca:corp,oidc:agency-idp]" in decision.rules
    assert decision.roles == frozenset()
    assert visible_models(example, principal, INSIDE) == []
    for action in ("model.list", "audit.read", "admin"):
        assert decide(example, principal, action, None, INSIDE).reason == "identity.conflict"


def test_two_credentials_naming_different_subjects_are_a_conflict(example: Policy) -> None:
    principal = carol(
        Attribute("organisation", "Globex Corp", "oidc:corp-idp"),
        credentials=(Credential("ca:corp", "carol"), Credential("oidc:corp-idp", "mallory")),
    )

    decision = decide(example, principal, "model.invoke", "muse-1", INSIDE)

    assert (decision.reason, decision.status) == ("identity.conflict", 401)
    assert "identity.conflict[subject]" in decision.rules


def test_an_untrusted_or_out_of_scope_claim_is_no_conflict(example: Policy) -> None:
    principal = carol(
        Attribute("organisation", "US CAISI", "oidc:corp-idp"),
        Attribute("organisation", "US CAISI", "oidc:unknown"),
        credentials=(Credential("ca:corp", "carol"), Credential("oidc:corp-idp", "carol")),
    )

    assert decide(example, principal, "model.invoke", "muse-1", INSIDE).allowed


def test_credentials_that_agree_are_no_conflict(example: Policy) -> None:
    principal = person(
        "US CAISI",
        ("US",),
        extra=(Attribute("organisation", "US CAISI", "oidc:agency-idp"),),
    )
    both = Principal(
        principal.subject,
        principal.issuer,
        principal.attributes,
        credentials=frozenset(
            {Credential("ca:agency", "subject-1"), Credential("oidc:agency-idp", "subject-1")}
        ),
    )

    assert decide(example, both, "model.invoke", "muse-spark-2", INSIDE).reason == "allow.grant"


def test_the_operator_can_allow_each_kind_of_conflict(edit: Edit) -> None:
    policy = edit(
        "settings.yaml",
        "settings:\n  credential_conflicts: {subject: allow, organisation: allow}\n",
    )
    principal = carol(
        Attribute("organisation", "Globex Corp", "oidc:corp-idp"),
        Attribute("organisation", "US CAISI", "oidc:agency-idp"),
        credentials=(Credential("ca:corp", "carol"), Credential("oidc:agency-idp", "c@agency")),
    )

    decision = decide(policy, principal, "model.invoke", "muse-1", INSIDE)

    assert (decision.allowed, decision.reason) == (True, "allow.released")


def test_allowing_subject_conflicts_still_refuses_organisation_conflicts(edit: Edit) -> None:
    policy = edit("settings.yaml", "settings:\n  credential_conflicts: {subject: allow}\n")
    principal = carol(
        Attribute("organisation", "US CAISI", "oidc:agency-idp"),
        credentials=(Credential("ca:corp", "carol"), Credential("oidc:agency-idp", "c@agency")),
    )

    decision = decide(policy, principal, "model.invoke", "muse-1", INSIDE)

    assert decision.rules[-1] == "identity.conflict[organisation:ca:corp,oidc:agency-idp]"


# -- the YAML ------------------------------------------------------------------------------


@pytest.fixture
def trust(policy_dir: Path, edit: Edit) -> Callable[[str], Policy]:
    """Replace the trust section (and drop the roles, which name the example's sources)."""
    (policy_dir / "roles.yaml").write_text("roles: {}\n")
    return lambda text: edit("trust.yaml", text)


def test_a_bare_source_still_means_any_value(trust: Callable[[str], Policy]) -> None:
    policy = trust(
        "trust:\n  organisation: [ca:agency, {source: oidc:corp-idp, values: [Globex Corp]}]\n",
    )

    assert policy.trust["organisation"] == {
        "ca:agency": None,
        "oidc:corp-idp": frozenset({"Globex Corp"}),
    }
    assert policy.is_trusted(Attribute("organisation", "Anything", "ca:agency"))


def test_nationality_scopes_take_codes_and_country_groups(
    trust: Callable[[str], Policy],
) -> None:
    policy = trust(
        "trust:\n  organisation: [{source: ca:agency, values: [US CAISI]}]\n"
        '  nationality:\n    - {source: ca:agency, values: [US, "E:1"]}\n',
    )

    assert policy.trust["nationality"]["ca:agency"] == frozenset({"US", "IR", "KP", "SY"})
    assert policy.is_trusted(Attribute("nationality", "KP", "ca:agency"))
    assert not policy.is_trusted(Attribute("nationality", "FR", "ca:agency"))


def test_a_nationality_outside_a_national_ca_scope_counts_as_missing(
    trust: Callable[[str], Policy],
) -> None:
    policy = trust(
        "trust:\n  organisation: [{source: ca:agency, values: [US CAISI]}]\n"
        "  nationality: [{source: ca:agency, values: [FR]}]\n",
    )

    decision = decide(policy, person("US CAISI", ("US",)), "model.invoke", "muse-1", INSIDE)

    assert decision.reason == "nationality.missing"
    assert "attribute.out_of_scope[nationality:ca:agency]" in decision.rules


@pytest.mark.parametrize(
    ("text", "key", "line", "message"),
    [
        (
            "trust:\n  organisation:\n    - ca:agency\n    - ca:agency\n",
            "trust.organisation[1]",
            4,
            "listed twice",
        ),
        (
            "trust:\n  organisation:\n    - {source: ca:agency, value: [X]}\n",
            "trust.organisation[0].value",
            3,
            "unknown key",
        ),
        (
            "trust:\n  organisation:\n    - {source: ca:agency}\n",
            "trust.organisation[0].values",
            3,
            "is required",
        ),
        (
            "trust:\n  organisation:\n    - {source: ca:agency, values: []}\n",
            "trust.organisation[0].values",
            3,
            "at least one",
        ),
        (
            "trust:\n  organisation:\n    - {source: agency, values: [X]}\n",
            "trust.organisation[0].source",
            3,
            "ca:<id>",
        ),
        (
            "trust:\n  nationality:\n    - {source: ca:agency, values: [US, ZZ]}\n",
            "trust.nationality[0].values[1]",
            3,
            "not an ISO 3166-1",
        ),
        (
            'trust:\n  nationality:\n    - {source: ca:agency, values: ["E:9"]}\n',
            "trust.nationality[0].values[0]",
            3,
            "unknown country group",
        ),
        ("trust:\n  organisation: ca:agency\n", "trust.organisation", 2, "list"),
        ("trust:\n  organisation: [[ca:agency]]\n", "trust.organisation[0]", 2, "a mapping"),
    ],
)
def test_bad_trust_entries_name_file_key_and_line(
    policy_dir: Path, text: str, key: str, line: int, message: str
) -> None:
    (policy_dir / "trust.yaml").write_text(text)

    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)

    assert (caught.value.file, caught.value.key, caught.value.line) == (
        str(policy_dir / "trust.yaml"),
        key,
        line,
    )
    assert message in caught.value.message


def test_a_role_rule_no_source_may_satisfy_does_not_load(policy_dir: Path) -> None:
    (policy_dir / "roles.yaml").write_text(
        "roles:\n  evaluator:\n    - {attribute: role, value: evaluator, sources: [ca:corp]}\n"
    )

    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)

    assert caught.value.key == "roles.evaluator[0].value"
    assert "outside every scope" in caught.value.message


@pytest.mark.parametrize(
    "text",
    [
        "settings:\n  credential_conflicts: {subject: maybe}\n",
        "settings:\n  credential_conflicts: {nationality: allow}\n",
        "settings:\n  credential_conflicts: allow\n",
    ],
)
def test_bad_conflict_settings_do_not_load(policy_dir: Path, text: str) -> None:
    (policy_dir / "settings.yaml").write_text(text)

    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)

    assert caught.value.key.startswith("settings.credential_conflicts")


def test_the_version_changes_with_a_scope_and_not_with_its_spelling(
    trust: Callable[[str], Policy],
) -> None:
    scoped = "trust:\n  organisation:\n    - {{source: ca:agency, values: [{values}]}}\n"
    one = trust(scoped.format(values="US CAISI")).version
    same = trust(scoped.format(values="US CAISI, US CAISI")).version
    two = trust(scoped.format(values="US CAISI, Globex Corp")).version
    bare = trust("trust:\n  organisation: [ca:agency]\n").version

    assert one == same
    assert len({one, two, bare}) == 3


def test_default_conflict_settings_leave_the_version_alone(edit: Edit) -> None:
    plain = edit("settings.yaml", "settings:\n  min_approvers: 2\n").version
    spelled = edit(
        "settings.yaml",
        "settings:\n  min_approvers: 2\n  credential_conflicts: {subject: refuse}\n",
    ).version
    relaxed = edit(
        "settings.yaml",
        "settings:\n  min_approvers: 2\n  credential_conflicts: {subject: allow}\n",
    ).version

    assert plain == spelled != relaxed


# -- policy check warns ----------------------------------------------------------------------


def _check(directory: Path) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["policy", "check", str(directory)])
    status: int = args.func(args)
    return status


def test_check_is_silent_on_the_scoped_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert _check(EXAMPLE) == 0
    assert capsys.readouterr().err == ""


def test_check_warns_about_unscoped_organisation_and_role_and_still_succeeds(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policy_dir / "trust.yaml").write_text(
        "trust:\n"
        "  organisation: [ca:agency, {source: oidc:corp-idp, values: [Globex Corp]}]\n"
        "  role:\n    - oidc:corp-idp\n"
        "  nationality: [ca:agency]\n"
    )
    (policy_dir / "roles.yaml").write_text("roles: {}\n")

    assert _check(policy_dir) == 0
    warnings = capsys.readouterr().err.splitlines()

    trust = policy_dir / "trust.yaml"
    assert warnings == [
        f"warning: {trust}:2: trust.organisation[0]: ca:agency may assert any organisation; "
        "give it `values:` so it can vouch only for its own",
        f"warning: {trust}:4: trust.role[0]: oidc:corp-idp may assert any role; "
        "give it `values:` so it can vouch only for its own",
    ]


def test_check_warns_about_a_grantee_no_source_may_assert(
    policy_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (policy_dir / "trust.yaml").write_text(
        "trust:\n  organisation: [{source: ca:corp, values: [Example AI Labs]}]\n"
        "  role: [{source: ca:corp, values: [operator, auditor]}]\n"
        "  nationality: [ca:corp]\n"
    )
    (policy_dir / "roles.yaml").write_text(
        "roles:\n  internal:\n    - {attribute: organisation, value: Example AI Labs}\n"
    )

    assert _check(policy_dir) == 0

    assert capsys.readouterr().err == (
        "warning: grant caisi-muse-spark-2-eval: no source is trusted to assert "
        "organisation 'US CAISI', so the grant can never apply\n"
    )


# -- the property ----------------------------------------------------------------------------

SOURCES = ["ca:agency", "oidc:agency-idp", "ca:corp", "oidc:corp-idp", "ca:unknown"]
VALUES = {
    "organisation": ["US CAISI", "Example AI Labs", "Globex Corp", "Acme Reseller Ltd", "Other"],
    "role": ["evaluator", "customer", "operator", "auditor", "internal"],
    "nationality": ["US", "FR", "CN", "IR", "CU"],
    "residence": ["US", "FR"],
}


def _policy() -> Policy:
    # Loaded per example (not a function-scoped fixture) to keep hypothesis' check quiet.
    return load_policy(EXAMPLE)


@st.composite
def _attributes(draw: st.DrawFn) -> Attribute:
    name = draw(st.sampled_from(sorted(VALUES)))
    return Attribute(name, draw(st.sampled_from(VALUES[name])), draw(st.sampled_from(SOURCES)))  # type: ignore[arg-type]


_principals = st.builds(
    lambda subject, attributes, credentials: Principal(
        subject, "test", attributes, credentials=credentials
    ),
    st.sampled_from(["carol", "alice"]),
    st.frozensets(_attributes(), max_size=6),
    st.frozensets(
        st.builds(Credential, st.sampled_from(SOURCES), st.sampled_from(["carol", "alice"])),
        max_size=2,
    ),
)
_instants = st.datetimes(
    min_value=datetime(2026, 6, 1), max_value=datetime(2027, 3, 1), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))


@settings(max_examples=500, deadline=None)
@given(
    principal=_principals,
    extra=st.frozensets(_attributes(), min_size=1, max_size=4),
    now=_instants,
    action=st.sampled_from(["model.invoke", "model.list", "audit.read", "admin"]),
    model=st.sampled_from(["muse-1", "muse-spark-2", "muse-9"]),
)
def test_no_value_outside_a_source_scope_ever_changes_a_decision(
    principal: Principal, extra: frozenset[Attribute], now: datetime, action: str, model: str
) -> None:
    policy = _policy()
    untrusted = frozenset(a for a in extra if not policy.is_trusted(a))
    with_them = Principal(
        principal.subject,
        principal.issuer,
        principal.attributes | untrusted,
        credentials=principal.credentials,
    )
    target = model if action.startswith("model.") else None

    assert outcome(decide(policy, with_them, action, target, now)) == outcome(
        decide(policy, principal, action, target, now)
    )
    assert visible_models(policy, with_them, now) == visible_models(policy, principal, now)


@settings(max_examples=300, deadline=None)
@given(principal=_principals, now=_instants)
def test_nobody_sees_a_hidden_model_without_a_trusted_grantee_or_internal_organisation(
    principal: Principal, now: datetime
) -> None:
    policy = _policy()
    release = policy.models["muse-spark-2"].release_at
    assert release is not None
    decision = decide(policy, principal, "model.invoke", "muse-spark-2", now)
    trusted = {a.value for a in principal.attributes if policy.is_trusted(a)}
    if now < release and not trusted & {"US CAISI", "Example AI Labs"}:
        assert decision.status in (401, 404)
        assert decision.error_code in ("unauthenticated", "model_not_found")
