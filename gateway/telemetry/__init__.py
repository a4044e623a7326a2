"""Telemetry: Prometheus metrics on a listener of their own, and OpenTelemetry traces.

`Telemetry` is what the rest of the gateway records into (`request`, `call`,
`policy_reloaded`, `quota_used`, `witness_lag`); `MetricsListener` serves /metrics;
`MultiprocessDirectory` lets `gateway serve --workers N` add up its workers. Every
label value is bounded (`BoundedLabel`): no prompt, token or caller-chosen value ever
becomes a series. Docs: docs/configuration.md (`metrics`, `tracing`) and
docs/deployment.md (what an operator monitors).
"""

from ._exposition import (
    MULTIPROCESS_VARIABLE,
    AuditStoreCollector,
    MetricsListener,
    MultiprocessDirectory,
)
from ._labels import OTHER, BoundedLabel, policy_organisations
from ._metrics import STAGE_BUCKETS, STAGES
from ._settings import MetricsSettings, TracingSettings
from ._telemetry import PUBLISH_INTERVAL, RequestView, Sources, Telemetry

__all__ = [
    "MULTIPROCESS_VARIABLE",
    "OTHER",
    "PUBLISH_INTERVAL",
    "STAGES",
    "STAGE_BUCKETS",
    "AuditStoreCollector",
    "BoundedLabel",
    "MetricsListener",
    "MetricsSettings",
    "MultiprocessDirectory",
    "RequestView",
    "Sources",
    "Telemetry",
    "TracingSettings",
    "policy_organisations",
]
