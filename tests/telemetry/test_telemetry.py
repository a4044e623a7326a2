"""Telemetry in one process: what a request adds to the metrics, published once a second,
with every label bounded whatever the caller sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gateway.audit import AuditStatistics
from gateway.policy import Decision, Policy, load_policy
from gateway.telemetry import (
    OTHER,
    STAGE_BUCKETS,
    MetricsSettings,
    Sources,
    Telemetry,
    TracingSettings,
    policy_organisations,
)
from gateway.telemetry._telemetry import MAX_REASONS
from tests.harness import REPO
from tests.telemetry.samples import label_values, parse, total, value

CHAT = "/v1/chat/completions"
ON = MetricsSettings(host="127.0.0.1", port=0)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(REPO / "policies")


@dataclass
class Answered:
    """An answered inference request, as the request path hands it to `Telemetry.request`."""

    policy: Policy
    route: str = CHAT
    status: int = 200
    reason: str | None = "allow.released"
    model: str | None = "muse-1"
    organisation: str | None = "US CAISI"
    decision: Decision | None = None
    request_id: str = "req-1"
    stages: list[tuple[str, int, int]] = field(default_factory=list)


def telemetry(**kwargs: object) -> Telemetry:
    options: dict[str, object] = {"routes": [CHAT], "models": ["muse-1", "muse-spark-2"]}
    options.update(kwargs)
    return Telemetry(ON, TracingSettings(), **options)  # type: ignore[arg-type]


def scrape(recorder: Telemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    recorder.publish()
    return parse(generate_latest(recorder.registry).decode())


def a_decision(policy: Policy, reason: str = "allow.released", allowed: bool = True) -> Decision:
    return Decision(
        allowed=allowed,
        reason=reason,
        status=200 if allowed else 403,
        error_code=None,
        rules=(),
        grant_id=None,
        grant_not_after=None,
        obligations=(),
        policy_version=policy.version,
        roles=frozenset(),
    )


def test_requests_are_counted_by_route_status_and_reason_once_published(policy: Policy) -> None:
    recorder = telemetry()
    for _ in range(3):
        recorder.request(Answered(policy), started=0)
    recorder.request(Answered(policy, status=404, reason="model.unknown"), started=0)
    before = parse(generate_latest(recorder.registry).decode())
    assert (
        value(before, "gateway_requests_total", route=CHAT, status="200", reason="allow.released")
        == 0
    )
    samples = scrape(recorder)
    assert (
        value(samples, "gateway_requests_total", route=CHAT, status="200", reason="allow.released")
        == 3
    )
    assert (
        value(samples, "gateway_requests_total", route=CHAT, status="404", reason="model.unknown")
        == 1
    )
    again = scrape(recorder)  # published counts are not added twice
    assert total(again, "gateway_requests_total") == 4


def test_decisions_carry_outcome_reason_model_and_organisation(policy: Policy) -> None:
    recorder = telemetry()
    recorder.request(Answered(policy, decision=a_decision(policy)), started=0)
    denied = a_decision(policy, "nationality.denied", allowed=False)
    recorder.request(Answered(policy, status=403, decision=denied, model="muse-spark-2"), started=0)
    samples = scrape(recorder)
    allowed = {"decision": "allow", "reason": "allow.released", "model": "muse-1"}
    assert value(samples, "gateway_decisions_total", **allowed, organisation="US CAISI") == 1
    refused = {"decision": "deny", "reason": "nationality.denied", "model": "muse-spark-2"}
    assert value(samples, "gateway_decisions_total", **refused, organisation="US CAISI") == 1


def test_stage_histograms_publish_exactly_what_direct_observation_gives(policy: Policy) -> None:
    durations = [0, 5_000, 10_000, 10_001, 2_500_000, 999_999_999, 400 * 10**9]
    recorder = telemetry()
    for took in durations:
        recorder.request(Answered(policy, stages=[("policy", 100, 100 + took)]), started=0)
    published = scrape(recorder)
    reference = CollectorRegistry()
    direct = Histogram(
        "gateway_stage_duration_seconds", "", ["stage"], buckets=STAGE_BUCKETS, registry=reference
    )
    for took in durations:
        direct.labels("policy").observe(took / 1e9)
    expected = parse(generate_latest(reference).decode())
    for bound in [*STAGE_BUCKETS, float("inf")]:
        le = "+Inf" if bound == float("inf") else str(bound)
        assert value(
            expected, "gateway_stage_duration_seconds_bucket", stage="policy", le=le
        ) == value(published, "gateway_stage_duration_seconds_bucket", stage="policy", le=le), le
    assert value(published, "gateway_stage_duration_seconds_count", stage="policy") == len(
        durations
    )
    assert value(published, "gateway_stage_duration_seconds_sum", stage="policy") == pytest.approx(
        value(expected, "gateway_stage_duration_seconds_sum", stage="policy")
    )
    # Every request also counts toward the total stage.
    assert value(published, "gateway_stage_duration_seconds_count", stage="total") == len(durations)


def test_caller_chosen_models_paths_and_reasons_never_add_series(policy: Policy) -> None:
    recorder = telemetry()
    for number in range(2 * MAX_REASONS):
        recorder.request(
            Answered(
                policy,
                route=f"/v1/chat/completions/../{number}",
                status=404,
                reason=f"model.unknown{number}",
                model=f"gpt-attacker-{number}",
                organisation=f"Org {number}",
                decision=a_decision(policy, "model.unknown", allowed=False),
            ),
            started=0,
        )
    samples = scrape(recorder)
    assert label_values(samples, "gateway_requests_total", "route") == {OTHER}
    assert label_values(samples, "gateway_decisions_total", "model") == {OTHER}
    assert label_values(samples, "gateway_decisions_total", "organisation") == {OTHER}
    reasons = label_values(samples, "gateway_requests_total", "reason")
    reasons |= label_values(samples, "gateway_decisions_total", "reason")
    assert len(reasons) == MAX_REASONS + 1  # the first MAX_REASONS codes, then "other"
    assert OTHER in reasons
    assert total(samples, "gateway_requests_total") == 2 * MAX_REASONS


@settings(max_examples=200, deadline=None)
@given(reason=st.text(max_size=300), model=st.text(max_size=300))
def test_a_label_is_a_known_value_a_reason_code_or_other(reason: str, model: str) -> None:
    policy = load_policy(REPO / "policies")
    recorder = telemetry()
    recorder.request(
        Answered(policy, reason=reason, model=model, decision=a_decision(policy, reason)), started=0
    )
    samples = scrape(recorder)
    (seen,) = label_values(samples, "gateway_requests_total", "reason")
    assert seen == OTHER or (seen == reason and len(reason) <= 129 and reason.isascii())
    assert label_values(samples, "gateway_decisions_total", "model") <= {
        "muse-1",
        "muse-spark-2",
        OTHER,
    }


def test_untrusted_or_unknown_organisations_are_not_labels(policy: Policy) -> None:
    assert "US CAISI" in policy_organisations(policy)
    recorder = telemetry()
    recorder.request(Answered(policy, organisation=None, decision=a_decision(policy)), started=0)
    recorder.request(
        Answered(policy, organisation="Evil Corp", decision=a_decision(policy)), started=0
    )
    samples = scrape(recorder)
    assert label_values(samples, "gateway_decisions_total", "organisation") == {"none", OTHER}


def test_control_calls_are_counted_under_their_route_template(policy: Policy) -> None:
    recorder = telemetry(routes=[CHAT, "/v1/models/{model:path}"])
    recorder.call("/v1/models/{model:path}", 404, "model.unknown")
    recorder.call(None, 404, "route.unknown")  # no route matched: a path the caller made up
    samples = scrape(recorder)
    templates = label_values(samples, "gateway_requests_total", "route")
    assert templates == {"/v1/models/{model:path}", OTHER}


def _sources(policy: Policy, statistics: AuditStatistics, reachable: Mapping[str, bool]) -> Sources:
    return Sources(
        audit=lambda: statistics,
        audit_unavailable=lambda: None,
        upstreams=lambda: reachable,
        policy=lambda: policy,
        policy_reload_failed=lambda: False,
    )


async def test_gauges_follow_their_sources_and_counters_add_only_what_is_new(
    policy: Policy,
) -> None:
    statistics = AuditStatistics(
        queued=3,
        batches=2,
        records=9,
        last_batch=4,
        tree_size=9,
        signed_size=5,
        checkpoint_time=None,
    )
    recorder = telemetry(upstreams=["demo"])
    await recorder.start(_sources(policy, statistics, {"demo": True, "unconfigured": False}))
    await recorder.stop()
    samples = scrape(recorder)
    assert value(samples, "gateway_audit_queue_depth") == 3
    assert value(samples, "gateway_audit_batches_total") == 2
    assert value(samples, "gateway_audit_batch_records_total") == 9
    assert value(samples, "gateway_audit_available") == 1
    assert value(samples, "gateway_upstream_up", upstream="demo") == 1
    assert value(samples, "gateway_upstream_up", upstream=OTHER) == 0
    assert value(samples, "gateway_policy_info", version=policy.version) == 1
    assert value(samples, "gateway_policy_last_reload_success") == 1
    assert value(samples, "gateway_processes") == 1


async def test_a_new_policy_version_replaces_the_old_one(policy: Policy) -> None:
    current = [policy]
    statistics = AuditStatistics(0, 0, 0, 0, 0, 0, None)
    recorder = telemetry()
    sources = dataclasses.replace(_sources(policy, statistics, {}), policy=lambda: current[0])
    await recorder.start(sources)
    newer = load_policy(REPO / "policies")
    current[0] = newer.with_dynamic((), (), {}, frozenset(), "dynamic-1")
    assert current[0].version != policy.version
    samples = scrape(recorder)
    await recorder.stop()
    assert label_values(samples, "gateway_policy_info", "version") == {current[0].version}


async def test_quota_use_is_labelled_by_grants_the_policy_names(policy: Policy) -> None:
    statistics = AuditStatistics(0, 0, 0, 0, 0, 0, None)
    recorder = telemetry()
    await recorder.start(_sources(policy, statistics, {}))
    grant = policy.grants[0].id
    recorder.quota_used(grant, "tokens", 1200, limit=50000)
    recorder.quota_used("not-a-grant", "tokens", 7)
    recorder.quota_used(grant, "bananas", 1)
    samples = scrape(recorder)
    await recorder.stop()
    assert value(samples, "gateway_quota_used", grant=grant, kind="tokens") == 1200
    assert value(samples, "gateway_quota_limit", grant=grant, kind="tokens") == 50000
    assert value(samples, "gateway_quota_used", grant=OTHER, kind="tokens") == 7
    assert value(samples, "gateway_quota_used", grant=grant, kind=OTHER) == 1


def test_witness_lag_is_reported_per_witness(policy: Policy) -> None:
    recorder = telemetry()
    recorder.witness_lag("witness.example", 12.5)
    recorder.witness_lag("not a name/../", 1)
    samples = scrape(recorder)
    assert value(samples, "gateway_witness_lag_seconds", witness="witness.example") == 12.5
    assert value(samples, "gateway_witness_lag_seconds", witness=OTHER) == 1


def test_without_metrics_nothing_is_kept(policy: Policy) -> None:
    recorder = Telemetry(MetricsSettings(), TracingSettings(), routes=[CHAT], models=["muse-1"])
    recorder.request(Answered(policy, decision=a_decision(policy)), started=0)
    recorder.publish()
    assert not recorder.enabled
    assert "gateway_requests" not in generate_latest(recorder.registry).decode()


def test_a_failure_to_count_never_breaks_the_request(policy: Policy) -> None:
    lines: list[tuple[str, dict[str, object]]] = []

    class Lines:
        def error(self, event: str, **fields: object) -> None:
            lines.append((event, fields))

    recorder = telemetry(logger=Lines())
    unknown_stage = Answered(policy, stages=[("no-such-stage", 0, 1)])
    recorder.request(unknown_stage, started=0)
    recorder.request(unknown_stage, started=0)
    assert lines == [("telemetry.request_failed", {"error": "KeyError"})]
