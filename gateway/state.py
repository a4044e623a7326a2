"""Everything a running gateway holds, built once by `build_app` and never mutated
except by the atomic swaps it was designed for (the live policy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.audit import AuditError, AuditLog, BodyDigest
from gateway.dynamic import LiveControl
from gateway.identity import Authenticator
from gateway.logs import get_logger
from gateway.policy import PolicyHolder
from gateway.proxy import Forwarder, Route, UpstreamPool, UpstreamSettings
from gateway.readiness import UpstreamProbe
from gateway.records import PrincipalRecords
from gateway.telemetry import MetricsSettings, Telemetry, TracingSettings


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
    # Request headers never forwarded beyond the standard set (a configured certificate header).
    private_headers: frozenset[bytes] = frozenset()
    # Each configured token issuer (`iss`) and its source name (`oidc:<id>`).
    issuer_sources: dict[str, str] = field(default_factory=dict)
    principals: PrincipalRecords = field(default_factory=PrincipalRecords)
    # Objects added at run time (the admin API), once the lifespan has started them.
    control: LiveControl | None = None
    # Metrics and traces (off unless configured); see gateway.telemetry for what to record.
    telemetry: Telemetry = field(default_factory=_no_telemetry)
    logger: Any = field(default_factory=get_logger)

    async def record(self, record: dict[str, Any]) -> int | None:
        """Append a record; None (and a log line) when the audit log cannot write."""
        try:
            return await self.audit.append(record)
        except AuditError as exc:  # unavailable, or a record it refuses: either way, no record
            self.logger.error("audit.unavailable", kind=record.get("kind"), reason=exc.reason)
            return None
