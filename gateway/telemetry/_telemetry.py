"""`Telemetry`: what the request path, the control routes and the quota code record.

The request path calls `request()` once per inference request and `call()` once per
control-plane call. Those add to plain counters and bucket lists (a few hundred
nanoseconds); once a second, on the event loop, `publish()` adds them to the
Prometheus metrics and samples the gauges (audit queue, upstreams, policy) from their
`Sources`. So the cost per request stays small in multiprocess mode, where each
Prometheus update writes to a shared file, and values on /metrics are at most a second
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from gateway.audit import AuditStatistics
from gateway.policy import Decision, Policy
from gateway.telemetry._labels import (
    NAME_PATTERN,
    OTHER,
    REASON_PATTERN,
    BoundedLabel,
    PolicyLabels,
)
from gateway.telemetry._metrics import STAGE_BUCKETS, STAGES, GatewayMetrics, add_to_histogram
from gateway.telemetry._settings import MetricsSettings, TracingSettings

__all__ = ["PUBLISH_INTERVAL", "RequestView", "Sources", "Telemetry"]

PUBLISH_INTERVAL = 1.0
"""Seconds between two publications of the counts to the Prometheus metrics."""

MAX_REASONS = 256
"""Distinct reason codes one process labels; further ones are counted as `other`."""

MAX_WITNESSES = 32

QUOTA_KINDS = ("requests", "tokens")

_BOUNDS_NS = [round(bound * 1e9) for bound in STAGE_BUCKETS]
_STAGE_INDEX = {stage: index for index, stage in enumerate(STAGES)}
_TOTAL = _STAGE_INDEX["total"]


class RequestView(Protocol):
    """What `Telemetry.request` reads of an inference request once it has been answered.

    `stages` holds `(stage, start, end)` in `time.perf_counter_ns()`, for the stages of
    `STAGES` the request went through; `organisation` is the trusted one, if any.
    """

    @property
    def route(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def model(self) -> str | None: ...
    @property
    def organisation(self) -> str | None: ...
    @property
    def decision(self) -> Decision | None: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def request_id(self) -> str: ...
    @property
    def stages(self) -> list[tuple[str, int, int]]: ...


@dataclass(frozen=True, slots=True)
class Sources:
    """Where the sampled gauges come from; each is read once per publication."""

    audit: Callable[[], AuditStatistics]
    audit_unavailable: Callable[[], str | None]
    upstreams: Callable[[], Mapping[str, bool]]
    policy: Callable[[], Policy]
    policy_reload_failed: Callable[[], bool]
    # Seconds each witness is behind (the oldest checkpoint it has not cosigned has
    # waited so long; 0 when caught up), by witness name.
    witness_lags: Callable[[], Mapping[str, float]] = dict
    # Shadow mode: requests compared, and the differences by (live reason, candidate
    # reason), both counted since start.
    shadow: Callable[[], tuple[int, Mapping[tuple[str, str], int]]] | None = None


class Telemetry:
    """One gateway process's metrics (when `metrics` is enabled) and traces (`tracing`).

    `routes`, `models` and `upstreams` are the label values allowed for those labels;
    `tracer` replaces the OTLP tracer built from `tracing` (tests).
    """

    def __init__(
        self,
        metrics: MetricsSettings,
        tracing: TracingSettings,
        *,
        routes: Iterable[str],
        models: Iterable[str],
        upstreams: Iterable[str] = (),
        logger: Any = None,
        tracer: Any = None,
    ) -> None:
        self.settings = metrics
        self.registry = CollectorRegistry()
        self._metrics = GatewayMetrics(self.registry) if metrics.enabled else None
        if tracer is None and tracing.enabled:
            from gateway.telemetry._tracing import Tracer

            tracer = Tracer(tracing)
        self._tracer = tracer
        self._active = self._metrics is not None or tracer is not None
        self._logger = logger
        self._routes = BoundedLabel(routes)
        self._models = BoundedLabel(models)
        self._upstreams = BoundedLabel(upstreams)
        self._reasons = BoundedLabel(pattern=REASON_PATTERN, limit=MAX_REASONS)
        self._kinds = BoundedLabel(QUOTA_KINDS)
        self._witnesses = BoundedLabel(pattern=NAME_PATTERN, limit=MAX_WITNESSES)
        self._policy_labels = PolicyLabels()
        self._sources: Sources | None = None
        self._task: asyncio.Task[None] | None = None
        # Counted since the last publication.
        self._requests: dict[tuple[str, int, str], int] = {}
        self._decisions: dict[tuple[str, str, str, str], int] = {}
        self._stage_counts = [[0] * (len(_BOUNDS_NS) + 1) for _ in STAGES]
        self._stage_sums = [0] * len(STAGES)
        self._reloads: dict[str, int] = {}
        self._quotas: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._witness_lags: dict[str, float] = {}
        # Already published: cumulative audit counters, the policy version shown.
        self._audit_published = (0, 0)
        self._shadow_published: tuple[int, dict[tuple[str, str], int]] = (0, {})
        self._policy_version: str | None = None
        self._failures: set[str] = set()

    @property
    def enabled(self) -> bool:
        """Whether this process keeps metrics."""
        return self._metrics is not None

    # -- recording (on the event loop) ---------------------------------------------

    def request(self, exchange: RequestView, started: int) -> None:
        """Count an answered inference request that began at `started` (perf_counter_ns)."""
        if not self._active:
            return
        try:
            self._request(exchange, started)
        except Exception as exc:  # noqa: BLE001 - metrics must never break a request
            self._failed("telemetry.request_failed", exc)

    def _request(self, exchange: RequestView, started: int) -> None:
        ended = time.perf_counter_ns()
        status = exchange.status if 100 <= exchange.status <= 599 else 0
        route = self._routes(exchange.route)
        reason = self._reasons(exchange.reason)
        decision = exchange.decision
        if self._metrics is not None:
            key = (route, status, reason)
            self._requests[key] = self._requests.get(key, 0) + 1
            if decision is not None:
                outcome = (
                    "allow" if decision.allowed else "deny",
                    self._reasons(decision.reason),
                    self._models(exchange.model),
                    self._policy_labels.organisation(exchange.policy, exchange.organisation),
                )
                self._decisions[outcome] = self._decisions.get(outcome, 0) + 1
            counts, sums = self._stage_counts, self._stage_sums
            for stage, since, until in exchange.stages:
                index = _STAGE_INDEX[stage]
                counts[index][bisect_left(_BOUNDS_NS, until - since)] += 1
                sums[index] += until - since
            counts[_TOTAL][bisect_left(_BOUNDS_NS, ended - started)] += 1
            sums[_TOTAL] += ended - started
        if self._tracer is not None:
            attributes: dict[str, Any] = {
                "http.request.method": "POST",
                "http.route": route,
                "http.response.status_code": status,
                "gateway.request_id": exchange.request_id,
                "gateway.reason": reason,
                "gateway.model": self._models(exchange.model),
            }
            if decision is not None:
                attributes["gateway.decision"] = "allow" if decision.allowed else "deny"
            self._tracer.request(exchange.stages, started, ended, attributes)

    def call(self, route: str | None, status: int, reason: str) -> None:
        """Count an answered control-plane call; `route` is the route's path template."""
        if self._metrics is None:
            return
        label = self._routes(route) if route is not None else OTHER  # no route matched
        key = (label, status if 100 <= status <= 599 else 0, self._reasons(reason))
        self._requests[key] = self._requests.get(key, 0) + 1

    def policy_reloaded(self, ok: bool) -> None:
        """Count a policy reload from files and its result."""
        result = "ok" if ok else "failed"
        self._reloads[result] = self._reloads.get(result, 0) + 1

    def quota_used(self, grant_id: str, kind: str, used: float, limit: float | None = None) -> None:
        """Report how much of a grant's quota is used (`kind`: requests or tokens).

        Call it with the grant's total as the quota counter knows it (shared by every
        process), whenever it changes; `limit` is the quota over the grant's window.
        A grant the current policy does not name is reported as `other`. Cheap (a
        dictionary write; published with the rest once a second); ignored before the
        gateway has started.
        """
        if self._metrics is None or self._sources is None:
            return
        grant = self._policy_labels.grant(self._sources.policy(), grant_id)
        self._quotas[(grant, self._kinds(kind))] = (used, limit)

    def witness_lag(self, witness: str, seconds: float) -> None:
        """Report how many seconds `witness` is behind (beside `Sources.witness_lags`)."""
        if self._metrics is not None:
            self._witness_lags[self._witnesses(witness)] = seconds

    def _sample_shadow(
        self,
        metrics: GatewayMetrics,
        evaluations: int,
        differences: Mapping[tuple[str, str], int],
    ) -> None:
        published, by_outcome = self._shadow_published
        if evaluations > published:
            metrics.shadow_evaluations.inc(evaluations - published)
        for outcome, count in differences.items():
            if count > by_outcome.get(outcome, 0):
                live, candidate = (self._reasons(reason) for reason in outcome)
                metrics.shadow_differences.labels(live, candidate).inc(
                    count - by_outcome.get(outcome, 0)
                )
        self._shadow_published = (evaluations, dict(differences))

    # -- publishing ------------------------------------------------------------------

    async def start(self, sources: Sources) -> None:
        """Publish once now, then every `PUBLISH_INTERVAL` until `stop()`."""
        self._sources = sources
        if self._metrics is None:
            return
        self._metrics.processes.set(1)
        self.publish()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="telemetry")

    async def stop(self) -> None:
        """Publish what was counted last and flush the traces."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self.publish()
        if self._tracer is not None:
            await asyncio.to_thread(self._tracer.shutdown)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            try:
                self.publish()
            except Exception as exc:  # noqa: BLE001 - metrics must never stop the gateway
                self._failed("telemetry.publish_failed", exc)

    def _failed(self, event: str, exc: Exception) -> None:
        """Log a failure once per kind (the type only: no request content)."""
        if event not in self._failures and self._logger is not None:
            self._logger.error(event, error=type(exc).__name__)
        self._failures.add(event)

    def publish(self) -> None:
        """Add what was counted since the last call to the metrics; sample the gauges."""
        metrics = self._metrics
        if metrics is None:
            return
        requests, self._requests = self._requests, {}
        for (route, status, reason), count in requests.items():
            metrics.requests.labels(route, str(status), reason).inc(count)
        decisions, self._decisions = self._decisions, {}
        for labels, count in decisions.items():
            metrics.decisions.labels(*labels).inc(count)
        for index, stage in enumerate(STAGES):
            counts = self._stage_counts[index]
            if any(counts):
                self._stage_counts[index] = [0] * len(counts)
                total, self._stage_sums[index] = self._stage_sums[index], 0
                add_to_histogram(metrics.stage_seconds.labels(stage), counts, total / 1e9)
        reloads, self._reloads = self._reloads, {}
        for result, count in reloads.items():
            metrics.policy_reloads.labels(result).inc(count)
        quotas, self._quotas = self._quotas, {}
        for (grant, kind), (used, limit) in quotas.items():
            metrics.quota_used.labels(grant, kind).set(used)
            if limit is not None:
                metrics.quota_limit.labels(grant, kind).set(limit)
        lags, self._witness_lags = self._witness_lags, {}
        if self._sources is not None:
            lags = {
                **{self._witnesses(w): v for w, v in self._sources.witness_lags().items()},
                **lags,
            }
        for witness, seconds in lags.items():
            metrics.witness_lag.labels(witness).set(seconds)
        if self._sources is not None:
            self._sample(metrics, self._sources)

    def _sample(self, metrics: GatewayMetrics, sources: Sources) -> None:
        if sources.shadow is not None:
            self._sample_shadow(metrics, *sources.shadow())
        statistics = sources.audit()
        metrics.audit_queue.set(statistics.queued)
        metrics.audit_last_batch.set(statistics.last_batch)
        batches, records = self._audit_published
        if statistics.batches > batches:
            metrics.audit_batches.inc(statistics.batches - batches)
        if statistics.records > records:
            metrics.audit_batch_records.inc(statistics.records - records)
        self._audit_published = (statistics.batches, statistics.records)
        metrics.audit_available.set(0 if sources.audit_unavailable() is not None else 1)
        for name, reachable in sources.upstreams().items():
            metrics.upstream_up.labels(self._upstreams(name)).set(1 if reachable else 0)
        version = sources.policy().version
        if version != self._policy_version:
            if self._policy_version is not None:
                metrics.policy_info.labels(self._policy_version).set(0)
                metrics.policy_info.remove(self._policy_version)
            metrics.policy_info.labels(version).set(1)
            self._policy_version = version
        metrics.policy_reload_success.set(0 if sources.policy_reload_failed() else 1)
