"""TLS termination benchmark: uvicorn's own TLS against the gateway's (`start_tls`).

The gateway runs each TLS handshake itself (`TlsHttpProtocol.terminating`) so that a
refused handshake leaves evidence. This measures what that costs against uvicorn doing
TLS (`ssl_context_factory`), both under uvloop with mTLS (client certificate required
at the TLS layer as `optional`), serving a tiny ASGI app from a separate process:

* per connection: a new TLS connection per request (handshake + one request);
* per request: requests on one kept-alive connection.

What is reported is the **server's CPU time** per connection and per request (from
/proc/<pid>/task/*/schedstat, nanosecond resolution), which other work on a shared
machine disturbs far less than wall time; the wall time is printed beside it.

Run: `.venv/bin/python bench/bench_tls.py` (a few minutes; Linux only). Prints the
median over rounds and the difference.
"""

from __future__ import annotations

import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 7
CONNECTIONS = 400
REQUESTS = 5000
REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\n\r\n"

SERVER = r"""
import sys, uvicorn, uvloop
from gateway.config import Section
from gateway.identity import IdentitySettings, TlsHttpProtocol, TlsSettings
from gateway.identity import build_server_ssl_context

folder, mode, fd = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})

tls = TlsSettings.from_section(Section({"certificate": f"{folder}/server.pem",
    "private_key": f"{folder}/server-key.pem", "client_certificates": "optional"}, "b", "tls"))
identity = IdentitySettings.from_section(Section({"certificate_authorities": [
    {"id": "ca", "bundle": f"{folder}/ca/ca.pem"}]}, "b", "identity"))
context = build_server_ssl_context(tls, identity)
common = dict(lifespan="off", ws="none", log_level="error", access_log=False)
if mode == "gateway":
    protocol = TlsHttpProtocol.terminating(context, lambda failure: None)
    config = uvicorn.Config(app, http=protocol, **common)
else:
    config = uvicorn.Config(app, http=TlsHttpProtocol,
                            ssl_context_factory=lambda c, d: context, **common)
import socket
sock = socket.socket(fileno=fd)
uvloop.run(uvicorn.Server(config).serve(sockets=[sock]))
"""


def _material(folder: Path) -> None:
    from gateway.identity.pki import init_ca, issue_client, issue_server

    init_ca(folder / "ca", "Bench CA")
    issue_server(folder / "ca", folder / "server", ["127.0.0.1"])
    issue_client(folder / "ca", folder / "client", common_name="bench", organisation="Bench")


def _client_context(folder: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(folder / "ca" / "ca.pem"))
    context.load_cert_chain(str(folder / "client.pem"), str(folder / "client-key.pem"))
    return context


def _read_response(connection: ssl.SSLSocket) -> None:
    data = b""
    while not data.endswith(b"ok"):
        chunk = connection.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed")
        data += chunk


def _cpu_ns(pid: int) -> int:
    """CPU time used so far by every thread of process `pid`, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total


def _per_connection(port: int, context: ssl.SSLContext, pid: int) -> tuple[float, float]:
    cpu, start = _cpu_ns(pid), time.perf_counter()
    for _ in range(CONNECTIONS):
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
        ):
            connection.sendall(REQUEST)
            _read_response(connection)
    wall = (time.perf_counter() - start) / CONNECTIONS * 1e6
    return (_cpu_ns(pid) - cpu) / CONNECTIONS / 1e3, wall


def _per_request(port: int, context: ssl.SSLContext, pid: int) -> tuple[float, float]:
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
    ):
        cpu, start = _cpu_ns(pid), time.perf_counter()
        for _ in range(REQUESTS):
            connection.sendall(REQUEST)
            _read_response(connection)
        wall = (time.perf_counter() - start) / REQUESTS * 1e6
        return (_cpu_ns(pid) - cpu) / REQUESTS / 1e3, wall


Result = tuple[tuple[float, float], tuple[float, float]]


def _measure(folder: Path, mode: str) -> Result:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(folder), mode, str(listener.fileno())],
        pass_fds=[listener.fileno()],
        env=env,
    )
    try:
        context = _client_context(folder)
        for _ in range(100):
            try:
                _per_connection_once(port, context)
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(50):  # warm up
            _per_connection_once(port, context)
        return _per_connection(port, context, server.pid), _per_request(port, context, server.pid)
    finally:
        server.terminate()
        server.wait(10)
        listener.close()


def _per_connection_once(port: int, context: ssl.SSLContext) -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
    ):
        connection.sendall(REQUEST)
        _read_response(connection)


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        _material(folder)
        results: dict[str, list[Result]] = {"uvicorn": [], "gateway": []}
        for _ in range(ROUNDS):
            for mode in results:  # alternate, so drift on a shared machine hits both
                results[mode].append(_measure(folder, mode))

    def median(mode: str, phase: int, kind: int) -> float:
        return statistics.median(result[phase][kind] for result in results[mode])

    print("server CPU time (wall time as the client saw it), medians of", ROUNDS, "rounds")
    for mode in results:
        print(
            f"{mode + ' TLS':<14} per connection {median(mode, 0, 0):7.1f} us "
            f"({median(mode, 0, 1):7.1f})   per keep-alive request {median(mode, 1, 0):6.1f} us "
            f"({median(mode, 1, 1):6.1f})"
        )
    print(
        f"{'difference':<14} per connection "
        f"{median('gateway', 0, 0) - median('uvicorn', 0, 0):+7.1f} us"
        f"             per keep-alive request "
        f"{median('gateway', 1, 0) - median('uvicorn', 1, 0):+6.1f} us"
    )


if __name__ == "__main__":
    main()
