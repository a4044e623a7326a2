"""`model_windows`: the release date and grant window of each model a caller may use,
and nothing about any other model."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.policy import Policy, model_windows, visible_models

from .conftest import at, person

EVALUATOR = person("US CAISI", ("US",))
INSIDE = at("2027-01-05T12:00:00+00:00")


def test_a_model_served_under_a_grant_shows_the_grant_window(example: Policy) -> None:
    windows = {window.model: window for window in model_windows(example, EVALUATOR, INSIDE)}

    frontier = windows["muse-spark-2"]
    assert frontier.release_at == at("2027-01-15T16:00:00+00:00")
    assert frontier.grant is not None
    assert (frontier.grant.id, frontier.grant.not_before, frontier.grant.not_after) == (
        "caisi-muse-spark-2-eval",
        at("2026-12-16T16:00:00+00:00"),
        at("2027-01-08T00:00:00+00:00"),
    )
    assert windows["muse-1"].grant is None
    assert windows["muse-1"].release_at == at("2026-03-01T00:00:00+00:00")


def test_a_model_the_caller_may_not_see_is_not_mentioned(example: Policy) -> None:
    customer = person("Globex Corp", ("US",), "ca:corp")
    before_the_window = at("2026-12-01T00:00:00+00:00")

    assert [w.model for w in model_windows(example, customer, INSIDE)] == ["muse-1"]
    assert [w.model for w in model_windows(example, EVALUATOR, before_the_window)] == ["muse-1"]


def test_after_release_no_grant_is_cited(example: Policy) -> None:
    after = at("2027-01-20T00:00:00+00:00")
    windows = {w.model: w.grant for w in model_windows(example, EVALUATOR, after)}
    assert windows == {"muse-1": None, "muse-spark-2": None}


@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    nationality=st.sampled_from(["US", "FR", "CN"]),
    organisation=st.sampled_from(["US CAISI", "Globex Corp", "Example AI Labs"]),
)
def test_windows_cover_exactly_the_visible_models(
    example: Policy, moment: datetime, nationality: str, organisation: str
) -> None:
    caller = person(organisation, (nationality,))
    windows = model_windows(example, caller, moment)

    assert [w.model for w in windows] == visible_models(example, caller, moment)
    for window in windows:
        if window.grant is not None:
            assert window.grant.not_before <= moment < window.grant.not_after


def test_a_naive_instant_lists_nothing(example: Policy) -> None:
    assert model_windows(example, EVALUATOR, datetime(2027, 1, 5, 12)) == []
