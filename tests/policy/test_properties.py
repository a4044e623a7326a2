"""Properties that must hold for any caller and any instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity.principal import Attribute, Principal
from gateway.policy import Policy, load_policy

from .conftest import EXAMPLE

SOURCES = ["ca:agency", "oidc:agency-idp", "ca:corp", "oidc:corp-idp", "ca:unknown"]
ORGANISATIONS = ["US CAISI", "Example AI Labs", "Acme Reseller Ltd", "Northwind"]
COUNTRIES = ["US", "FR", "GB", "IR", "CU", "CN", "NO"]
NAMES = ["organisation", "role", "nationality", "residence"]


def _policy() -> Policy:
    # Loaded per test (not a function-scoped fixture) to keep hypothesis' health check quiet.
    return load_policy(EXAMPLE)


attributes = st.builds(
    Attribute,
    st.sampled_from(NAMES),
    st.one_of(st.sampled_from(ORGANISATIONS), st.sampled_from(COUNTRIES), st.just("evaluator")),
    st.sampled_from(SOURCES),
)
principals = st.builds(
    Principal,
    subject=st.sampled_from(["a", "b"]),
    issuer=st.just("test"),
    attributes=st.frozensets(attributes, max_size=6),
)
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 6, 1), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None)
@given(principal=principals, now=instants, model=st.sampled_from(["muse-1", "muse-spark-2"]))
def test_no_trusted_nationality_never_reaches_a_class_that_requires_one(
    principal: Principal, now: datetime, model: str
) -> None:
    policy = _policy()
    trusted = {a for a in principal.attributes if a.name == "nationality" and policy.is_trusted(a)}
    decision = policy.decide(principal, "model.invoke", model, now)
    if not trusted:
        assert not decision.allowed
        assert decision.reason in {
            "nationality.missing",
            "model.prerelease",
            "grant.not_yet_valid",
            "grant.expired",
            "suspended.organisation",
            "identity.conflict",  # two trusted organisations disagree: refused outright
        }


@settings(max_examples=400, deadline=None)
@given(principal=principals, offset=st.integers(min_value=-400, max_value=400))
def test_no_instant_outside_the_grant_window_opens_a_prerelease_model(
    principal: Principal, offset: int
) -> None:
    policy = _policy()
    grant = policy.grants[0]
    release = policy.models["muse-spark-2"].release_at
    assert release is not None
    now = grant.not_before + timedelta(hours=offset)
    decision = policy.decide(principal, "model.invoke", "muse-spark-2", now)
    inside = grant.not_before <= now < grant.not_after
    if decision.allowed and now < release:
        assert "internal" in decision.roles or inside
        if "internal" not in decision.roles:
            assert decision.grant_id == grant.id
