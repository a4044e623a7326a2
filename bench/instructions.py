"""Instructions per request under valgrind's callgrind: a cost figure that does not move
with whatever else the machine runs (CPU time does, on a shared 2-core host).

For each target (the Python passthrough baseline and the full gateway pipeline), the
target's process runs under `valgrind --tool=callgrind` (all threads counted); a client
on the other core sends `--warmup` requests over one keep-alive connection, the counters
are zeroed (`callgrind_control --zero`), `--requests` more are sent, and the counters are
dumped. Instructions per request = the dump's total / requests. Everything else (the
demo upstream, the JWKS server) runs natively.

    .venv/bin/python bench/instructions.py [--requests 500] [--targets passthrough,gateway]

valgrind slows Python about 50x: expect one to three minutes per target.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import BenchEnvironment, cpus, free_port, registry, workloads


class _Callgrind(BenchEnvironment):
    """Runs the system under test (not its helpers) under callgrind."""

    def __init__(self, *args: Any, out: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out = out
        self.measured: subprocess.Popen[bytes] | None = None

    def spawn(self, name: str, argv: list[str], *, cpu: str | None) -> subprocess.Popen[bytes]:
        if name not in ("gateway", "passthrough"):
            return super().spawn(name, argv, cpu=cpu)
        wrapped = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={self.out}",
            "--dump-instr=no",
            "--collect-atstart=yes",
            *argv,
        ]
        self.measured = super().spawn(name, wrapped, cpu=cpu)
        return self.measured

    def wait_for_port(
        self, port: int, process: subprocess.Popen[bytes], timeout: float = 20.0
    ) -> None:
        super().wait_for_port(port, process, timeout=600.0)


def _requests(base_url: str, headers: dict[str, str], count: int) -> None:
    workload = workloads()["plain"]
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    body = json.dumps(workload.body)
    for _ in range(count):
        connection.request(
            "POST",
            workload.path,
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"the target answered {response.status}")
    connection.close()


def _control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=600)


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {dump}")


def measure(name: str, warmup: int, count: int, keep: Path | None = None) -> int:
    """Instructions per request of target `name` (plain workload)."""
    sut_cpu, load_cpu = cpus(False)
    with tempfile.TemporaryDirectory(prefix="gateway-instructions-") as folder:
        out = Path(folder) / "callgrind.out"
        env = _Callgrind(Path(folder), sut_cpu, load_cpu, out=out)
        try:
            port = free_port()
            upstream = env.spawn(
                "upstream",
                [sys.executable, "-m", "gateway.demo.upstream", "--port", str(port)],
                cpu=load_cpu,
            )
            env.wait_for_port(port, upstream)
            env.upstream_url = f"http://127.0.0.1:{port}"
            with registry()[name](env) as endpoint:
                assert env.measured is not None
                pid = str(env.measured.pid)
                _requests(endpoint.base_url, dict(endpoint.headers), warmup)
                _control("--zero", pid)
                _requests(endpoint.base_url, dict(endpoint.headers), count)
                _control("--dump", pid)
                time.sleep(0.5)
                dumps = sorted(Path(folder).glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)
                if keep is not None:
                    shutil.copy(dumps[-1], keep)
                return _total(dumps[-1]) // count
        finally:
            env.stop_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--targets", default="passthrough,gateway")
    parser.add_argument(
        "--keep", type=Path, help="keep each target's dump as KEEP.<target> (callgrind_annotate)"
    )
    options = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install valgrind); nothing measured")
        return
    results: dict[str, int] = {}
    for name in options.targets.split(","):
        keep = options.keep.with_name(f"{options.keep.name}.{name}") if options.keep else None
        results[name] = measure(name, options.warmup, options.requests, keep)
        base = results.get("passthrough")
        ratio = f", {results[name] / base:.2f}x the passthrough" if base else ""
        print(
            f"instructions per request, {name} (plain, callgrind, {options.requests} requests):"
            f" {results[name]:,}{ratio}",
            flush=True,
        )


if __name__ == "__main__":
    main()
