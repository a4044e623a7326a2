"""Telemetry benchmark: what metrics (and traces) cost per request, in process.

Times exactly what the request path adds: the stage marks (`_Exchange.stage`, one
`perf_counter_ns` and a list append each), one `Telemetry.request()` per request, one
`Telemetry.call()` per control-plane call, and the once-a-second `publish()` spread
over the requests of that second (assumed: 1,000 requests a second). Run in one
process (an in-memory registry, `gateway serve`) and in prometheus-client's
multiprocess mode (what each worker of `gateway serve --workers N` writes). For
comparison: the same request recorded straight into prometheus-client (one `inc` per
counter and one `observe` per stage), which is what publishing once a second avoids.
Target (issue 11): metrics and quotas together <= 10 us per request.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.policy import Decision, Policy, load_policy  # noqa: E402
from gateway.telemetry import (  # noqa: E402
    STAGE_BUCKETS,
    MetricsSettings,
    Telemetry,
    TracingSettings,
)

CHAT = "/v1/chat/completions"
REQUESTS = 20_000
PER_PUBLISH = 1_000
ROUNDS = 7


@dataclass(slots=True)
class Exchange:
    """The fields `Telemetry.request` reads, with the request path's own `stage()`."""

    policy: Policy
    route: str
    status: int
    reason: str | None
    model: str | None
    organisation: str | None
    decision: Decision | None
    request_id: str
    stages: list[tuple[str, int, int]] = field(default_factory=list)

    def stage(self, name: str, since: int) -> int:
        now = time.perf_counter_ns()
        self.stages.append((name, since, now))
        return now


def _decision(policy: Policy, allowed: bool, reason: str) -> Decision:
    return Decision(
        allowed, reason, 200 if allowed else 403, None, (), None, None, (), policy.version,
        frozenset(),
    )  # fmt: skip


def _mix(policy: Policy) -> list[tuple[int, str, Decision | None]]:
    """18 served, 1 refused by the policy, 1 unauthenticated in every 20."""
    allow = _decision(policy, True, "allow.role")
    deny = _decision(policy, False, "nationality.denied")
    return [(200, "allow.role", allow)] * 18 + [
        (403, "nationality.denied", deny),
        (401, "credentials.missing", None),
    ]


def run_requests(telemetry: Telemetry, policy: Policy, count: int) -> float:
    """Microseconds per request of the stage marks, request() and amortised publish()."""
    mix = _mix(policy)
    spent = 0
    for number in range(count):
        status, reason, decision = mix[number % len(mix)]
        exchange = Exchange(policy, CHAT, status, reason, "muse-1", "US CAISI", decision, "r")
        started = time.perf_counter_ns()
        since = exchange.stage("authentication", started)
        if decision is not None:
            since = exchange.stage("policy", since)
        since = exchange.stage("audit", since)
        if status == 200:
            exchange.stage("upstream", since)
            exchange.stages.append(("upstream_first_byte", since, since + 1000))
        telemetry.request(exchange, started)
        if number % PER_PUBLISH == PER_PUBLISH - 1:
            telemetry.publish()
        spent += time.perf_counter_ns() - started
    return spent / count / 1000


def run_calls(telemetry: Telemetry, count: int) -> float:
    started = time.perf_counter_ns()
    for number in range(count):
        telemetry.call("/v1/models", 200, "models.list")
        if number % PER_PUBLISH == PER_PUBLISH - 1:
            telemetry.publish()
    return (time.perf_counter_ns() - started) / count / 1000


def run_direct(count: int) -> float:
    """The same request recorded straight into prometheus-client, for comparison."""
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    requests = Counter("r", "", ["route", "status", "reason"], registry=registry)
    decisions = Counter("d", "", ["decision", "reason", "model", "organisation"], registry=registry)
    stages = Histogram("s", "", ["stage"], buckets=STAGE_BUCKETS, registry=registry)
    started = time.perf_counter_ns()
    for _ in range(count):
        requests.labels(CHAT, "200", "allow.role").inc()
        decisions.labels("allow", "allow.role", "muse-1", "US CAISI").inc()
        for stage in (
            "authentication",
            "policy",
            "audit",
            "upstream_first_byte",
            "upstream",
            "total",
        ):
            stages.labels(stage).observe(0.0001)
    return (time.perf_counter_ns() - started) / count / 1000


class _DiscardingExporter:
    """A span exporter that drops spans: what building and queueing them costs."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def measure() -> dict[str, float]:
    policy = load_policy(ROOT / "policies")
    on = MetricsSettings(host="127.0.0.1", port=0)
    off = MetricsSettings()
    tracing = TracingSettings()

    def telemetry(metrics: MetricsSettings, tracer: Any = None) -> Telemetry:
        return Telemetry(
            metrics, tracing, routes=[CHAT, "/v1/models"], models=["muse-1"], tracer=tracer
        )

    results: dict[str, list[float]] = {"off": [], "metrics": [], "call": [], "direct": []}
    for _ in range(ROUNDS):
        results["off"].append(run_requests(telemetry(off), policy, REQUESTS))
        results["metrics"].append(run_requests(telemetry(on), policy, REQUESTS))
        results["call"].append(run_calls(telemetry(on), REQUESTS))
        results["direct"].append(run_direct(REQUESTS // 4))
    summary = {name: statistics.median(values) for name, values in results.items()}
    try:
        from gateway.telemetry._tracing import Tracer

        tracer = Tracer(TracingSettings(otlp_endpoint="http://127.0.0.1:9/v1/traces"),
                        exporter=_DiscardingExporter())  # fmt: skip
        traced = telemetry(on, tracer)
        summary["traced"] = statistics.median(
            run_requests(traced, policy, REQUESTS // 4) for _ in range(3)
        )
        tracer.shutdown()
    except ImportError:
        pass
    return summary


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(measure()))
        return
    single = measure()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as directory:
        child = subprocess.run(
            [sys.executable, __file__, "--child"],
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory},
            capture_output=True,
            text=True,
            check=True,
        )
    multi = json.loads(child.stdout)
    print(
        f"per inference request, {PER_PUBLISH} requests per publish (medians of {ROUNDS} rounds):"
    )
    print(f"  metrics off (stage marks only):        {single['off']:.2f} us")
    print(f"  metrics, one process:                  {single['metrics']:.2f} us")
    print(f"  metrics, multiprocess mode (workers):  {multi['metrics']:.2f} us")
    if "traced" in single:
        print(f"  metrics + traces (spans built, queued): {single['traced']:.2f} us")
    print(f"per control-plane call: {single['call']:.2f} us (one process), "
          f"{multi['call']:.2f} us (multiprocess)")  # fmt: skip
    print(f"for comparison, straight into prometheus-client: {single['direct']:.2f} us "
          f"(one process), {multi['direct']:.2f} us (multiprocess)")  # fmt: skip
    print("target (issue 11): metrics and quotas together <= 10 us per request")


if __name__ == "__main__":
    main()
