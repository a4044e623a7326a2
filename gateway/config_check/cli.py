"""`gateway config check FILE`: the command line around `check_config`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.arguments import existing_file, positive_number


def register(subparsers: Any) -> None:
    """Add `gateway config check` to an argparse sub-parser set."""
    config = subparsers.add_parser(
        "config",
        help="check a settings file",
        description="Work with the gateway's settings file (docs/configuration.md).",
    )
    commands = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="validate a settings file and everything it points to, without serving",
        description="Validate FILE as `gateway serve` reads it, then the files it names, the "
        "policy (full load), the audit store (read-only) and the quota counter store (a "
        "ping). Exit status: 0 valid (warnings do not fail), 1 the audit store or the quota "
        "counter store cannot be reached or opened, 2 invalid.",
    )
    check.add_argument("file", type=existing_file, metavar="FILE", help="the settings file (YAML)")
    check.add_argument(
        "--connect-timeout",
        type=positive_number,
        default=3.0,
        metavar="SECONDS",
        help="seconds to wait for the audit store (PostgreSQL) and the quota counter store "
        "(Redis) to answer, a number greater than 0 (default 3)",
    )
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from .checks import check_config  # the checks import the whole gateway: only now

    report = check_config(
        Path(args.file), now=datetime.now(UTC), connect_timeout=args.connect_timeout
    )
    for part, summary in report.checked:
        print(f"  {part:<12} {summary}")
    sys.stdout.flush()  # the findings on standard error come after what was checked
    for finding in report.findings:
        label = "warning" if finding.severity == "warning" else "error"
        print(f"{label}: {finding}", file=sys.stderr)
    errors = sum(1 for finding in report.findings if finding.severity != "warning")
    warnings = len(report.findings) - errors
    if report.status == 0:
        print(f"config OK: {args.file}" + (f" ({_count(warnings, 'warning')})" if warnings else ""))
    elif report.status == 1:
        print(f"config valid, but the audit store cannot be used now: {args.file}")
    else:
        print(f"config invalid: {args.file} ({_count(errors, 'error')})")
    return report.status


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
