"""`gateway policy ...`: check, test, explain and diff policies offline.

Exit status: 0 success, 1 a policy test failed, 2 invalid input (policy, test file,
principal file or arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.arguments import existing_directory, existing_file, instant
from gateway.instants import format_instant

from ._approvals import verify_grant_approvals
from ._cases import load_cases, load_principal
from ._diff import diff_policies
from ._engine import ACTIONS, decide
from ._errors import PolicyLoadError
from ._loader import load_policy, policy_files
from ._model import Decision
from ._pin import approver_set_digest
from ._policy import Policy


def register(subparsers: Any) -> Any:
    """Add the `policy` command and its sub-commands to an argparse sub-parser set;
    returns the sub-command set, for commands that live elsewhere (`replay`)."""
    policy = subparsers.add_parser(
        "policy",
        help="check, test, explain and diff policies",
        description="Work with a policy folder offline (docs/policy.md). Exit status: 0 "
        "success, 1 a policy test failed, 2 invalid input.",
    )
    commands = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="validate a policy directory")
    check.add_argument("directory", type=policy_directory, metavar="DIR", help=_DIRECTORY)
    check.set_defaults(func=_check)

    test = commands.add_parser("test", help="run the policy tests in DIR/tests/*.yaml")
    test.add_argument("directory", type=policy_directory, metavar="DIR", help=_DIRECTORY)
    test.set_defaults(func=_test)

    explain = commands.add_parser("explain", help="show a decision and the rules behind it")
    explain.add_argument("directory", type=policy_directory, metavar="DIR", help=_DIRECTORY)
    explain.add_argument(
        "--principal",
        required=True,
        type=existing_file,
        metavar="FILE",
        help="the caller: a YAML or JSON principal (see examples/principals/)",
    )
    explain.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help="the public model id asked for (needed for the model.* actions)",
    )
    explain.add_argument(
        "--at",
        required=True,
        type=instant(zone_required=True),
        metavar="TIME",
        help="the instant to decide at: ISO 8601 with a zone (2027-01-15T16:00:00Z), a "
        "date, now, today, yesterday, tomorrow, or an offset from now (-1d, +2w)",
    )
    explain.add_argument(
        "--action",
        default="model.invoke",
        choices=ACTIONS,
        metavar="ACTION",
        help=f"one of {', '.join(ACTIONS)} (default: model.invoke)",
    )
    explain.add_argument("--json", action="store_true", help="print the decision as JSON")
    explain.set_defaults(func=_explain)

    diff = commands.add_parser("diff", help="which outcomes change between two policies")
    diff.add_argument(
        "old", type=policy_directory, metavar="OLD", help="the policy folder in force now"
    )
    diff.add_argument("new", type=policy_directory, metavar="NEW", help="the edited policy folder")
    diff.set_defaults(func=_diff)
    return commands


_DIRECTORY = "the policy folder, e.g. policies"


def policy_directory(text: str) -> Path:
    """A policy folder named on the command line: it exists and holds policy files, so
    that a wrong folder (docs, an empty one) is refused rather than read as a policy that
    allows nothing."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is a file, not a policy folder: give the folder that holds the "
            "policy's *.yaml files (e.g. policies)"
        )
    existing_directory(text)
    if not policy_files(path):
        raise argparse.ArgumentTypeError(
            f"{text} holds no policy files: give the policy folder, the one with the "
            "*.yaml or *.yml files (e.g. policies)"
        )
    return path


def _load(directory: str) -> Policy | None:
    try:
        return load_policy(directory)
    except PolicyLoadError as exc:
        print(f"policy invalid: {exc}", file=sys.stderr)
        return None


def _instant(value: datetime | None) -> str:
    return format_instant(value) if value is not None else "-"


def _check(args: argparse.Namespace) -> int:
    policy = _load(args.directory)
    if policy is None:
        return 2
    print(f"policy OK: {args.directory}")
    print(f"  version         {policy.version}")
    print(
        f"  contents        {len(policy.models)} models, {len(policy.access_classes)} access "
        f"classes, {len(policy.country_groups)} country groups, {len(policy.grants)} grants, "
        f"{len(policy.suspensions)} suspensions, {len(policy.approvers)} approver keys"
    )
    # What a settings file pins as policy.approvers_sha256 (docs/policy.md).
    print(f"  approver set    sha256 {approver_set_digest(policy)}")
    # Valid but risky: said on every check, and the exit status stays 0.
    for warning in policy.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    # A grant with enough approvals may still carry signatures that do not count (a
    # stale one, a stranger's): it loads, but the operator should know.
    for grant in policy.grants:
        result = verify_grant_approvals(grant, policy.approvers, policy.settings)
        for check in result.checks:
            if not check.counts:
                print(
                    f"warning: grant {grant.id}: signatures[{check.index}] {check.describe()}",
                    file=sys.stderr,
                )
    return 0


def _test(args: argparse.Namespace) -> int:
    policy = _load(args.directory)
    if policy is None:
        return 2
    folder = Path(args.directory) / "tests"
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")) if folder.is_dir() else []
    try:
        cases = [case for path in files for case in load_cases(path)]
    except PolicyLoadError as exc:
        print(f"policy test invalid: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print(f"no policy tests found in {folder}")
        return 1
    failed = 0
    for case in cases:
        decision = decide(policy, case.principal, case.action, case.model, case.at)
        problems = _mismatches(case.expect, decision)
        if problems:
            failed += 1
            print(f"FAIL  {case.name} ({case.file}:{case.line}): {'; '.join(problems)}")
        else:
            print(f"PASS  {case.name}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _mismatches(expect: Any, decision: Decision) -> list[str]:
    problems = []
    if expect.allowed != decision.allowed:
        problems.append(f"expected allowed={expect.allowed}, got {decision.allowed}")
    if expect.reason != decision.reason:
        problems.append(f"expected reason {expect.reason}, got {decision.reason}")
    if expect.error_code is not None and expect.error_code != decision.error_code:
        problems.append(f"expected error_code {expect.error_code}, got {decision.error_code}")
    if expect.grant is not None and expect.grant != decision.grant_id:
        problems.append(f"expected grant {expect.grant}, got {decision.grant_id}")
    return problems


def decision_json(decision: Decision) -> dict[str, Any]:
    """A JSON-ready view of a decision."""
    return {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "status": decision.status,
        "error_code": decision.error_code,
        "rules": list(decision.rules),
        "grant_id": decision.grant_id,
        "grant_not_after": _instant(decision.grant_not_after) if decision.grant_not_after else None,
        "grant_digest": decision.grant_digest,
        "grant_approvers": list(decision.grant_approvers),
        "obligations": list(decision.obligations),
        "policy_version": decision.policy_version,
        "roles": sorted(decision.roles),
    }


def _limits(policy: Policy, decision: Decision) -> dict[str, Any]:
    """The quota and rate limits that apply to an allowed request under `decision`."""
    grant = next((g for g in policy.grants if g.id == decision.grant_id), None)
    quota = grant.quota if grant is not None else None
    limits = policy.settings.rate_limits
    return {
        "grant_quota": None
        if quota is None
        else {"requests": quota.requests, "tokens": quota.tokens},
        "principal_per_minute": limits.principal_per_minute,
        # The organisation's own limit when it has one (explain names no organisation).
        "organisation_per_minute": limits.organisation_per_minute,
        "organisations": dict(limits.organisations),
    }


def _explain(args: argparse.Namespace) -> int:
    at: datetime = args.at
    policy = _load(args.directory)
    if policy is None:
        return 2
    try:
        principal = load_principal(Path(args.principal))
    except PolicyLoadError as exc:
        print(f"principal invalid: {exc}", file=sys.stderr)
        return 2
    if args.model is None and args.action.startswith("model."):
        print(
            f"gateway policy explain: --action {args.action} needs --model MODEL, the public "
            f"model id asked for (this policy has: {', '.join(sorted(policy.models)) or 'none'})",
            file=sys.stderr,
        )
        return 2
    decision = decide(policy, principal, args.action, args.model, at)
    limits = _limits(policy, decision)
    if args.json:
        print(json.dumps({**decision_json(decision), "limits": limits}, indent=2))
        return 0
    verdict = "allow" if decision.allowed else f"deny ({decision.status} {decision.error_code})"
    print(f"decision     {verdict}")
    print(f"reason       {decision.reason}")
    print(f"question     {principal.subject} {args.action} {args.model or '-'} at {_instant(at)}")
    print(f"roles        {', '.join(sorted(decision.roles)) or '-'}")
    if decision.grant_id is not None:
        print(f"grant        {decision.grant_id} (not_after {_instant(decision.grant_not_after)})")
        print(f"grant digest sha256:{decision.grant_digest}")
        print(f"approved by  {', '.join(decision.grant_approvers)}")
    for obligation in decision.obligations:
        print(f"obligation   {obligation}")
    if limits["grant_quota"] is not None:
        quota = limits["grant_quota"]
        print(f"quota        {quota['requests'] or 'any'} requests, {quota['tokens'] or 'any'}"
              " tokens over the grant's window")  # fmt: skip
    if limits["principal_per_minute"] or limits["organisation_per_minute"]:
        print(f"rate limits  {limits['principal_per_minute'] or 'none'} per minute per caller,"
              f" {limits['organisation_per_minute'] or 'none'} per organisation")  # fmt: skip
    print(f"policy       {decision.policy_version}")
    print("rules")
    for rule in decision.rules:
        print(f"  {rule}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    old = _load(args.old)
    new = _load(args.new)
    if old is None or new is None:
        return 2
    print(f"policy {old.version[:12]} -> {new.version[:12]}")
    changes = diff_policies(old, new)
    if not changes:
        print("no outcome changes")
        return 0
    for change in changes:
        since = f"from {_instant(change.since)}" if change.since else "from the start"
        who = f'organisation "{change.organisation}"' if change.organisation else "no organisation"
        if change.subject:
            who += f" subject {change.subject}"
        nationalities = " ".join(n or "(none)" for n in change.nationalities)
        print(
            f"{since}: {change.model} [{change.access_class}] {who}, "
            f"nationality {nationalities}: {change.old} -> {change.new}"
        )
    print(f"{len(changes)} changes")
    return 0
