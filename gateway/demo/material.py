"""Development trust material for the demo: two CAs, a server certificate, one
certificate per demo caller, the audit keys and the upstream credential.

Everything goes under `certs/dev/` (git-ignored) and is made only when missing, so
`make run` is quick the second time and the identities stay stable.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.audit import generate_keys
from gateway.identity.pki import init_ca, issue_client, issue_server


@dataclass(frozen=True, slots=True)
class DemoCaller:
    """A demo identity: who they are, which CA vouches for them, and their story."""

    name: str
    ca: str
    organisation: str
    units: tuple[str, ...]
    citizenships: tuple[str, ...]
    story: str


CALLERS = (
    DemoCaller(
        "alice", "agency", "US CAISI", ("evaluator",), ("US",), "government evaluator, US citizen"
    ),
    DemoCaller(
        "bruno",
        "agency",
        "US CAISI",
        ("evaluator",),
        ("FR",),
        "evaluator of the same agency, French citizen",
    ),
    DemoCaller(
        "dana",
        "agency",
        "US CAISI",
        ("evaluator",),
        ("US", "CN"),
        "evaluator with US and Chinese citizenship",
    ),
    DemoCaller(
        "carol", "corp", "Globex Corp", ("customer",), ("US",), "KYC-verified customer, US citizen"
    ),
    DemoCaller(
        "emil",
        "corp",
        "Globex Corp",
        ("customer",),
        (),
        "customer whose nationality nobody vouches for",
    ),
    DemoCaller(
        "oscar", "corp", "Example AI Labs", ("operator",), ("US",), "the lab's policy operator"
    ),
    DemoCaller(
        "audra",
        "corp",
        "Example AI Labs",
        ("auditor",),
        ("US",),
        "auditor with read access to the audit API",
    ),
)

ORIGIN = "demo.model-gateway.local/audit"


def ensure_material(root: Path, not_before: datetime | None = None) -> Path:
    """Create whatever dev material is missing under `root` (certs/dev); returns it.

    `not_before` backdates the CAs and client certificates (tests walk a clock through
    fixed dates of the example policy, whatever day they run on).
    """
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    for ca, name in (("agency", "Demo US Agency Root CA"), ("corp", "Demo Example AI Labs CA")):
        if not (root / f"{ca}-ca" / "ca.pem").exists():
            init_ca(root / f"{ca}-ca", name, not_before=not_before)
    if not (root / "server.pem").exists():
        issue_server(root / "corp-ca", root / "server", ["localhost", "127.0.0.1"])
    for caller in CALLERS:
        if not (root / f"{caller.name}.pem").exists():
            issue_client(
                root / f"{caller.ca}-ca",
                root / caller.name,
                common_name=caller.name,
                organisation=caller.organisation,
                units=caller.units,
                citizenships=caller.citizenships,
                days=730 if not_before is None else 3650,
                not_before=not_before,
            )
    if not (root / "audit-signing.key").exists():
        generate_keys(root, ORIGIN)
    key = root / "upstream.key"
    if not key.exists():
        key.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        key.chmod(0o600)
    return root
