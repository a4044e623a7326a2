"""The `metrics` and `tracing` sections of the settings file.

Both are off unless configured: metrics need `metrics.listen` (a listener of their own,
never the gateway's port), traces need `tracing.otlp_endpoint` and the `tracing` extra.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.config import Section

__all__ = ["MetricsSettings", "TracingSettings", "parse_listen"]

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252}[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Where `/metrics` is served: `host` and `port` of its own listener; None: nowhere."""

    host: str | None = None
    port: int = 0

    @property
    def enabled(self) -> bool:
        return self.host is not None

    @property
    def loopback(self) -> bool:
        """Whether only this host can reach the listener."""
        if self.host is None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @classmethod
    def from_section(cls, section: Section) -> MetricsSettings:
        section.reject_unknown("listen")
        listen = section.string("listen", None)
        if listen is None:
            return cls()
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            section.fail("listen", str(exc))
        return cls(host=host, port=port)


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port` for IPv6) as a host and a port; ValueError if malformed."""
    host, colon, port_text = text.rpartition(":")
    if not colon or not host or not port_text.isdigit():
        raise ValueError("expected host:port, e.g. 127.0.0.1:9102 ([::1]:9102 for IPv6)")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError("an IPv6 address is written in brackets, e.g. [::1]:9102")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address: {host}") from None
    elif ":" in host:
        raise ValueError("an IPv6 address is written in brackets, e.g. [::1]:9102")
    elif _HOST.fullmatch(host) is None:
        raise ValueError(f"not a host name or address: {host}")
    port = int(port_text)
    if port > 65535:
        raise ValueError("the port must be at most 65535")
    return host, port


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """OpenTelemetry traces sent over OTLP/HTTP to `otlp_endpoint` (None: no tracing)."""

    otlp_endpoint: str | None = None
    service_name: str = "model-access-gateway"
    sample_ratio: float = 1.0
    export_timeout_seconds: float = 10.0

    @property
    def enabled(self) -> bool:
        return self.otlp_endpoint is not None

    @classmethod
    def from_section(cls, section: Section) -> TracingSettings:
        section.reject_unknown(
            "otlp_endpoint", "service_name", "sample_ratio", "export_timeout_seconds"
        )
        endpoint = section.string("otlp_endpoint", None)
        if endpoint is not None:
            parts = urlsplit(endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                section.fail("otlp_endpoint", "expected an http:// or https:// URL")
            if parts.username or parts.password:
                section.fail(
                    "otlp_endpoint",
                    "must not carry credentials; set OTEL_EXPORTER_OTLP_TRACES_HEADERS instead",
                )
            if not _tracing_installed():
                section.fail(
                    "otlp_endpoint",
                    "tracing needs the tracing extra: pip install 'model-access-gateway[tracing]'",
                )
        ratio = section.number("sample_ratio", 1.0, minimum=0.0)
        if ratio > 1.0:
            section.fail("sample_ratio", "must be at most 1")
        return cls(
            otlp_endpoint=endpoint,
            service_name=section.string("service_name", "model-access-gateway"),
            sample_ratio=ratio,
            export_timeout_seconds=section.number("export_timeout_seconds", 10.0, minimum=0.1),
        )


def _tracing_installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp.proto.http") is not None
    except (ImportError, ValueError):  # a parent package missing, or blocked
        return False
