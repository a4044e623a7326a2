"""The `metrics` and `tracing` settings: off unless configured, errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError, Section
from gateway.readiness import ReadinessSettings
from gateway.telemetry import MetricsSettings, TracingSettings
from gateway.telemetry._settings import parse_listen
from tests.harness import REPO


def metrics(data: object) -> MetricsSettings:
    return MetricsSettings.from_section(Section(data, "gateway.yaml", "metrics", Path(".")))


def tracing(data: object) -> TracingSettings:
    return TracingSettings.from_section(Section(data, "gateway.yaml", "tracing", Path(".")))


def test_metrics_are_off_unless_a_listener_is_configured() -> None:
    assert not metrics(None).enabled
    assert not metrics({"listen": None}).enabled
    assert metrics({"listen": "127.0.0.1:9102"}) == MetricsSettings("127.0.0.1", 9102)


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:9102", "127.0.0.1", 9102, True),
        ("[::1]:9102", "::1", 9102, True),
        ("localhost:0", "localhost", 0, True),
        ("0.0.0.0:9102", "0.0.0.0", 9102, False),  # noqa: S104 - parsed, never bound
        ("[::]:9102", "::", 9102, False),
        ("metrics.internal:9102", "metrics.internal", 9102, False),
    ],
)
def test_listen_is_host_and_port(text: str, host: str, port: int, loopback: bool) -> None:
    parsed = metrics({"listen": text})
    assert (parsed.host, parsed.port, parsed.loopback) == (host, port, loopback)


@pytest.mark.parametrize(
    "text",
    [
        "9102",
        "127.0.0.1",
        ":9102",
        "127.0.0.1:",
        "::1:9102",
        "[::1:9102",
        "[nope]:1",
        "h:70000",
        "a b:80",
        "h/x:80",
        "h:-1",
        "h:9x",
    ],
)
def test_a_malformed_listen_names_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        metrics({"listen": text})
    assert raised.value.key == "metrics.listen"


def test_listen_must_be_a_string_and_unknown_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen: expected a string"):
        metrics({"listen": 9102})
    with pytest.raises(ConfigError, match=r"metrics\.port: unknown key"):
        metrics({"port": 9102})


@given(st.text(max_size=40))
def test_listen_parsing_accepts_only_host_and_port(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except ValueError:
        return
    assert 0 <= port <= 65535
    assert host
    assert not any(character.isspace() or character in "/@?#" for character in host)
    assert text.endswith(f":{text.rpartition(':')[2]}")


def test_tracing_is_off_unless_an_endpoint_is_configured() -> None:
    assert not tracing(None).enabled
    configured = tracing({"otlp_endpoint": "http://127.0.0.1:4318/v1/traces", "sample_ratio": 0.5})
    assert configured.enabled
    assert configured.sample_ratio == 0.5
    assert configured.service_name == "model-access-gateway"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"otlp_endpoint": "collector:4318"}, "tracing.otlp_endpoint"),
        ({"otlp_endpoint": "ftp://collector/v1/traces"}, "tracing.otlp_endpoint"),
        ({"otlp_endpoint": "https://user:secret@collector/v1/traces"}, "tracing.otlp_endpoint"),
        ({"sample_ratio": 1.5}, "tracing.sample_ratio"),
        ({"sample_ratio": -0.1}, "tracing.sample_ratio"),
        ({"export_timeout_seconds": 0}, "tracing.export_timeout_seconds"),
        ({"headers": {"x": "y"}}, "tracing.headers"),
    ],
)
def test_bad_tracing_settings_name_the_key(data: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        tracing(data)
    assert raised.value.key == key
    assert "secret" not in str(raised.value)


def test_readiness_may_bound_the_checkpoint_age() -> None:
    section = Section({"max_checkpoint_age_seconds": 60}, "gateway.yaml", "readiness", Path("."))
    assert ReadinessSettings.from_section(section).max_checkpoint_age_seconds == 60
    assert ReadinessSettings().max_checkpoint_age_seconds is None
    with pytest.raises(ConfigError, match=r"readiness\.max_checkpoint_age_seconds"):
        ReadinessSettings.from_section(
            Section({"max_checkpoint_age_seconds": 0}, "gateway.yaml", "readiness", Path("."))
        )


def test_tracing_without_the_extra_installed_is_a_configuration_error() -> None:
    program = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the tracing extra were not installed\n"
        "from pathlib import Path\n"
        "from gateway.config import ConfigError, Section\n"
        "from gateway.telemetry import TracingSettings\n"
        "data = {'otlp_endpoint': 'http://127.0.0.1:4318/v1/traces'}\n"
        "try:\n"
        "    TracingSettings.from_section(Section(data, 'gateway.yaml', 'tracing', Path('.')))\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert finished.stdout.strip() == (
        "gateway.yaml: tracing.otlp_endpoint: tracing needs the tracing extra: "
        "pip install 'model-access-gateway[tracing]'"
    ), finished.stderr
