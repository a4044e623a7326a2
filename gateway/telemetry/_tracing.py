"""OpenTelemetry traces over OTLP/HTTP: one trace per inference request, one span per stage.

The spans are built when the request has ended, from the stage timings the request
path takes anyway (`(stage, start, end)` in `perf_counter_ns`), so tracing adds nothing
while a request runs and nothing at all when it is off. The SDK and the exporter are
imported here only when tracing is configured: they are the `tracing` extra.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.telemetry._settings import TracingSettings

__all__ = ["SPAN_STAGES", "Tracer"]

SPAN_STAGES = frozenset({"authentication", "policy", "audit", "upstream"})


class Tracer:
    """Exports request traces to `settings.otlp_endpoint` (or to `exporter`, in tests)."""

    def __init__(self, settings: TracingSettings, *, exporter: Any = None) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # Headers (a collector's credential) come from OTEL_EXPORTER_OTLP_TRACES_HEADERS.
            exporter = OTLPSpanExporter(
                endpoint=settings.otlp_endpoint, timeout=settings.export_timeout_seconds
            )
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(root=TraceIdRatioBased(settings.sample_ratio)),
            shutdown_on_exit=False,
        )
        self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer("gateway")
        self._in_context = trace.set_span_in_context
        self._server = trace.SpanKind.SERVER
        self._client = trace.SpanKind.CLIENT
        self._internal = trace.SpanKind.INTERNAL
        self._error = trace.Status(trace.StatusCode.ERROR)

    def request(
        self,
        stages: list[tuple[str, int, int]],
        started: int,
        ended: int,
        attributes: dict[str, Any],
    ) -> None:
        """Export one request: a server span from `started` to `ended` with `attributes`,
        and a child span per timed stage (times in `perf_counter_ns`)."""
        offset = time.time_ns() - time.perf_counter_ns()
        root = self._tracer.start_span(
            f"POST {attributes['http.route']}",
            kind=self._server,
            start_time=started + offset,
            attributes=attributes,
        )
        if not root.is_recording():
            return
        if attributes["http.response.status_code"] >= 500:
            root.set_status(self._error)
        context = self._in_context(root)
        first_byte = None
        for name, since, until in stages:
            if name == "upstream_first_byte":
                first_byte = until - since
        for name, since, until in stages:
            if name not in SPAN_STAGES:
                continue
            span = self._tracer.start_span(
                name,
                context=context,
                kind=self._client if name == "upstream" else self._internal,
                start_time=since + offset,
            )
            if name == "upstream" and first_byte is not None:
                span.set_attribute("gateway.upstream.first_byte_ms", first_byte / 1e6)
            span.end(end_time=until + offset)
        root.end(end_time=ended + offset)

    def shutdown(self) -> None:
        """Export what is pending (up to the export timeout) and stop the exporter."""
        self._provider.shutdown()
