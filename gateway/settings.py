"""The gateway's settings file (YAML), parsed once into immutable settings.

Read with `gateway.located_yaml` (YAML 1.2 core scalars, no anchors or tags), so a bad
file names the file, the key and the line, and `gateway serve` exits before binding a port.
Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit import AuditSettings
from gateway.config import ConfigError, Section, with_line
from gateway.identity import IdentitySettings, TlsSettings
from gateway.located_yaml import YamlError, parse_yaml
from gateway.policy import PolicySettings
from gateway.proxy import AssertionSettings, InboundHeaders, Route, UpstreamSettings
from gateway.quotas import QuotaSettings
from gateway.readiness import ReadinessSettings
from gateway.telemetry import MetricsSettings, TracingSettings


@dataclass(frozen=True, slots=True)
class Settings:
    host: str
    port: int
    tls: TlsSettings
    identity: IdentitySettings
    upstreams: tuple[UpstreamSettings, ...]
    routes: dict[str, Route]
    max_body_bytes: int
    policy: PolicySettings
    audit: AuditSettings
    log_level: str
    quotas: QuotaSettings
    source: str
    readiness: ReadinessSettings
    inbound_headers: InboundHeaders = field(default_factory=InboundHeaders)
    identity_assertion: AssertionSettings | None = None
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    tracing: TracingSettings = field(default_factory=TracingSettings)

    @classmethod
    def from_section(cls, top: Section) -> Settings:
        top.reject_unknown(
            "listen",
            "tls",
            "identity",
            "upstreams",
            "models",
            "limits",
            "policy",
            "audit",
            "log",
            "readiness",
            "quotas",
            "forwarding",
            "identity_assertion",
            "metrics",
            "tracing",
        )
        listen = top.section("listen")
        listen.reject_unknown("host", "port")
        upstreams = tuple(
            UpstreamSettings.from_section(s) for s in top.sections("upstreams", required=True)
        )
        names = [u.name for u in upstreams]
        for index, name in enumerate(names):
            if name in names[:index]:
                top.fail(f"upstreams[{index}].name", f"duplicate upstream name {name!r}")
        routes: dict[str, Route] = {}
        for section in top.sections("models", required=True):
            route = Route.from_section(section)
            if route.upstream not in names:
                section.fail("upstream", f"no upstream is named {route.upstream!r}")
            if route.model in routes:
                section.fail("id", f"duplicate model id {route.model!r}")
            routes[route.model] = route
        audit = AuditSettings.from_section(top.section("audit", required=True))
        assertion = AssertionSettings.from_section(top.section("identity_assertion"), audit.origin)
        for index, upstream in enumerate(upstreams):
            if upstream.identity_assertion and assertion is None:
                top.fail(
                    f"upstreams[{index}].identity_assertion",
                    "needs the top-level identity_assertion section (its signing_key)",
                )
        limits = top.section("limits")
        limits.reject_unknown("max_body_bytes")
        log = top.section("log")
        log.reject_unknown("level")
        return cls(
            host=listen.string("host", "127.0.0.1"),
            port=listen.integer("port", 8443, minimum=0),
            tls=TlsSettings.from_section(top.section("tls")),
            identity=IdentitySettings.from_section(top.section("identity", required=True)),
            upstreams=upstreams,
            routes=routes,
            max_body_bytes=limits.integer("max_body_bytes", 4 << 20, minimum=1),
            policy=PolicySettings.from_section(top.section("policy", required=True)),
            audit=audit,
            quotas=QuotaSettings.from_section(top.section("quotas")),
            log_level=log.choice("level", ("debug", "info", "warning", "error"), "info"),
            source=top.file,
            readiness=ReadinessSettings.from_section(top.section("readiness")),
            inbound_headers=InboundHeaders.from_section(top.section("forwarding")),
            identity_assertion=assertion,
            metrics=MetricsSettings.from_section(top.section("metrics")),
            tracing=TracingSettings.from_section(top.section("tracing")),
        )


def load_settings(path: Path) -> Settings:
    """Read and validate a settings file; raises ConfigError naming the file and key."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(name, "", f"cannot read the file ({exc.strerror})") from exc
    try:
        data = parse_yaml(text)
    except YamlError as exc:
        raise ConfigError(name, "", exc.message, exc.line) from exc
    try:
        return Settings.from_section(Section(data, name, "", path.parent))
    except ConfigError as exc:
        raise with_line(exc, data) from exc.__cause__
