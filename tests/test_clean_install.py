"""The container's entrypoint, from a clean install: the Dockerfile's two pip steps into a
fresh virtual environment, then `gateway serve --config FILE` as the image runs it.

No Docker engine is needed: this is the part of the image that can be tested here.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
import venv
from pathlib import Path

import httpx
import pytest

from gateway.demo.upstream import main as upstream_main  # noqa: F401 - the module must import
from tests.harness import REPO, gateway_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port}")


@pytest.mark.slow
def test_gateway_serve_runs_from_a_fresh_install(tmp_path: Path, pki: Path) -> None:
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(environment)
    python = environment / "bin" / "python"
    wheels = tmp_path / "wheels"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(REPO)], check=True, timeout=300
    )
    (wheel,) = wheels.glob("*.whl")
    subprocess.run([*pip, "install", str(wheel)], check=True, timeout=600)

    upstream_port, gateway_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    upstream = subprocess.Popen(
        [str(python), "-m", "gateway.demo.upstream", "--port", str(upstream_port)],
        cwd=tmp_path,
        env=env,
    )
    config = gateway_settings(
        tmp_path, pki, REPO / "policies", f"http://127.0.0.1:{upstream_port}", port=gateway_port
    )
    log = (tmp_path / "gateway.log").open("wb")
    gateway = subprocess.Popen(
        [str(environment / "bin" / "gateway"), "serve", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(upstream_port, upstream)
        wait_for_port(gateway_port, gateway)
        context = ssl.create_default_context(cafile=str(pki / "corp-ca" / "ca.pem"))
        context.load_cert_chain(pki / "carol.pem", pki / "carol-key.pem")
        with httpx.Client(base_url=f"https://localhost:{gateway_port}", verify=context) as client:
            assert client.get("/healthz").status_code == 200
            response = client.post(
                "/v1/chat/completions",
                json={"model": "muse-1", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert response.status_code == 200, response.text
    finally:
        for process in (gateway, upstream):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        log.close()
    output = (tmp_path / "gateway.log").read_text()
    assert '"event":"gateway.stopped"' in output
    assert gateway.returncode == 0
