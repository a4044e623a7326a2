"""Run-time objects laid over a file policy: a revocation closes a grant of its id,
whichever way it arrived, even when a replica stored the grant after it."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.policy import DynamicObjects, Grant, decide, load_policy
from tests.policy.conftest import EXAMPLE, person

AT = datetime(2027, 1, 5, 12, tzinfo=UTC)


def _grant(grant_id: str) -> Grant:
    return Grant(
        id=grant_id,
        organisation="Globex Corp",
        subjects=frozenset(),
        models=("muse-spark-2",),
        not_before=datetime(2026, 12, 20, tzinfo=UTC),
        not_after=datetime(2027, 1, 10, tzinfo=UTC),
        purpose="review",
        origin="api",
    )


def test_a_revocation_closes_a_run_time_grant_of_its_id() -> None:
    policy = load_policy(EXAMPLE)
    carol = person("Globex Corp", ("US",), "ca:corp", subject="carol")
    objects = DynamicObjects()
    objects.add("grant:globex-review", "d1", _grant("globex-review"))
    objects.add("grant:other", "d2", _grant("other"))
    opened = objects.apply(policy)
    assert decide(opened, carol, "model.invoke", "muse-spark-2", AT).allowed
    # Stored by another replica at the same moment as the grant: the grant stays closed.
    objects.add("revocation:globex-review", "d3", "globex-review")
    closed = objects.apply(policy)
    assert [g.id for g in closed.grants if g.origin == "api"] == ["other"]
    decision = decide(closed, carol, "model.invoke", "muse-spark-2", AT)
    assert decision.grant_id == "other"
    objects.add("revocation:other", "d4", "other")
    assert not decide(objects.apply(policy), carol, "model.invoke", "muse-spark-2", AT).allowed
