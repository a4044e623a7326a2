"""The tables and the JSON report of bench/harness.py: medians, ratios, added latency."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Measurement:
    """The medians of several wrk runs of one target, workload and connection count."""

    target: str
    workload: str
    connections: int
    requests_per_second: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_us_per_request: float | None = None
    errors: int = 0
    runs: list[dict[str, float]] = field(default_factory=list)
    note: str = ""


def _find(
    results: list[Measurement], target: str, workload: str, connections: int
) -> Measurement | None:
    return next(
        (
            r
            for r in results
            if (r.target, r.workload, r.connections) == (target, workload, connections)
            and r.requests_per_second is not None
        ),
        None,
    )


def _ratio(value: float | None, base: Measurement | None) -> str:
    if value is None or base is None or not base.requests_per_second:
        return "-"
    return f"{value / base.requests_per_second:.2f}x"


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def throughput_table(results: list[Measurement], connections: int) -> list[str]:
    header = f"{'target':<22} {'workload':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    lines = [header + f" {'vs passthrough':>14} {'vs direct':>10} {'CPU us/req':>10} {'errors':>7}"]
    for r in results:
        if r.connections != connections:
            continue
        passthrough_row = _find(results, "passthrough", r.workload, connections)
        direct_row = _find(results, "direct", r.workload, connections)
        if r.requests_per_second is None:
            lines.append(f"{r.target:<22} {r.workload:<10} {r.note}")
            continue
        lines.append(
            f"{r.target:<22} {r.workload:<10} {r.requests_per_second:>9.0f}"
            f" {_number(r.p50_ms, 2):>8} {_number(r.p99_ms, 2):>8}"
            f" {_ratio(r.requests_per_second, passthrough_row):>14}"
            f" {_ratio(r.requests_per_second, direct_row):>10}"
            f" {_number(r.cpu_us_per_request, 0):>10} {r.errors:>7}"
        )
    return lines


def added_latency(results: list[Measurement]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        base = _find(results, "direct", r.workload, 1)
        if r.connections != 1 or r.target == "direct" or base is None:
            continue
        if None in (r.p50_ms, r.p99_ms, base.p50_ms, base.p99_ms):
            continue
        rows.append(
            {
                "target": r.target,
                "workload": r.workload,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "added_p50_ms": r.p50_ms - base.p50_ms,
                "added_p99_ms": r.p99_ms - base.p99_ms,
            }
        )
    return rows


def latency_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'target':<22} {'workload':<10} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'+p99 ms':>8}"
    ]
    lines += [
        f"{row['target']:<22} {row['workload']:<10} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
        f" {row['added_p50_ms']:>8.2f} {row['added_p99_ms']:>8.2f}"
        for row in rows
    ]
    return lines


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": _first_line(["wrk", "-v"]),
        "nginx": _first_line(["nginx", "-v"]),
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    output = (done.stdout + done.stderr).strip()
    return output.splitlines()[0] if output else ""
