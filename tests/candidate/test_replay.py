"""Replay's own rules, on records built as the request path builds them: the caller
rebuilt from its record, what is not replayed and why, how outcomes are compared."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.candidate import ReplayError, caller_from_record, replay
from gateway.candidate.replay import NO_ROLES
from gateway.identity.principal import Attribute, Principal
from gateway.policy import Policy, decide, load_policy
from gateway.records import principal_json, request_record
from tests.policy.conftest import EXAMPLE, person

ROUTES = frozenset({"/v1/chat/completions"})
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def example() -> Policy:
    return load_policy(EXAMPLE)


def _record(policy: Policy, principal: Principal, asked: str, **fields: Any) -> dict[str, Any]:
    """A request record as the inference path writes it, under `policy`."""
    model = asked
    at = datetime.fromtimestamp(NOW, UTC)
    decision = decide(policy, principal, "model.invoke", model, at)
    record = request_record(
        now=NOW,
        request_id=f"req-{principal.subject}-{model}",
        route="/v1/chat/completions",
        client_address="127.0.0.1",
        principal=principal_json(principal, policy, decision.roles),
        model=model,
        decision=decision,
        reason=decision.reason,
        status=None if decision.allowed else decision.status,
        request_digest=None,
    )
    record.update(fields)
    return record


_NAMES = st.sampled_from(["organisation", "nationality", "residence", "role"])
_TEXT = st.text(min_size=1, max_size=12)


@given(
    attributes=st.frozensets(st.builds(Attribute, _NAMES, _TEXT, _TEXT), max_size=8),
    subject=_TEXT,
)
def test_the_recorded_caller_is_the_caller(attributes: frozenset[Attribute], subject: str) -> None:
    principal = Principal(subject, "ca:agency", attributes, frozenset({"mtls"}))
    recorded = principal_json(principal, load_policy(EXAMPLE), frozenset())
    caller = caller_from_record(recorded)
    assert caller.principal == principal
    assert caller.roles_known


@pytest.mark.parametrize(
    "damage",
    [
        {"subject": None},
        {"nationalities": "US"},
        {"organisations": [{"value": 1, "source": "ca:agency"}]},
        {"residences": [["US", "ca:agency"]]},
        {"role_attributes": [{"value": "evaluator"}]},
    ],
)
def test_a_malformed_recorded_caller_is_refused(damage: dict[str, Any]) -> None:
    recorded = principal_json(person("US CAISI", ("US",)), load_policy(EXAMPLE), frozenset())
    recorded.update(damage)
    with pytest.raises(ReplayError):
        caller_from_record(recorded)


def test_the_same_policy_changes_nothing(example: Policy) -> None:
    callers = [person("US CAISI", ("US",)), person("Globex Corp", ("FR",), "ca:corp"), person()]
    records = [
        (i, _record(example, caller, model))
        for i, (caller, model) in enumerate(
            (c, m) for c in callers for m in ("muse-1", "muse-spark-2", "no-such-model")
        )
    ]
    report = replay(records, example, ROUTES)
    assert (report.examined, report.replayed, report.changed) == (9, 9, 0)


def test_a_record_without_asserted_roles_is_not_guessed(example: Policy, tmp_path: Path) -> None:
    evaluator = person("US CAISI", ("US",), roles=("evaluator",))
    old = _record(example, evaluator, "muse-1")
    del old["principal"]["role_attributes"]
    report = replay([(7, old)], example, ROUTES)
    assert report.replayed == 0
    assert report.skipped[NO_ROLES].count == 1
    assert report.skipped[NO_ROLES].examples[0].index == 7
    # A policy whose roles never read `role` attributes decides it exactly.
    folder = tmp_path / "policy"
    shutil.copytree(EXAMPLE, folder)
    (folder / "roles.yaml").write_text(
        "roles:\n  internal:\n    - attribute: organisation\n      value: Example AI Labs\n"
    )
    shutil.rmtree(folder / "tests")
    report = replay([(7, old)], load_policy(folder), ROUTES)
    assert (report.replayed, report.changed, report.skipped) == (1, 0, {})


def test_what_the_policy_did_not_decide_is_counted_not_replayed(example: Policy) -> None:
    caller = person("US CAISI", ("US",))
    records = [
        (0, _record(example, caller, "muse-1", reason="request.ambiguous_number", decision="deny")),
        (1, _record(example, caller, "muse-1", model=None, reason="request.invalid_json")),
        (2, _record(example, caller, "muse-1", kind="auth_failure")),
        (3, _record(example, caller, "muse-1", route="/v1/models")),
        (4, _record(example, caller, "muse-1", time="yesterday")),
    ]
    report = replay(records, example, ROUTES)
    assert report.examined == 3
    assert {reason: s.count for reason, s in report.skipped.items()} == {
        "not decided by the policy (request.ambiguous_number)": 1,
        "no principal or model (request.invalid_json)": 1,
        "malformed record: the recorded time is not RFC 3339": 1,
    }


def test_an_unrouted_model_stays_unrouted_unless_the_policy_now_refuses_it(
    example: Policy, tmp_path: Path
) -> None:
    caller = person("Globex Corp", ("US",), "ca:corp")
    unrouted = _record(
        example, caller, "muse-1", reason="model.unrouted", decision="deny", status=404
    )
    assert replay([(0, unrouted)], example, ROUTES).changed == 0
    folder = tmp_path / "policy"
    shutil.copytree(EXAMPLE, folder)
    with (folder / "suspensions.yaml").open("a") as file:
        file.write("  - model: muse-1\n    reason: test\n    since: 2026-01-01T00:00:00Z\n")
    report = replay([(0, unrouted)], load_policy(folder), ROUTES)
    [change] = report.sorted_changes()
    assert (change.old, change.new, change.count) == ("model.unrouted", "suspended.model", 1)


def test_a_change_of_grant_alone_is_a_change(example: Policy) -> None:
    evaluator = person("US CAISI", ("US",), roles=("evaluator",))
    record = _record(example, evaluator, "muse-spark-2", time="2026-12-20T12:00:00.000000Z")
    record.update(decision="allow", reason="allow.grant", grant_id="an-older-grant")
    [change] = replay([(0, record)], example, ROUTES).sorted_changes()
    assert (change.old, change.new) == (
        "allow.grant[an-older-grant]",
        "allow.grant[caisi-muse-spark-2-eval]",
    )


def test_a_request_a_limit_refused_changes_only_if_the_policy_now_refuses_it(
    example: Policy, tmp_path: Path
) -> None:
    caller = person("US CAISI", ("US",))
    limited = [
        (i, _record(example, caller, "muse-1", reason=reason, decision="deny", status=429))
        for i, reason in enumerate(("quota.tokens_exhausted", "rate_limited.principal"))
    ]
    report = replay(limited, example, ROUTES)
    assert (report.replayed, report.changed, report.skipped) == (2, 0, {})
    folder = tmp_path / "policy"
    shutil.copytree(EXAMPLE, folder)
    with (folder / "suspensions.yaml").open("a") as file:
        file.write("  - organisation: US CAISI\n    reason: t\n    since: 2026-01-01T00:00:00Z\n")
    changes = replay(limited, load_policy(folder), ROUTES).sorted_changes()
    assert sorted((c.old, c.new, c.count) for c in changes) == [
        ("quota.tokens_exhausted", "suspended.organisation", 1),
        ("rate_limited.principal", "suspended.organisation", 1),
    ]


def test_a_limited_request_served_under_another_grant_is_a_change(example: Policy) -> None:
    evaluator = person("US CAISI", ("US",), roles=("evaluator",))
    record = _record(example, evaluator, "muse-spark-2", time="2026-12-20T12:00:00.000000Z")
    record.update(decision="deny", reason="quota.tokens_exhausted", grant_id="an-older-grant")
    [change] = replay([(0, record)], example, ROUTES).sorted_changes()
    assert (change.old, change.new) == ("quota.tokens_exhausted", "allow.grant")
