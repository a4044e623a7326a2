"""What `make run` prints once the demo is up: the exact commands to try as each role."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.instants import format_instant

# The example grant's window (policies/grants.yaml) and an instant inside it.
GRANT_OPENS = datetime(2026, 12, 16, 16, tzinfo=UTC)
GRANT_CLOSES = datetime(2027, 1, 8, tzinfo=UTC)
INSIDE = "2027-01-05T12:00:00Z"


def _grant_hint(now: datetime) -> str:
    """Where `now` stands against the example grant's window, and how to get inside."""
    if now < GRANT_OPENS:
        opens = format_instant(GRANT_OPENS)
        return (
            f"(muse-spark-2 is pre-release: the agency's grant opens {opens};\n"
            f"    restart with `make run AT={INSIDE}` to be inside the window)"
        )
    if now < GRANT_CLOSES:
        return (
            "(muse-spark-2 is pre-release and the agency's grant is open now, until"
            f" {format_instant(GRANT_CLOSES)})"
        )
    return (
        f"(the agency's grant for muse-spark-2 closed {format_instant(GRANT_CLOSES)};\n"
        f"    restart with `make run AT={INSIDE}` to be inside its window)"
    )


def walkthrough(port: int, at: datetime | None, store: Path) -> str:
    """The banner with copy-and-paste commands (paths relative to the repository root).

    `at`: where the gateway's clock started (None: the real clock); `store`: its audit log.
    """
    url = f"https://localhost:{port}"
    tls = "--cacert certs/dev/corp-ca/ca.pem"

    def curl(who: str) -> str:
        return f"curl -s {tls} --cert certs/dev/{who}.pem --key certs/dev/{who}-key.pem"

    clock = (
        f"the gateway's clock runs from {format_instant(at)}"
        if at is not None
        else "the gateway runs on the real clock"
    )
    chat = (
        "-H 'content-type: application/json' "
        '-d \'{"model": "muse-1", "messages": [{"role": "user", "content": "Hello"}]}\''
    )
    frontier = chat.replace("muse-1", "muse-spark-2")
    return f"""
================================================================================
 Model Access Gateway demo: {url} (mTLS), demo upstream on 127.0.0.1:9000
 ({clock}; certificates and keys in certs/dev/, audit log in {store})
================================================================================

 As an EVALUATOR (alice: US CAISI, US citizen; bruno: same agency, French citizen)
   {curl("alice")} {url}/v1/whoami
   {curl("alice")} {url}/v1/models
   {curl("alice")} {url}/v1/chat/completions {chat}
   {curl("alice")} -i {url}/v1/chat/completions {frontier}
   {curl("bruno")} {url}/v1/chat/completions {frontier}
   .venv/bin/python examples/evaluator_sdk.py --who alice --model muse-1 --stream
   {_grant_hint(at if at is not None else datetime.now(UTC))}

 As an OPERATOR
   .venv/bin/gateway policy check policies
   .venv/bin/gateway policy test policies
   .venv/bin/gateway policy explain policies --principal examples/principals/alice.yaml \\
       --model muse-spark-2 --at 2027-01-05T12:00:00Z
   edit policies/suspensions.yaml (the gateway reloads on save, or on SIGHUP)

 As an AUDITOR (audra)
   the console: {url}/audit/ in a browser holding audra's certificate
   (README, "As an auditor"); pin the key in certs/dev/audit-signing.pub
   {curl("audra")} {url}/v1/audit/checkpoint
   {curl("audra")} '{url}/v1/audit/records?decision=deny&limit=5'
   .venv/bin/gateway audit verify --store {store} --key certs/dev/audit-signing.pub
   .venv/bin/gateway audit query --store {store} --decision deny
   .venv/bin/gateway audit prove --store {store} --index 0 --out proof.json

 Stop with Ctrl-C (the gateway signs a final checkpoint).
"""
