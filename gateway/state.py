"""Everything a running gateway holds, built once by `build_app` and never mutated
except by the atomic swaps it was designed for (the live policy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.audit import AuditError, AuditLog, BodyDigest
from gateway.candidate import ShadowPolicy
from gateway.dynamic import LiveControl
from gateway.identity import Authenticator
from gateway.logs import get_logger
from gateway.policy import PolicyHolder
from gateway.proxy import (
    AssertionSigner,
    Forwarder,
    InboundHeaders,
    ModelRewrite,
    Route,
    UpstreamPool,
    UpstreamSettings,
)
from gateway.quotas import MemoryCounters, QuotaLimiter, QuotaSettings
from gateway.readiness import UpstreamProbe
from gateway.records import PrincipalRecords
from gateway.telemetry import MetricsSettings, Telemetry, TracingSettings
from gateway.witness import WitnessSubmitter


def _no_telemetry() -> Telemetry:
    return Telemetry(MetricsSettings(), TracingSettings(), routes=(), models=())


@dataclass(slots=True)
class Gateway:
    """The components of one gateway instance and the clock they share."""

    authenticator: Authenticator
    policies: PolicyHolder
    audit: AuditLog
    digests: BodyDigest
    pool: UpstreamPool
    forwarder: Forwarder
    routes: dict[str, Route]
    upstreams: dict[str, UpstreamSettings]
    max_body_bytes: int
    clock: Callable[[], float]
    probe: UpstreamProbe
    # Request headers never forwarded: the identity family, the settings' additions and a
    # configured certificate header.
    inbound_headers: InboundHeaders = field(default_factory=InboundHeaders)
    # Signs identity assertions for upstreams that ask for them (None: not configured).
    assertions: AssertionSigner | None = None
    # Per public model id whose answers get the public id in `"model"`.
    model_rewrites: dict[str, ModelRewrite] = field(default_factory=dict)
    # Each configured token issuer (`iss`) and its source name (`oidc:<id>`).
    issuer_sources: dict[str, str] = field(default_factory=dict)
    principals: PrincipalRecords = field(default_factory=PrincipalRecords)
    quotas: QuotaLimiter = field(
        default_factory=lambda: QuotaLimiter(QuotaSettings(), MemoryCounters(), get_logger())
    )
    # Objects added at run time (the admin API), once the lifespan has started them.
    control: LiveControl | None = None
    # Metrics and traces (off unless configured); see gateway.telemetry for what to record.
    telemetry: Telemetry = field(default_factory=_no_telemetry)
    logger: Any = field(default_factory=get_logger)
    # Submits signed checkpoints to the configured witnesses; `witnesses.lag()` says how
    # far behind each one is (for metrics; /readyz shows it without turning unready).
    witnesses: WitnessSubmitter | None = None
    # The candidate policy of shadow mode; `shadow.differences` counts the inference
    # requests it would have decided otherwise (for metrics).
    shadow: ShadowPolicy | None = None

    async def record(self, record: dict[str, Any]) -> int | None:
        """Append a record; None (and a log line) when the audit log cannot write."""
        try:
            return await self.audit.append(record)
        except AuditError as exc:  # unavailable, or a record it refuses: either way, no record
            self.logger.error("audit.unavailable", kind=record.get("kind"), reason=exc.reason)
            return None
