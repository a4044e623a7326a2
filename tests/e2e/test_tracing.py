"""OpenTelemetry traces from a real gateway to a small OTLP/HTTP collector on a real socket:
one trace per inference request, one span per stage, the request id as an attribute."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.e2e.audit_support import CHAT, chat
from tests.harness import REPO, Clock, gateway_settings, running_gateway
from tests.servers import serve_asgi


class Collector:
    """Receives OTLP/HTTP protobuf exports at /v1/traces and keeps every span."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.resources: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/traces", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        assert request.headers["content-type"] == "application/x-protobuf"
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            self.resources.append(_attributes(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        {
                            "name": span.name,
                            "trace": span.trace_id.hex(),
                            "id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": _attributes(span.attributes),
                        }
                    )
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )


def _attributes(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        found[pair.key] = getattr(pair.value, kind)
    return found


def _trace_of(spans: list[dict[str, Any]], request_id: str) -> list[dict[str, Any]]:
    (root,) = [s for s in spans if s["attributes"].get("gateway.request_id") == request_id]
    return [s for s in spans if s["trace"] == root["trace"]]


async def test_each_request_is_a_trace_with_a_span_per_stage(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    collector = Collector()
    async with serve_asgi(collector.app) as collector_url:
        overrides = {"tracing": {"otlp_endpoint": collector_url + "/v1/traces"}}
        async with running_gateway(tmp_path, pki, clock=clock, overrides=overrides) as gateway:
            served = await gateway.client("alice").post(CHAT, json=chat("muse-1"))
            refused = await gateway.client(None).post(CHAT, json=chat("muse-1"))
            assert (served.status_code, refused.status_code) == (200, 401)
        # Stopping the gateway exported what was pending.
    assert {"service.name": "model-access-gateway"}.items() <= collector.resources[0].items()

    trace = _trace_of(collector.spans, served.headers["x-request-id"])
    (root,) = [s for s in trace if s["parent"] == ""]
    assert root["name"] == f"POST {CHAT}"
    assert root["attributes"]["http.response.status_code"] == 200
    assert root["attributes"]["gateway.decision"] == "allow"
    assert root["attributes"]["gateway.model"] == "muse-1"
    stages = {s["name"]: s for s in trace if s is not root}
    assert set(stages) == {"authentication", "policy", "audit", "upstream"}
    for span in stages.values():
        assert span["parent"] == root["id"]
        assert root["start"] <= span["start"] <= span["end"] <= root["end"]
    # The stages follow each other: identity, policy, the durable record, then the upstream.
    order = sorted(stages.values(), key=lambda span: span["start"])
    assert [span["name"] for span in order] == ["authentication", "policy", "audit", "upstream"]
    assert stages["upstream"]["attributes"]["gateway.upstream.first_byte_ms"] > 0

    refusal = _trace_of(collector.spans, refused.headers["x-request-id"])
    assert {s["name"] for s in refusal} == {f"POST {CHAT}", "authentication", "audit"}
    (refused_root,) = [s for s in refusal if s["parent"] == ""]
    assert refused_root["attributes"]["gateway.reason"] == "credentials.missing"
    # No span carries the prompt or a credential.
    for span in collector.spans:
        assert "Hello there" not in repr(span)


def test_without_tracing_opentelemetry_is_never_imported(tmp_path: Path, pki: Path) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    config = gateway_settings(tmp_path, pki, tmp_path / "policies", "http://127.0.0.1:9", port=0)
    program = (
        "import sys\n"
        "from pathlib import Path\n"
        "from gateway.app import build_app\n"
        "from gateway.settings import load_settings\n"
        f"build_app(load_settings(Path({str(config)!r})))\n"
        "print(sorted(name for name in sys.modules if name.startswith('opentelemetry')))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "[]"
