"""Approver keys and grant signatures for tests: the example policy's grant is signed by
keys whose private halves do not exist any more, so a test that edits a grant signs it
again with keys of its own, listed in an extra approvers file."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.policy import sign_grant
from gateway.policy._approvers import encode_signature
from gateway.policy._grant_edit import add_signature
from gateway.policy._loader import inspect_grants
from gateway.policy.approver_keys import public_key_text

LAB = "Example AI Labs"
TEST_APPROVERS = {
    "lab-approver-1": LAB,
    "lab-approver-2": LAB,
    "lab-approver-3": LAB,
    "caisi-approver": "US CAISI",
    "other-approver": "Northwind Audit",
}


def approver_keys() -> dict[str, Ed25519PrivateKey]:
    """A fresh key for each of TEST_APPROVERS."""
    return {key_id: Ed25519PrivateKey.generate() for key_id in TEST_APPROVERS}


def approvers_yaml(keys: dict[str, Ed25519PrivateKey]) -> str:
    """An `approvers` section listing `keys` with their TEST_APPROVERS organisations."""
    lines = ["approvers:"]
    for key_id, key in keys.items():
        lines += [
            f"  - id: {key_id}",
            f"    organisation: {TEST_APPROVERS[key_id]}",
            f"    public_key: {public_key_text(key)}",
        ]
    return "\n".join(lines) + "\n"


def sign_file(
    path: Path,
    keys: dict[str, Ed25519PrivateKey],
    key_ids: tuple[str, ...],
    grant: str | None = None,
) -> None:
    """Sign the grants in policy file `path` (or only `grant`) with `key_ids`, as
    `gateway grant sign` does: over the grant as loaded, added to the file's text."""
    _, reports = inspect_grants(path.parent)
    text = path.read_text()
    for report in reports:
        if Path(report.file) != path or grant not in (None, report.grant.id):
            continue
        for key_id in key_ids:
            signature = sign_grant(report.grant, key_id, keys[key_id])
            text = add_signature(
                text, str(path), report.grant.id, key_id, encode_signature(signature.signature)
            )
    path.write_text(text)


def resign_policy(directory: Path, keys: dict[str, Ed25519PrivateKey] | None = None) -> None:
    """After editing the grants of a policy copy: list test approvers beside the example's,
    drop every grant's old signatures and sign each grant with two lab approver keys."""
    keys = keys or approver_keys()
    (directory / "approvers-test.yaml").write_text(approvers_yaml(keys))
    for path in sorted(directory.glob("*.yaml")):
        text = path.read_text()
        if "grants:" not in text:
            continue
        path.write_text(re.sub(r"\n    signatures:\n(?:      .*\n)+", "\n", text))
        sign_file(path, keys, ("lab-approver-1", "lab-approver-2"))
