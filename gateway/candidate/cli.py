"""`gateway policy replay`: which recorded outcomes another policy would change.

Exit status: 0 the report was made (whatever it says), 2 bad input (store, policy,
times).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import Any

import orjson

from gateway.arguments import instant, non_negative_integer
from gateway.audit import AuditError, RecordFilter, format_time
from gateway.audit.cli_inputs import TIMES, readable_store, store_argument
from gateway.audit.stores import AuditStore
from gateway.audit.verify import check_fields
from gateway.candidate.replay import ReplayReport, replay
from gateway.policy import PolicyLoadError, load_policy
from gateway.policy.cli import policy_directory

__all__ = ["register_replay"]

_PAGE = 5000


def register_replay(policy_commands: Any) -> None:
    """Add `replay` to the `gateway policy` sub-commands."""
    command = policy_commands.add_parser(
        "replay",
        help="decide recorded requests again under another policy; report what changes",
        description="Decide the inference requests recorded in the audit store again under "
        "the policy in --policy (the recorded caller, model and time) and report the "
        "outcomes that would change, grouped by old and new reason, with examples. "
        "Exit status: 0 report made, 2 bad input.",
    )
    store_argument(command)
    command.add_argument(
        "--policy",
        required=True,
        type=policy_directory,
        metavar="DIR",
        help="the policy folder to replay under",
    )
    command.add_argument(
        "--since", type=instant(), metavar="TIME", help=f"requests at or after TIME: {TIMES}"
    )
    command.add_argument(
        "--until", type=instant(), metavar="TIME", help="requests at or before TIME (as --since)"
    )
    command.add_argument(
        "--examples",
        type=non_negative_integer,
        default=5,
        metavar="N",
        help="examples shown per change (default: 5)",
    )
    command.add_argument("--json", action="store_true", help="print the report as JSON")
    command.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> int:
    # Here, not at the top: every `gateway` command builds this parser, and the request
    # path's imports would slow them all.
    from gateway.inference import INFERENCE_PATHS

    try:
        policy = load_policy(args.policy)
    except PolicyLoadError as exc:
        print(f"policy invalid: {exc}", file=sys.stderr)
        return 2
    if args.since is not None and args.until is not None and args.since > args.until:
        print("error: --since is after --until: no request could match", file=sys.stderr)
        return 2
    record_filter = RecordFilter(
        since=format_time(args.since) if args.since is not None else None,
        until=format_time(args.until) if args.until is not None else None,
        kind="request",
    )
    try:
        with readable_store(args.store) as store:
            report = replay(
                _records(store, record_filter), policy, INFERENCE_PATHS, examples=args.examples
            )
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        _print(report, args)
    return 0


def _records(store: AuditStore, record_filter: RecordFilter) -> Iterator[tuple[int, Any]]:
    """Matching records, oldest first, each checked against its query columns."""
    after = -1
    while rows := store.query(record_filter, after, _PAGE):
        for row in rows:
            check_fields(row)
            yield row.index, orjson.loads(bytes(row.data))
            after = row.index


def _print(report: ReplayReport, args: argparse.Namespace) -> None:
    window = " ".join(
        part
        for part in (
            f"from {format_time(args.since)}" if args.since is not None else "",
            f"until {format_time(args.until)}" if args.until is not None else "",
        )
        if part
    )
    print(f"replay under policy {report.policy_version[:12]} of {args.policy}")
    print(f"  inference requests recorded{' ' + window if window else ''}: {report.examined}")
    if report.recorded_policies:
        versions = ", ".join(
            f"{version[:12]} ({count})" for version, count in report.recorded_policies.most_common()
        )
        print(f"  recorded under policies: {versions}")
    print(
        f"  decided again: {report.replayed}; unchanged {report.replayed - report.changed},"
        f" would change {report.changed}"
    )
    for change in report.sorted_changes():
        print(
            f"  {change.old} -> {change.new}: {change.count}"
            f" ({change.old_decision} -> {change.new_decision})"
        )
        for example in change.examples:
            print(
                f"      index {example.index}  request {example.request_id}  {example.time}"
                f"  subject {example.subject}  model {example.model}"
            )
    if report.skipped:
        print(f"  not decided again: {sum(s.count for s in report.skipped.values())}")
        for skipped in sorted(report.skipped.values(), key=lambda s: -s.count):
            indexes = ", ".join(str(e.index) for e in skipped.examples)
            print(f"    {skipped.reason}: {skipped.count} (e.g. index {indexes})")
    if not report.changes:
        print("no outcome would change")
