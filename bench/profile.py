"""Where a target's CPU goes: py-spy samples it under wrk load; self time by function.

    .venv/bin/python bench/profile.py --target gateway --seconds 10 [--workload plain]

Starts the demo upstream and the target as bench/harness.py does (pinned the same way),
runs wrk at 32 connections while py-spy (from PyPI, in the dev extras) records the
target's process, then prints the CPU time per request and the functions with the most
self time (and, with --inclusive, the most inclusive time). Not part of `make bench`: a
tool for finding what to make cheaper.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import (
    BenchEnvironment,
    cpu_seconds,
    cpus,
    free_port,
    lua_script,
    registry,
    run_wrk,
    workloads,
)

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="gateway", help="a target name of the harness")
    parser.add_argument("--workload", default="plain", help="plain or streaming")
    parser.add_argument("--seconds", type=int, default=10, help="seconds of load (10)")
    parser.add_argument("--top", type=int, default=40, help="functions to list (40)")
    parser.add_argument("--inclusive", action="store_true", help="rank by inclusive time")
    options = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    sut_cpu, load_cpu = cpus(False)
    workload = workloads()[options.workload]
    with tempfile.TemporaryDirectory(prefix="gateway-profile-") as folder:
        env = BenchEnvironment(Path(folder), sut_cpu, load_cpu)
        try:
            port = free_port()
            upstream = env.spawn(
                "upstream",
                [sys.executable, "-m", "gateway.demo.upstream", "--port", str(port)],
                cpu=load_cpu,
            )
            env.wait_for_port(port, upstream)
            env.upstream_url = f"http://127.0.0.1:{port}"
            with registry()[options.target](env) as endpoint:
                assert endpoint.pid is not None
                script = Path(folder) / "load.lua"
                script.write_text(lua_script(workload, endpoint.headers))
                url = endpoint.base_url + workload.path
                run_wrk(env, url, script, 32, 2)  # warm up
                raw = Path(folder) / "profile.txt"
                recorder = subprocess.Popen(
                    [spy, "record", "--pid", str(endpoint.pid), "--format", "raw",
                     "--rate", "250", "--output", str(raw), "--duration",
                     str(options.seconds + 1), "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                before = cpu_seconds(endpoint.pid)
                result = run_wrk(env, url, script, 32, options.seconds)
                used = cpu_seconds(endpoint.pid) - before
                recorder.wait(timeout=60)
        finally:
            env.stop_all()
        print(
            f"{options.target} {options.workload}: {result['requests_per_second']:.0f} req/s,"
            f" {used / result['requests'] * 1e6:.0f} us CPU per request (py-spy adds a little)"
        )
        _report(raw, options.top, options.inclusive)
    return 0


def _report(raw: Path, top: int, inclusive: bool) -> None:
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        total += count
        if inclusive:
            for frame in set(frames):
                own[frame] += count
        else:
            own[frames[-1]] += count
    print(f"{total} samples; share of samples by function ({'inclusive' if inclusive else 'self'})")
    for frame, count in own.most_common(top):
        print(f"{100 * count / total:6.2f}%  {frame}")


if __name__ == "__main__":
    sys.exit(main())
