"""Load benchmark: the gateway against the demo upstream directly, a Python passthrough and nginx.

Every server listens on 127.0.0.1 on an ephemeral port. The machine has two cores: the
system under test (one worker) is pinned to the first, and the demo upstream and the
load generator (wrk, one thread) share the second. That shared core is a compromise
(the load generator and the upstream compete), but it is the same for every target, so
the ratios between targets measured in one run are meaningful even where absolute
numbers are not. See docs/BENCHMARKS.md.

For each target and workload: a discarded warm-up, then `--runs` runs of `--duration`
seconds at `--connections` connections, reporting the medians of req/s, p50 and p99;
then the same at one connection, reported as latency added over `direct`.

    .venv/bin/python bench/harness.py                       # the full run (make bench)
    .venv/bin/python bench/harness.py --duration 2 --runs 1 # a quick check

A target is a function `(env: BenchEnvironment) -> ContextManager[Endpoint]` that starts
its process(es), yields where to send requests, and stops them on exit; `registry()`
lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from harness_report import Measurement, added_latency, latency_table, machine, throughput_table

ROOT = Path(__file__).resolve().parent.parent
RESULT_MARK = "BENCH-RESULT"


class TargetUnavailable(Exception):
    """A target cannot run on this machine (e.g. nginx is not installed); `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Endpoint:
    """Where a target listens, the headers every request to it must carry, and the process
    whose CPU time (with its threads and child processes) the requests cost."""

    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    pid: int | None = None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid`, its threads and its live descendants, in seconds."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                pending.extend(int(child) for child in children)
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass(frozen=True)
class Workload:
    name: str
    path: str
    body: dict[str, Any]
    streaming: bool


class BenchEnvironment:
    """What a target needs: the upstream's URL, a work folder, CPU pinning and process control."""

    def __init__(self, workdir: Path, sut_cpu: str | None, load_cpu: str | None) -> None:
        self.workdir = workdir
        self.sut_cpu = sut_cpu
        self.load_cpu = load_cpu
        self.upstream_url = ""
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[BinaryIO] = []

    def spawn(self, name: str, argv: list[str], *, cpu: str | None) -> subprocess.Popen[bytes]:
        """Start `argv` in its own process group, pinned to `cpu`, logging to `<name>.log`."""
        log = (self.workdir / f"{name}.log").open("wb")
        self._logs.append(log)
        prefix = ["taskset", "-c", cpu] if cpu is not None else []
        process = subprocess.Popen(
            prefix + argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
        self._processes.append(process)
        return process

    def wait_for_port(
        self, port: int, process: subprocess.Popen[bytes], timeout: float = 20.0
    ) -> None:
        """Return once 127.0.0.1:`port` accepts connections; fail if `process` exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode} before listening")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listened on port {port} within {timeout} s")

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """Stop `process` and its group: SIGTERM, then SIGKILL after 10 s."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if process in self._processes:
            self._processes.remove(process)

    def stop_all(self) -> None:
        for process in list(self._processes):
            self.stop(process)
        for log in self._logs:
            log.close()


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- Targets ---------------------------------------------------------------------------


@contextlib.contextmanager
def direct(env: BenchEnvironment) -> Iterator[Endpoint]:
    """wrk straight to the demo upstream: the ceiling every proxy is measured against."""
    yield Endpoint(env.upstream_url)


@contextlib.contextmanager
def passthrough(env: BenchEnvironment) -> Iterator[Endpoint]:
    """bench/passthrough.py: a bare ASGI + aiohttp proxy, the Python baseline."""
    port = free_port()
    script = str(ROOT / "bench" / "passthrough.py")
    argv = [sys.executable, script, "--port", str(port), "--upstream", env.upstream_url]
    process = env.spawn("passthrough", argv, cpu=env.sut_cpu)
    try:
        env.wait_for_port(port, process)
        yield Endpoint(f"http://127.0.0.1:{port}", pid=process.pid)
    finally:
        env.stop(process)


@contextlib.contextmanager
def nginx(env: BenchEnvironment) -> Iterator[Endpoint]:
    """A plain nginx reverse proxy (one worker, keepalive upstream, no buffering)."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        raise TargetUnavailable("not installed")
    prefix = env.workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    port = free_port()
    upstream_port = env.upstream_url.rsplit(":", 1)[1]
    # As root, nginx workers drop to an unprivileged user; Debian has no group "nobody".
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    template = (ROOT / "bench" / "nginx.conf").read_text()
    config = prefix / "nginx.conf"
    config.write_text(
        template.replace("@USER@", user)
        .replace("@PREFIX@", str(prefix))
        .replace("@UPSTREAM_PORT@", upstream_port)
        .replace("@PORT@", str(port))
    )
    argv = [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config)]
    process = env.spawn("nginx", [*argv, "-g", "daemon off;"], cpu=env.sut_cpu)
    try:
        env.wait_for_port(port, process)
        yield Endpoint(f"http://127.0.0.1:{port}", pid=process.pid)
    finally:
        env.stop(process)


Target = Callable[[BenchEnvironment], contextlib.AbstractContextManager[Endpoint]]


# --- Gateway targets -------------------------------------------------------------------
# Add the gateway here. Each entry is a Target: a context manager function
#
#     @contextlib.contextmanager
#     def gateway_full(env: BenchEnvironment) -> Iterator[Endpoint]:
#         port = free_port()
#         config = env.workdir / "gateway.yaml"      # write a config whose upstream is
#         ...                                        # env.upstream_url, mTLS off
#         process = env.spawn("gateway", [gateway_cli, "serve", "--config", str(config)],
#                             cpu=env.sut_cpu)        # one worker, pinned like the others
#         try:
#             env.wait_for_port(port, process)
#             yield Endpoint(f"http://127.0.0.1:{port}",
#                            headers={"Authorization": f"Bearer {token}"})
#         finally:
#             env.stop(process)
#
# Raise TargetUnavailable(reason) if it cannot run; the table then shows the reason.
def gateway_targets() -> dict[str, Target]:
    """The gateway configurations under test, by name (shown in the table in this order)."""
    from gateway_targets import forwarding, gateway, gateway_2_workers, gateway_postgres

    return {
        "forwarding": forwarding,
        "gateway": gateway,
        "gateway-postgres": gateway_postgres,
        "gateway-2-workers": gateway_2_workers,
    }


def registry() -> dict[str, Target]:
    """Every target, in table order: the baselines first, then the gateway."""
    return {"direct": direct, "passthrough": passthrough, "nginx": nginx, **gateway_targets()}


def workloads() -> dict[str, Workload]:
    chat = {"model": "demo-model", "messages": [{"role": "user", "content": "Hello, who are you?"}]}
    return {
        "plain": Workload("plain", "/v1/chat/completions", chat, streaming=False),
        "streaming": Workload(
            "streaming",
            "/v1/chat/completions",
            {**chat, "stream": True, "demo": {"chunks": 20, "chunk_delay": 0}},
            streaming=True,
        ),
    }


# --- Measuring -------------------------------------------------------------------------


def lua_script(workload: Workload, headers: Mapping[str, str]) -> str:
    """A wrk script that POSTs the workload and prints one machine-readable result line."""

    def quoted(text: str) -> str:
        if "]==]" in text:
            raise ValueError("text cannot be quoted as a Lua long string")
        return f"[==[{text}]==]"

    lines = ['wrk.method = "POST"', f"wrk.body = {quoted(json.dumps(workload.body))}"]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    # A space keeps "[ [==[" from reading as the start of a Lua long string "[[".
    lines += [f"wrk.headers[ {quoted(k)} ] = {quoted(v)}" for k, v in headers.items()]
    lines.append(
        "done = function(summary, latency, requests)\n"
        f'  io.write(string.format("{RESULT_MARK} %d %d %.1f %.1f %d %d %d %d %d\\n",\n'
        "    summary.requests, summary.duration,\n"
        "    latency:percentile(50), latency:percentile(99),\n"
        "    summary.errors.connect, summary.errors.read, summary.errors.write,\n"
        "    summary.errors.status, summary.errors.timeout))\n"
        "end"
    )
    return "\n".join(lines) + "\n"


def run_wrk(
    env: BenchEnvironment, url: str, script: Path, connections: int, duration: float
) -> dict[str, float]:
    """One wrk run; returns requests, req/s, p50/p99 in ms and the error count."""
    prefix = ["taskset", "-c", env.load_cpu] if env.load_cpu is not None else []
    argv = [
        *prefix,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
    ]
    argv += ["--latency", "-s", str(script), url]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith(RESULT_MARK)), None)
    if completed.returncode != 0 or line is None:
        output = (completed.stderr + completed.stdout).strip()
        raise RuntimeError(f"wrk failed ({completed.returncode}): {output[-300:]}")
    fields = line.split()[1:]
    requests, duration_us = int(fields[0]), int(fields[1])
    return {
        "requests": requests,
        "requests_per_second": requests / (duration_us / 1e6),
        "p50_ms": float(fields[2]) / 1000,
        "p99_ms": float(fields[3]) / 1000,
        "errors": sum(int(value) for value in fields[4:]),
    }


def check_answer(endpoint: Endpoint, workload: Workload) -> None:
    """One request before measuring: a target that answers wrongly must not be timed."""
    request = urllib.request.Request(  # noqa: S310 - the URL is a target we started on loopback
        endpoint.base_url + workload.path,
        data=json.dumps(workload.body).encode(),
        headers={"Content-Type": "application/json", **endpoint.headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - as above
        body = response.read()
    if b"demo-upstream" not in body or (workload.streaming and not body.endswith(b"[DONE]\n\n")):
        raise RuntimeError("the target's answer is not the demo upstream's")


def measure(
    env: BenchEnvironment,
    name: str,
    endpoint: Endpoint,
    workload: Workload,
    connections: int,
    options: argparse.Namespace,
) -> Measurement:
    result = Measurement(name, workload.name, connections)
    script = env.workdir / f"{name}-{workload.name}.lua"
    script.write_text(lua_script(workload, endpoint.headers))
    script.chmod(0o600)
    url = endpoint.base_url + workload.path
    if options.warmup > 0:
        run_wrk(env, url, script, connections, options.warmup)
    result.runs = []
    for _ in range(options.runs):
        before = cpu_seconds(endpoint.pid) if endpoint.pid is not None else None
        run = run_wrk(env, url, script, connections, options.duration)
        if before is not None and endpoint.pid is not None and run["requests"]:
            used = cpu_seconds(endpoint.pid) - before
            run["cpu_us_per_request"] = used / run["requests"] * 1e6
        result.runs.append(run)
    cpu = [r["cpu_us_per_request"] for r in result.runs if "cpu_us_per_request" in r]
    result.cpu_us_per_request = statistics.median(cpu) if cpu else None
    result.requests_per_second = statistics.median(r["requests_per_second"] for r in result.runs)
    result.p50_ms = statistics.median(r["p50_ms"] for r in result.runs)
    result.p99_ms = statistics.median(r["p99_ms"] for r in result.runs)
    result.errors = int(sum(r["errors"] for r in result.runs))
    return result


def bench_target(
    env: BenchEnvironment, name: str, target: Target, options: argparse.Namespace
) -> list[Measurement]:
    chosen = [workloads()[w] for w in options.workloads]
    levels = [options.connections] + ([] if options.skip_single else [1])
    try:
        with target(env) as endpoint:
            results = []
            for workload in chosen:
                check_answer(endpoint, workload)
                for connections in levels:
                    print(f"  {name} {workload.name} c={connections}", file=sys.stderr, flush=True)
                    results.append(measure(env, name, endpoint, workload, connections, options))
            return results
    except TargetUnavailable as unavailable:
        note = unavailable.reason
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        note = f"error: {error}"
    return [Measurement(name, w.name, c, note=note) for w in chosen for c in levels]


# --- Main ------------------------------------------------------------------------------


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the gateway against its baselines.")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (3)")
    parser.add_argument("--warmup", type=int, default=2, help="discarded seconds first (2)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    parser.add_argument("--targets", default=",".join(registry()), help="comma-separated names")
    parser.add_argument("--workloads", default="plain,streaming", help="comma-separated names")
    parser.add_argument("--skip-single", action="store_true", help="skip the 1-connection runs")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    options = parser.parse_args(argv)
    options.targets = [t for t in options.targets.split(",") if t]
    options.workloads = [w for w in options.workloads.split(",") if w]
    unknown = set(options.targets) - set(registry()) | set(options.workloads) - set(workloads())
    if unknown:
        parser.error(f"unknown target or workload: {', '.join(sorted(unknown))}")
    if "direct" not in options.targets:
        options.targets.insert(0, "direct")  # every ratio and added latency needs it
    return options


def cpus(no_pin: bool) -> tuple[str | None, str | None]:
    """(system under test, upstream and load generator) cores, or no pinning."""
    available = sorted(os.sched_getaffinity(0))
    if no_pin or len(available) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(available[0]), str(available[1])


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); nothing measured", file=sys.stderr)
        return 1
    # A SIGTERM must still run the finally blocks that stop every started process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sut_cpu, load_cpu = cpus(options.no_pin)
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as folder:
        env = BenchEnvironment(Path(folder), sut_cpu, load_cpu)
        Path(folder).chmod(0o755)  # nginx workers run unprivileged
        try:
            port = free_port()
            argv_upstream = [sys.executable, "-m", "gateway.demo.upstream", "--port", str(port)]
            upstream = env.spawn("upstream", argv_upstream, cpu=load_cpu)
            env.wait_for_port(port, upstream)
            env.upstream_url = f"http://127.0.0.1:{port}"
            for name in options.targets:
                results += bench_target(env, name, registry()[name], options)
        finally:
            env.stop_all()
    latency = added_latency(results)
    print()
    print(
        f"Throughput at {options.connections} connections "
        f"(medians of {options.runs} x {options.duration:g} s; "
        f"pinning: {'system under test on CPU ' + sut_cpu if sut_cpu else 'off'})"
    )
    print("\n".join(throughput_table(results, options.connections)))
    if not options.skip_single:
        print()
        print("Latency at 1 connection; + is added over direct (ms)")
        print("\n".join(latency_table(latency)))
    options.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine(),
        "parameters": {
            "duration_s": options.duration,
            "runs": options.runs,
            "warmup_s": options.warmup,
            "connections": options.connections,
            "sut_cpu": sut_cpu,
            "load_cpu": load_cpu,
        },
        "results": [asdict(r) for r in results],
        "added_latency": latency,
    }
    options.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
