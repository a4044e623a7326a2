"""The whole story on the example policy, end to end, over HTTPS with mTLS and real tokens.

A government evaluator uses the unreleased frontier model inside the agency's grant;
the same agency's foreign and dual nationals are refused; ordinary users cannot even
see the model until its release; the operator suspends the agency without a restart;
the auditor proves the log is whole and that a tampered copy is not. Every step checks
the audit records it produced.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import RecordFilter, leaf_hash, load_verifier, open_checkpoint, verify_inclusion
from gateway.cli import main as gateway_cli
from gateway.policy import grant_digest, load_policy
from tests.harness import Clock, RunningGateway, instant, running_gateway
from tests.idp import AUDIENCE, FakeIdentityProvider, make_signing_keys

CHAT = "/v1/chat/completions"
GRANT = "caisi-muse-spark-2-eval"
TEN_DAYS_BEFORE_RELEASE = "2027-01-05T16:00:00Z"
THIRTY_ONE_DAYS_BEFORE_RELEASE = "2026-12-15T16:00:00Z"
GRANT_END = "2027-01-08T00:00:00Z"
RELEASE = "2027-01-15T16:00:00Z"


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Evaluate this."}], **extra}


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider(make_signing_keys(), issuer="https://idp.agency.example")
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture
async def scenario(
    tmp_path: Path, pki: Path, idp: FakeIdentityProvider
) -> AsyncIterator[RunningGateway]:
    identity = {
        "certificate_authorities": [
            {"id": "agency", "bundle": str(pki / "agency-ca" / "ca.pem")},
            {"id": "corp", "bundle": str(pki / "corp-ca" / "ca.pem")},
        ],
        "issuers": [
            {
                "id": "agency-idp",
                "issuer": "https://idp.agency.example",
                "audiences": [AUDIENCE],
                "discovery": f"{idp.base_url}/.well-known/openid-configuration",
                "algorithms": ["RS256", "ES256"],
                "claims": {
                    "organisation": "org",
                    "roles": "roles",
                    "nationalities": "verified_claims.claims.nationalities",
                },
            }
        ],
    }
    clock = Clock(instant(TEN_DAYS_BEFORE_RELEASE))
    async with running_gateway(tmp_path, pki, clock=clock, identity=identity) as running:
        yield running


async def records_of(
    gateway: RunningGateway, response: httpx.Response, count: int = 1
) -> list[dict[str, Any]]:
    """The audit records a response's request produced (request first, then completion),
    waiting (bounded) for `count` of them: a completion is written after the response
    ends, so the client may see the end first."""
    request_id = response.headers["x-request-id"]
    async with asyncio.timeout(10):
        while True:
            found = await gateway.gateway.audit.query(RecordFilter(request_id=request_id))
            if len(found) >= count:
                return [json.loads(data) for _, data in found]
            await asyncio.sleep(0.02)


def version(gateway: RunningGateway) -> str:
    return str(gateway.gateway.policies.current.version)


async def test_the_seed_scenario(
    scenario: RunningGateway, idp: FakeIdentityProvider, tmp_path: Path, pki: Path
) -> None:
    gw = scenario
    alice = gw.client("alice")
    v1 = version(gw)

    # -- the evaluator, 10 days before release, under the agency's grant -------------------
    response = await alice.post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 200
    assert response.headers["x-gateway-grant"] == GRANT
    assert response.headers["x-gateway-grant-not-after"] == GRANT_END
    request, completion = await records_of(gw, response, 2)
    assert (request["kind"], request["decision"], request["reason"]) == (
        "request",
        "allow",
        "allow.grant",
    )
    assert request["grant_id"] == GRANT
    # The record proves which approved text the request relied on, and who approved it.
    (grant,) = load_policy(gw.policy_directory).grants
    assert request["grant_digest"] == grant_digest(grant)
    assert request["grant_approvers"] == ["chief-scientist", "general-counsel"]
    assert request["policy_version"] == v1
    assert request["principal"]["nationalities"] == [
        {"value": "US", "source": "ca:agency", "trusted": True}
    ]
    assert completion["kind"] == "completion"
    assert completion["request_index"] is not None
    assert completion["usage"]["total_tokens"] > 0

    async with alice.stream("POST", CHAT, json=chat("muse-spark-2", stream=True)) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["x-gateway-grant-not-after"] == GRANT_END
        body = b"".join([chunk async for chunk in streamed.aiter_raw()])
    assert body.endswith(b"data: [DONE]\n\n")
    _, completion = await records_of(gw, streamed, 2)
    assert completion["stream"] == "completed"

    # The same evaluator with an agency token instead of a certificate.
    idp.now = gw.clock.now
    token = idp.token(
        {"sub": "alice@caisi", "verified_claims": {"claims": {"nationalities": ["USA"]}}}
    )
    anonymous = gw.client(None, headers={"authorization": f"Bearer {token}"})
    response = await anonymous.post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 200
    request, _ = await records_of(gw, response, 2)
    assert request["principal"]["auth_methods"] == ["oidc"]
    assert request["principal"]["nationalities"] == [
        {"value": "US", "source": "oidc:agency-idp", "trusted": True}
    ]

    # -- outside the grant window ---------------------------------------------------------
    gw.clock.set(THIRTY_ONE_DAYS_BEFORE_RELEASE)
    response = await alice.post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "grant_not_yet_valid"
    (request,) = await records_of(gw, response)
    assert (request["decision"], request["reason"]) == ("deny", "grant.not_yet_valid")

    gw.clock.set(GRANT_END)
    response = await alice.post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "grant_expired"
    (request,) = await records_of(gw, response)
    assert request["reason"] == "grant.expired"

    # -- nationality inside the window ----------------------------------------------------
    gw.clock.set(TEN_DAYS_BEFORE_RELEASE)
    for who, reason in (("bruno", "nationality.denied"), ("dana", "nationality.denied")):
        response = await gw.client(who).post(CHAT, json=chat("muse-spark-2"))
        assert response.status_code == 403, who
        assert response.json()["error"]["code"] == "nationality_restricted"
        (request,) = await records_of(gw, response)
        assert request["reason"] == reason
        assert request["grant_id"] is None
    idp.now = gw.clock.now
    stateless = idp.token({"sub": "pat@caisi", "verified_claims": {"claims": {}}})
    response = await gw.client(None, headers={"authorization": f"Bearer {stateless}"}).post(
        CHAT, json=chat("muse-spark-2")
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "nationality_restricted"
    (request,) = await records_of(gw, response)
    assert request["reason"] == "nationality.missing"

    # -- an ordinary user cannot see the unreleased model ----------------------------------
    carol = gw.client("carol")
    hidden = await carol.post(CHAT, json=chat("muse-spark-2"))
    unknown = await carol.post(CHAT, json=chat("muse-spark-9"))
    assert hidden.status_code == unknown.status_code == 404
    assert sorted(hidden.headers.keys()) == sorted(unknown.headers.keys())
    assert hidden.json()["error"]["message"].replace("muse-spark-2", "M") == (
        unknown.json()["error"]["message"].replace("muse-spark-9", "M")
    )
    assert {
        k: v for k, v in hidden.json()["error"].items() if k not in ("message", "request_id")
    } == {k: v for k, v in unknown.json()["error"].items() if k not in ("message", "request_id")}
    (request,) = await records_of(gw, hidden)
    assert request["reason"] == "model.prerelease"
    listed = (await carol.get("/v1/models")).json()["data"]
    assert [m["id"] for m in listed] == ["muse-1"]
    listed = (await alice.get("/v1/models")).json()["data"]
    assert sorted(m["id"] for m in listed) == ["muse-1", "muse-spark-2"]

    # -- after release, US users of the general public are served -------------------------
    gw.clock.set(RELEASE)
    response = await carol.post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 200
    request, _ = await records_of(gw, response, 2)
    assert request["reason"] == "allow.released"
    response = await gw.client("emil").post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "nationality_restricted"

    # -- the operator suspends the agency, without a restart -------------------------------
    gw.clock.set(TEN_DAYS_BEFORE_RELEASE)
    suspensions = gw.policy_directory / "suspensions.yaml"
    suspensions.write_text(
        suspensions.read_text()
        + "  - organisation: US CAISI\n"
        + "    reason: evaluation paused by the lab's counsel\n"
        + "    since: 2026-12-01T00:00:00Z\n"
    )
    v2 = await wait_for_new_policy(gw, v1)
    response = await alice.post(CHAT, json=chat("muse-spark-2"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "suspended"
    (request,) = await records_of(gw, response)
    assert (request["reason"], request["policy_version"]) == ("suspended.organisation", v2)

    grants = gw.policy_directory / "grants.yaml"
    grants.write_text(grants.read_text().replace("2026-12-16T16:00:00Z", "2026-11-01T00:00:00Z"))
    await wait_for_reload_error(gw)
    assert version(gw) == v2
    ready = (await carol.get("/readyz")).json()
    assert ready["policy"] == {"version": v2, "last_reload_failed": True}
    response = await alice.post(CHAT, json=chat("muse-spark-2"))
    assert response.json()["error"]["code"] == "suspended"
    reloads = [
        json.loads(data)
        for _, data in await gw.gateway.audit.query(RecordFilter(kind="policy_reload"))
    ]
    assert [(r["ok"], r["new_version"]) for r in reloads][:2] == [(True, v2), (False, None)]

    # -- the auditor ----------------------------------------------------------------------
    audra = gw.client("audra")
    note = await wait_for_checkpoint(audra)
    verifier = load_verifier(pki / "audit-signing.pub")
    checkpoint = open_checkpoint(note, verifier)
    denials = (await audra.get("/v1/audit/records", params={"decision": "deny"})).json()
    reasons = {entry["record"]["reason"] for entry in denials["records"]}
    assert {"grant.not_yet_valid", "nationality.denied", "model.prerelease"} <= reasons
    index = denials["records"][0]["index"]
    proof = (await audra.get(f"/v1/audit/records/{index}")).json()
    record_bytes = base64.b64decode(proof["record"])
    verify_inclusion(
        index,
        proof["tree_size"],
        leaf_hash(record_bytes),
        [base64.b64decode(h) for h in proof["proof"]],
        open_checkpoint(proof["checkpoint"], verifier).root_hash,
    )
    assert json.loads(record_bytes)["decision"] == "deny"
    assert checkpoint.tree_size > 0
    refused = await alice.get("/v1/audit/checkpoint")
    assert refused.status_code == 403

    # Offline verification of the whole log with the public key, and of a tampered copy.
    copy = tmp_path / "audit-copy.db"
    with sqlite3.connect(gw.audit_store) as live, sqlite3.connect(copy) as target:
        live.backup(target)
    key = str(pki / "audit-signing.pub")
    assert gateway_cli(["audit", "verify", "--store", str(copy), "--key", key]) == 0
    with sqlite3.connect(copy) as db:
        (data,) = db.execute("SELECT data FROM records WHERE leaf_index = ?", (index,)).fetchone()
        db.execute(
            "UPDATE records SET data = ? WHERE leaf_index = ?",
            (bytes(data).replace(b'"deny"', b'"allow"'), index),
        )
    assert gateway_cli(["audit", "verify", "--store", str(copy), "--key", key]) == 1


async def wait_for_new_policy(gw: RunningGateway, old: str) -> str:
    async with asyncio.timeout(10):
        while version(gw) == old:
            await asyncio.sleep(0.05)
    return version(gw)


async def wait_for_reload_error(gw: RunningGateway) -> None:
    async with asyncio.timeout(10):
        while gw.gateway.policies.last_error is None:
            await asyncio.sleep(0.05)


async def wait_for_checkpoint(client: httpx.AsyncClient) -> str:
    async with asyncio.timeout(10):
        while True:
            response = await client.get("/v1/audit/checkpoint")
            if response.status_code == 200:
                return response.text
            await asyncio.sleep(0.2)
