"""Development trust material for the demo: two CAs, a server certificate, one
certificate per demo caller, the audit keys, the identity assertion key and the
upstream credential.

Everything goes under `certs/dev/` (git-ignored) and is made only when missing, so
`make run` is quick the second time and the identities stay stable.

The CAs and the callers' certificates are valid from `VALID_FROM` (2025-01-01, before
every date of the example policy) until ten years from when they are made, so the demo
can run its clock (`make run AT=...`) at any instant of that span.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from gateway.audit import generate_keys
from gateway.identity.pki import CA_CERTIFICATE, init_ca, issue_client, issue_server
from gateway.proxy._assertion import PUBLIC_KEY_FILE, SIGNING_KEY_FILE, generate_signing_key

VALID_FROM = datetime(2025, 1, 1, tzinfo=UTC)
_LIFETIME = timedelta(days=3650)


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

    The CAs and client certificates are valid from `not_before` (default `VALID_FROM`)
    until ten years from now, so a clock can walk through the example policy's dates.
    """
    now = datetime.now(UTC)
    start = min(not_before or VALID_FROM, now - timedelta(minutes=5))
    days = (now + _LIFETIME - start).days
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    for ca, name in (("agency", "Demo US Agency Root CA"), ("corp", "Demo Example AI Labs CA")):
        if not (root / f"{ca}-ca" / "ca.pem").exists():
            init_ca(root / f"{ca}-ca", name, days=days, not_before=start)
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
                days=days,
                not_before=start,
            )
    if not (root / "audit-signing.key").exists():
        generate_keys(root, ORIGIN)
    if not (root / SIGNING_KEY_FILE).exists():
        (root / PUBLIC_KEY_FILE).unlink(missing_ok=True)  # a public half without its key
        generate_signing_key(root)
    key = root / "upstream.key"
    if not key.exists():
        key.write_text(secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        key.chmod(0o600)
    return root


def validity(root: Path) -> tuple[datetime, datetime]:
    """The span in which every demo CA and caller certificate under `root` is valid.

    Material made by an older demo may cover less than `ensure_material` makes now.
    """
    paths = [root / f"{ca}-ca" / CA_CERTIFICATE for ca in ("agency", "corp")]
    paths += [root / f"{caller.name}.pem" for caller in CALLERS]
    certificates = [x509.load_pem_x509_certificate(path.read_bytes()) for path in paths]
    return (
        max(c.not_valid_before_utc for c in certificates),
        min(c.not_valid_after_utc for c in certificates),
    )
