"""The gateway's Prometheus metrics: names, help, labels, buckets and multiprocess modes.

With `gateway serve --workers N` every worker writes its values to files in a private
directory (prometheus-client's multiprocess mode) and the supervisor serves the sum.
Each gauge says how the workers' values combine (`multiprocess_mode`): `livesum` for
amounts that add up (queued records), `livemin` for health (an upstream is up only if
every worker reaches it), `livemax`, `livemostrecent` for values read from a shared
source (quota counters). `live` modes drop a worker's value when it exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["STAGES", "STAGE_BUCKETS", "GatewayMetrics", "add_to_histogram"]

STAGES = ("authentication", "policy", "audit", "upstream_first_byte", "upstream", "total")
"""The stages of an inference request that are timed (`stage` label values)."""

STAGE_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
"""Upper bounds in seconds: from a cached policy decision (µs) to a long stream (minutes)."""


_Mode = Literal["livesum", "livemin", "livemax", "livemostrecent"]


class GatewayMetrics:
    """Every metric one gateway process writes, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, text: str, mode: _Mode, labels: Sequence[str] = ()) -> Gauge:
            return Gauge(name, text, labels, registry=registry, multiprocess_mode=mode)

        self.requests = Counter(
            "gateway_requests",
            "Requests answered, by route, HTTP status and reason code.",
            ["route", "status", "reason"],
            registry=registry,
        )
        self.decisions = Counter(
            "gateway_decisions",
            "Policy decisions on inference requests, by outcome, reason, model and organisation.",
            ["decision", "reason", "model", "organisation"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "gateway_stage_duration_seconds",
            "Time spent per stage of an inference request.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.policy_reloads = Counter(
            "gateway_policy_reloads",
            "Policy reloads from files, by result (ok, failed).",
            ["result"],
            registry=registry,
        )
        self.audit_batches = Counter(
            "gateway_audit_batches", "Audit batches committed.", registry=registry
        )
        self.audit_batch_records = Counter(
            "gateway_audit_batch_records",
            "Records committed in audit batches (divided by batches: the mean batch size).",
            registry=registry,
        )
        self.shadow_evaluations = Counter(
            "gateway_shadow_evaluations",
            "Inference requests the shadow (candidate) policy decided beside the live one.",
            registry=registry,
        )
        self.shadow_differences = Counter(
            "gateway_shadow_differences",
            "Requests the shadow policy decided otherwise, by live and candidate reason.",
            ["live_reason", "candidate_reason"],
            registry=registry,
        )
        self.processes = gauge("gateway_processes", "Gateway processes serving.", "livesum")
        self.audit_queue = gauge(
            "gateway_audit_queue_depth", "Audit records waiting to be written.", "livesum"
        )
        self.audit_last_batch = gauge(
            "gateway_audit_last_batch_size", "Records in the latest audit batch.", "livemax"
        )
        self.audit_available = gauge(
            "gateway_audit_available",
            "1 while the audit log can write (0 if any process cannot).",
            "livemin",
        )
        self.upstream_up = gauge(
            "gateway_upstream_up",
            "1 if the upstream's last probe connected (0 if any process failed to).",
            "livemin",
            ["upstream"],
        )
        self.policy_info = gauge(
            "gateway_policy_info",
            "1 for the policy version in force (its content hash), 0 for versions replaced since.",
            "livemax",
            ["version"],
        )
        self.policy_reload_success = gauge(
            "gateway_policy_last_reload_success",
            "1 unless the latest policy reload failed (0 if it failed in any process).",
            "livemin",
        )
        self.quota_used = gauge(
            "gateway_quota_used",
            "Quota used per grant and kind (requests, tokens), as last counted.",
            "livemostrecent",
            ["grant", "kind"],
        )
        self.quota_limit = gauge(
            "gateway_quota_limit",
            "Quota allowed per grant and kind over the grant's window.",
            "livemostrecent",
            ["grant", "kind"],
        )
        self.witness_lag = gauge(
            "gateway_witness_lag_seconds",
            "Age of the newest checkpoint each witness has cosigned.",
            "livemax",
            ["witness"],
        )
        child = self.stage_seconds.labels(STAGES[0])
        buckets = getattr(child, "_buckets", None)
        if (
            not isinstance(buckets, list)
            or len(buckets) != len(STAGE_BUCKETS) + 1
            or not hasattr(child, "_sum")
        ):
            raise RuntimeError("this prometheus-client's histograms are not the ones pinned")


def add_to_histogram(child: Histogram, counts: Sequence[int], total_seconds: float) -> None:
    """Add observations already sorted into buckets (`counts` per bucket, +Inf last).

    prometheus-client observes one value at a time, which costs microseconds per call in
    multiprocess mode; requests count into plain lists and are published here in one go.
    The histogram's bucket values are internal to prometheus-client (pinned; checked at
    start and by the tests).
    """
    buckets = child._buckets
    for index, count in enumerate(counts):
        if count:
            buckets[index].inc(count)
    child._sum.inc(total_seconds)
