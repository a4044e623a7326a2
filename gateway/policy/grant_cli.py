"""`gateway grant ...`: approver keys, signing grants and verifying their approvals.

    gateway grant keys generate --out DIR --id KEYID [--organisation ORG]
    gateway grant sign --key KEY FILE --id GRANT
    gateway grant verify DIR [--id GRANT]

Exit status: 0 success, 1 a grant lacks approvals (verify), 2 invalid input.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.arguments import existing_file, output_directory

from ._approvals import sign_grant, verify_grant_approvals
from ._approvers import GrantReport, encode_signature
from ._errors import PolicyError, PolicyLoadError
from ._grant_edit import add_signature
from ._loader import inspect_grants, policy_files
from .approver_keys import generate_approver_key, load_approver_key, public_key_text
from .cli import policy_directory


def register(subparsers: Any) -> None:
    """Add the `grant` command and its sub-commands to an argparse sub-parser set."""
    grant = subparsers.add_parser(
        "grant",
        help="sign grants and verify their approvals",
        description="Approver keys, grant signatures and their verification (docs/policy.md, "
        "Grant approvals). Exit status: 0 success, 1 a grant lacks approvals, 2 invalid input.",
    )
    commands = grant.add_subparsers(dest="grant_command", required=True, metavar="COMMAND")

    keys = commands.add_parser("keys", help="approver key pairs")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    generate = key_commands.add_parser(
        "generate", help="make an approver key pair (KEYID.key, mode 0600, and KEYID.pub)"
    )
    generate.add_argument(
        "--out",
        required=True,
        type=output_directory,
        metavar="DIR",
        help="folder for the key files (kept offline)",
    )
    generate.add_argument("--id", required=True, metavar="KEYID", help="the approver's key id")
    generate.add_argument(
        "--organisation",
        default=None,
        metavar="ORG",
        help="the approver's organisation, for the policy entry printed at the end",
    )
    generate.set_defaults(func=_generate)

    sign = commands.add_parser("sign", help="add your signature to a grant in a policy file")
    sign.add_argument(
        "--key",
        required=True,
        type=existing_file,
        metavar="KEY",
        help="your approver private key (KEYID.key)",
    )
    sign.add_argument(
        "file",
        type=_grants_file,
        metavar="FILE",
        help="the policy file holding the grant (a *.yaml or *.yml file of the policy folder)",
    )
    sign.add_argument("--id", required=True, metavar="GRANT", help="the grant's id")
    sign.set_defaults(func=_sign)

    verify = commands.add_parser("verify", help="show who signed each grant and what counts")
    verify.add_argument(
        "directory", type=policy_directory, metavar="DIR", help="the policy folder, e.g. policies"
    )
    verify.add_argument("--id", default=None, metavar="GRANT", help="only this grant")
    verify.set_defaults(func=_verify)


def _grants_file(text: str) -> Path:
    """A policy file `grant sign` can edit: an existing *.yaml or *.yml file that the
    policy of its folder is read from."""
    path = existing_file(text)
    if path.resolve() not in {p.resolve() for p in policy_files(path.resolve().parent)}:
        raise argparse.ArgumentTypeError(
            f"{text} is not a grants YAML file: give the *.yaml or *.yml file of the policy "
            "folder that holds the grant (e.g. policies/grants.yaml)"
        )
    return path


def _error(message: str) -> int:
    print(f"gateway grant: {message}", file=sys.stderr)
    return 2


def _inside_git_tree(path: Path) -> Path | None:
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def _generate(args: argparse.Namespace) -> int:
    directory = Path(args.out).resolve()
    try:
        private_path, public_path = generate_approver_key(directory, args.id)
        public = public_key_text(load_approver_key(private_path))
    except PolicyError as exc:
        return _error(str(exc))
    print(f"approver key {args.id}")
    print(f"  private key   {private_path}  (mode 0600: keep it offline, never commit it)")
    print(f"  public key    {public_path}")
    repository = _inside_git_tree(directory)
    if repository is not None:
        print(
            f"gateway grant: warning: {directory} is inside the git working tree {repository}; "
            f"make sure {private_path.name} is ignored and never committed",
            file=sys.stderr,
        )
    print("\nList it in the policy (e.g. approvers.yaml):\n")
    print("approvers:")
    print(f"  - id: {args.id}")
    print(f"    organisation: {args.organisation or '<the approver organisation>'}")
    print(f"    public_key: {public}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        key = load_approver_key(Path(args.key))
        mode = Path(args.key).stat().st_mode
    except (PolicyError, OSError) as exc:
        return _error(f"--key {exc}")
    try:
        policy, reports = inspect_grants(path.resolve().parent)
    except PolicyLoadError as exc:
        return _error(f"policy invalid: {exc}")
    except (PolicyError, OSError) as exc:
        return _error(str(exc))
    if mode & 0o077:
        print(
            f"gateway grant: warning: {args.key} can be read by other users (chmod 600 it)",
            file=sys.stderr,
        )
    report = _report_for(reports, path, args.id)
    if report is None:
        here = sorted(r.grant.id for r in reports if Path(r.file).resolve() == path.resolve())
        if not here:
            return _error(f"{path} holds no grants (no grants: list); give the file that does")
        return _error(f"{path} holds no grant with id {args.id!r} (it has: {', '.join(here)})")
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    approver = next((a for a in policy.approvers.values() if a.public_key == public), None)
    if approver is None:
        return _error(
            f"this key is not an approver key of {path.resolve().parent} (its public key is "
            f"{public_key_text(key)}); list it under approvers first"
        )
    if any(c.key_id == approver.id and c.counts for c in report.result.checks):
        print(f"grant {args.id} already carries a valid signature by {approver.id}")
        return 0
    signature = sign_grant(report.grant, approver.id, key)
    others = tuple(s for s in report.grant.signatures if s.key_id != approver.id)
    trial = verify_grant_approvals(
        replace(report.grant, signatures=(*others, signature)), policy.approvers, policy.settings
    )
    if not trial.checks[-1].counts:
        return _error(f"not signed: the signature would not count, {trial.checks[-1].describe()}")
    original = path.read_text(encoding="utf-8")
    try:
        edited = add_signature(
            original, str(path), args.id, approver.id, encode_signature(signature.signature)
        )
    except PolicyError as exc:
        return _error(str(exc))
    _replace(path, edited)
    # Read the signed file back as the gateway will: the new signature must be there and
    # verify, or the file goes back to what it was.
    try:
        _, reports = inspect_grants(path.resolve().parent)
        after = _report_for(reports, path, args.id)
        ours = [c for c in after.result.checks if c.key_id == approver.id] if after else []
        if after is None or len(ours) != 1:
            raise PolicyError("the signature was not found in the file")
    except PolicyError as exc:
        _replace(path, original)
        return _error(f"signing failed, {path} is left as it was: {exc}")
    result = after.result
    print(
        f"signed grant {args.id} as {approver.id} ({approver.organisation}) in {path}: "
        f"{ours[0].describe()}; {len(result.approved_by)} of {result.required} approvals"
        + ("" if result.approved else " (the grant does not load until it has enough)")
    )
    return 0 if ours[0].counts else 1


def _report_for(reports: list[GrantReport], path: Path, grant_id: str) -> GrantReport | None:
    target = path.resolve()
    for report in reports:
        if report.grant.id == grant_id and Path(report.file).resolve() == target:
            return report
    return None


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` in one rename, keeping its mode: a reader (or the gateway's
    file watcher) sees the old file or the new one, never half of it."""
    mode = path.stat().st_mode & 0o7777
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _verify(args: argparse.Namespace) -> int:
    try:
        policy, reports = inspect_grants(args.directory)
    except PolicyLoadError as exc:
        return _error(f"policy invalid: {exc}")
    if args.id is not None:
        reports = [report for report in reports if report.grant.id == args.id]
        if not reports:
            return _error(f"{args.directory} has no grant with id {args.id!r}")
    print(
        f"approver keys   {len(policy.approvers)}; every grant needs "
        f"{policy.settings.min_approvers} from distinct keys outside the grantee organisation"
    )
    failed = 0
    for report in reports:
        result = report.result
        print(f"\ngrant {report.grant.id}  {report.file}:{report.line}")
        print(f"  grantee     {report.grant.organisation}")
        print(f"  digest      sha256:{result.digest}")
        if not result.checks:
            print("  signatures  none")
        else:
            print("  signatures")
        for check, line in zip(result.checks, report.signature_lines, strict=True):
            verdict = "counts " if check.counts else "ignored"
            print(f"    {verdict} {report.file}:{line}  {check.describe()}")
        have = f"{len(result.approved_by)} of {result.required}"
        if result.approved:
            print(f"  approved    yes, {have}: {', '.join(result.approved_by)}")
        else:
            failed += 1
            print(f"  approved    NO, {have}: the grant does not load")
    return 1 if failed else 0
