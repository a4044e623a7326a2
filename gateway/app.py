"""Wiring: `build_app(settings)` builds every component and returns the ASGI app.

The inference routes are dispatched straight to a plain ASGI callable; everything else
goes through a small Starlette app, which also runs the lifespan (start the audit log,
the upstream pools and the policy watcher; stop them in reverse order).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from starlette.applications import Starlette

from gateway.audit import AuditLog, BodyDigest
from gateway.audit.keys import load_hmac_key
from gateway.candidate import ShadowPolicy
from gateway.control import routes
from gateway.dynamic import ControlStore, LiveControl, open_channel
from gateway.handshakes import HandshakeEvidence
from gateway.identity import Authenticator, HandshakeFailureLimiter
from gateway.inference import INFERENCE_PATHS, InferenceEndpoint
from gateway.logs import get_logger
from gateway.policy import (
    PolicyHolder,
    PolicyWatcher,
    ReloadOutcome,
    check_approver_pin,
    load_policy,
)
from gateway.proxy import AssertionSigner, Forwarder, ModelRewrite, UpstreamPool
from gateway.quotas import QuotaLimiter
from gateway.readiness import UpstreamProbe
from gateway.records import event_record
from gateway.responses import Receive, Scope, Send
from gateway.settings import Settings
from gateway.state import Gateway
from gateway.telemetry import MetricsListener, Sources, Telemetry
from gateway.witness import WitnessSubmitter
from gateway.workers import supervised


class GatewayApp:
    """The ASGI application: inference paths go straight to the forwarding pipeline.

    `handshakes` records the TLS handshakes the server refuses (see `gateway.server`).
    """

    def __init__(self, gateway: Gateway, control: Starlette, handshakes: HandshakeEvidence) -> None:
        self.gateway = gateway
        self.control = control
        self.handshakes = handshakes
        self.inference = InferenceEndpoint(gateway)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in INFERENCE_PATHS:
            await self.inference(scope, receive, send)
        else:
            await self.control(scope, receive, send)


def build_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    http: httpx.AsyncClient | None = None,
) -> GatewayApp:
    """Build a gateway from `settings`; `clock` (epoch seconds) drives every decision."""
    logger = get_logger()
    control_client = http or httpx.AsyncClient(timeout=httpx.Timeout(5.0))
    policy = load_policy(settings.policy.directory)
    check_approver_pin(policy, settings.policy.approvers_sha256, str(settings.policy.directory))
    holder = PolicyHolder(policy)
    audit = AuditLog(settings.audit, clock=clock)
    pool = UpstreamPool(list(settings.upstreams))
    digests = BodyDigest(load_hmac_key(settings.audit.hmac_key))
    control_routes = routes()
    probe = UpstreamProbe(settings.upstreams, settings.readiness, logger)
    telemetry = Telemetry(
        settings.metrics,
        settings.tracing,
        routes=[
            *INFERENCE_PATHS,
            *(
                path
                for path in (getattr(route, "path", "") for route in control_routes)
                if path and not path.startswith("/{")
            ),
        ],
        models=settings.routes,
        upstreams=[u.name for u in settings.upstreams],
        logger=logger,
    )
    # With --workers the supervisor serves every worker's metrics; each worker only writes.
    listener = (
        MetricsListener(
            settings.metrics.host,
            settings.metrics.port,
            telemetry.registry,
            store=settings.audit.store,
        )
        if settings.metrics.host is not None and not supervised()
        else None
    )
    gateway = Gateway(
        authenticator=Authenticator(
            settings.identity,
            http=control_client,
            require_certificate=settings.tls.client_certificates == "required",
        ),
        policies=holder,
        audit=audit,
        digests=digests,
        pool=pool,
        forwarder=Forwarder(pool, digests),
        routes=dict(settings.routes),
        upstreams={u.name: u for u in settings.upstreams},
        max_body_bytes=settings.max_body_bytes,
        clock=clock,
        probe=probe,
        inbound_headers=settings.inbound_headers.extended(
            [settings.identity.forwarded_certificate.header.decode("latin-1")]
            if settings.identity.forwarded_certificate is not None
            else []
        ),
        assertions=(
            AssertionSigner.from_settings(settings.identity_assertion)
            if settings.identity_assertion is not None
            else None
        ),
        model_rewrites={
            route.model: ModelRewrite(route.upstream_model, route.model)
            for route in settings.routes.values()
            if route.rewrite_response_model
        },
        issuer_sources={issuer.issuer: issuer.source for issuer in settings.identity.issuers},
        telemetry=telemetry,
        logger=logger,
        quotas=QuotaLimiter(
            settings.quotas,
            settings.quotas.counters(),
            logger,
            telemetry.quota_used,
            alone_among_workers=supervised() and settings.quotas.store is None,
        ),
        witnesses=WitnessSubmitter(settings.audit, logger=logger)
        if settings.audit.witnesses
        else None,
        shadow=ShadowPolicy(load_policy(settings.policy.shadow), logger=logger)
        if settings.policy.shadow is not None
        else None,
    )
    handshakes = HandshakeEvidence(
        HandshakeFailureLimiter(
            settings.tls.failure_records_per_peer, settings.tls.failure_records_overall
        ),
        gateway.record,
        clock,
        logger,
    )
    if gateway.witnesses is not None:
        audit.checkpoint_listeners.append(gateway.witnesses.checkpoint_signed)
    pending: set[asyncio.Task[Any]] = set()

    def on_reload(outcome: ReloadOutcome) -> None:
        telemetry.policy_reloaded(outcome.ok)
        record = event_record(
            clock(),
            "policy_reload",
            trigger=outcome.trigger,
            ok=outcome.ok,
            old_version=outcome.old_version,
            new_version=outcome.new_version,
            error=outcome.error,
            actor="file",
            files=[{"path": path, "sha256": digest or None} for path, digest in outcome.changed],
        )
        if outcome.ok:
            logger.info(
                "policy.reloaded",
                old=outcome.old_version,
                new=outcome.new_version,
                trigger=outcome.trigger,
            )
            _log_policy_warnings(holder, logger)
        else:
            logger.error(
                "policy.reload_failed",
                error=outcome.error,
                trigger=outcome.trigger,
                version=outcome.old_version,
            )
        task = asyncio.get_running_loop().create_task(gateway.record(record))
        pending.add(task)
        task.add_done_callback(pending.discard)
        if outcome.trigger == "sighup" and shadow_watcher is not None:
            shadow_task = asyncio.get_running_loop().create_task(shadow_watcher.reload("sighup"))
            pending.add(shadow_task)
            shadow_task.add_done_callback(pending.discard)

    watcher = PolicyWatcher(
        settings.policy.directory,
        holder,
        on_reload,
        watch_files=settings.policy.watch,
        approvers_sha256=settings.policy.approvers_sha256,
    )
    shadow_watcher = (
        PolicyWatcher(
            settings.policy.shadow,
            gateway.shadow.holder,
            _shadow_reloaded(logger),
            watch_files=settings.policy.watch,
            signals=False,  # one SIGHUP handler per process: the live watcher's
        )
        if gateway.shadow is not None and settings.policy.shadow is not None
        else None
    )

    async def start_control() -> None:
        # Run-time objects live beside the audit log, in the same database.
        store = await asyncio.to_thread(ControlStore, settings.audit.store)
        gateway.control = LiveControl(
            store,
            open_channel(settings.audit.store, logger=logger),
            holder,
            logger=logger,
            clock=clock,
            policy_directory=settings.policy.directory,
        )
        await gateway.control.start()
        if gateway.shadow is not None:
            control = gateway.control
            gateway.shadow.overlay = (lambda: control.objects_version, control.overlay_onto)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await audit.start()
        try:
            await start_control()
            if gateway.witnesses is not None:
                await gateway.witnesses.start()
            await pool.start()
            await gateway.probe.start()
            await watcher.start()
            if shadow_watcher is not None:
                await shadow_watcher.start()
            await telemetry.start(
                Sources(
                    audit=audit.statistics,
                    audit_unavailable=lambda: audit.unavailable_reason,
                    upstreams=probe.reachability,
                    policy=lambda: holder.current,
                    policy_reload_failed=lambda: holder.last_error is not None,
                    shadow=gateway.shadow.counts if gateway.shadow is not None else None,
                    witness_lags=lambda: (
                        {name: lag.seconds for name, lag in gateway.witnesses.lag().items()}
                        if gateway.witnesses is not None
                        else {}
                    ),
                )
            )
            if listener is not None:
                try:
                    listener.start()
                except OSError:
                    logger.error(
                        "metrics.bind_failed", host=listener.host, port=listener.requested_port
                    )
                    raise
                _log_listener(listener, settings, logger)
            _check_routes(gateway, logger)
            # Objects built at start-up live as long as the process: keep the collector
            # from walking them again and again (a full pass stalls the loop for ~15 ms).
            gc.collect()
            gc.freeze()
            logger.info(
                "gateway.started",
                policy_version=holder.current.version,
                shadow_policy_version=gateway.shadow.holder.current.version
                if gateway.shadow is not None
                else None,
                models=sorted(gateway.routes),
            )
            _log_policy_warnings(holder, logger)
            yield
        finally:
            if listener is not None:
                listener.stop()
            await watcher.stop()
            if gateway.control is not None:
                await gateway.control.stop()
            if shadow_watcher is not None:
                await shadow_watcher.stop()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            await gateway.probe.stop()
            await pool.stop()
            await gateway.authenticator.aclose()
            if http is None:
                await control_client.aclose()
            await handshakes.close()  # its summaries are records: before the log stops
            await gateway.quotas.close()
            await telemetry.stop()
            await audit.stop()
            if gateway.witnesses is not None:
                # After the log: one last attempt to have its final checkpoint cosigned.
                await gateway.witnesses.stop()
            logger.info("gateway.stopped")

    control = Starlette(routes=control_routes, lifespan=lifespan)
    control.state.gateway = gateway
    return GatewayApp(gateway, control, handshakes)


def _shadow_reloaded(logger: Any) -> Callable[[ReloadOutcome], None]:
    """Log each reload of the shadow policy (never enforced, so not an audit record)."""

    def report(outcome: ReloadOutcome) -> None:
        if outcome.ok:
            logger.info(
                "policy.shadow_reloaded",
                old=outcome.old_version,
                new=outcome.new_version,
                trigger=outcome.trigger,
            )
        else:
            logger.error(
                "policy.shadow_reload_failed", error=outcome.error, trigger=outcome.trigger
            )

    return report


def _log_listener(listener: MetricsListener, settings: Settings, logger: Any) -> None:
    logger.info("metrics.listening", host=listener.host, port=listener.port)
    if not settings.metrics.loopback:
        logger.warning(
            "metrics.exposed",
            host=listener.host,
            detail="metrics are served without credentials beyond this host: restrict the "
            "network, or listen on 127.0.0.1 behind an authenticating proxy",
        )


def _check_routes(gateway: Gateway, logger: Any) -> None:
    """Say (once, at start) where the policy and the routing disagree."""
    policy_models = set(gateway.policies.current.models)
    routed = set(gateway.routes)
    for model in sorted(routed - policy_models):
        logger.warning(
            "model.not_in_policy",
            model=model,
            detail="routed but unknown to the policy: it will never be served",
        )
    for model in sorted(policy_models - routed):
        logger.warning(
            "model.not_routed", model=model, detail="in the policy but no upstream serves it"
        )


def _log_policy_warnings(holder: PolicyHolder, logger: Any) -> None:
    """What `gateway policy check` warns about, said once per policy loaded."""
    for warning in holder.current.warnings:
        logger.warning("policy.warning", detail=warning)
