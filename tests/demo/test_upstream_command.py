"""`python -m gateway.demo.upstream` as an operator runs it: a real process on a real port."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.demo.upstream import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the demo upstream exited before it listened")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail("the demo upstream did not listen in time")


@pytest.fixture
def upstream_key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def running(upstream_key: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DEMO_UPSTREAM_TEST_KEY": upstream_key}
    argv = [sys.executable, "-m", "gateway.demo.upstream", "--port", str(port)]
    argv += ["--api-key-env", "DEMO_UPSTREAM_TEST_KEY", "--model", "listed-model"]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_command_serves_only_callers_with_the_key(running: str, upstream_key: str) -> None:
    with httpx.Client(base_url=running) as http:
        without = http.get("/v1/models")
        listed = http.get("/v1/models", headers={"Authorization": f"Bearer {upstream_key}"})

    assert without.status_code == 401
    assert [model["id"] for model in listed.json()["data"]] == ["listed-model"]


def test_command_refuses_to_start_when_the_key_variable_is_unset(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DEMO_UPSTREAM_UNSET_KEY", raising=False)

    status = main(["--api-key-env", "DEMO_UPSTREAM_UNSET_KEY"])

    assert status == 2
    assert "DEMO_UPSTREAM_UNSET_KEY" in capsys.readouterr().err
