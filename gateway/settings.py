"""The gateway's settings file (YAML), parsed once into immutable settings.

A bad file names the file and the key, and `gateway serve` exits before binding a port.
Every key is documented in docs/configuration.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gateway.audit import AuditSettings
from gateway.config import ConfigError, Section
from gateway.identity import IdentitySettings, TlsSettings
from gateway.policy import PolicySettings
from gateway.proxy import Route, UpstreamSettings
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
    source: str
    readiness: ReadinessSettings
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
            audit=AuditSettings.from_section(top.section("audit", required=True)),
            log_level=log.choice("level", ("debug", "info", "warning", "error"), "info"),
            source=top.file,
            readiness=ReadinessSettings.from_section(top.section("readiness")),
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
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(name, "", f"not valid YAML{where}") from exc
    return Settings.from_section(Section(data, name, "", path.parent))
