"""Scoped trust over real TLS with real signed tokens, on the example policy.

The finding: carol (a Globex customer, certificate from the lab's CA) added a token from
the customer IdP claiming `org: "US CAISI"` and was served the pre-release model under
the agency's grant; the token alone got a 403 that revealed the model exists. With
scoped trust the claim counts for nothing: carol gets exactly the 404 of a model that
does not exist, on every route. A token from the agency's IdP that really vouches for
US CAISI, beside carol's Globex certificate, is two credentials that disagree: 401.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import RecordFilter
from tests.harness import Clock, RunningGateway, instant, running_gateway
from tests.idp import AUDIENCE, FakeIdentityProvider, make_signing_keys

CHAT = "/v1/chat/completions"
INSIDE_THE_GRANT = "2027-01-05T12:00:00Z"
CLAIMS = {"org": "US CAISI", "roles": ["evaluator"], "sub": "carol"}


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Evaluate this."}]}


@pytest.fixture
async def providers() -> AsyncIterator[dict[str, FakeIdentityProvider]]:
    keys = make_signing_keys()
    found = {
        "agency-idp": FakeIdentityProvider(keys, issuer="https://idp.agency.example"),
        "corp-idp": FakeIdentityProvider(keys, issuer="https://idp.corp.example"),
    }
    for provider in found.values():
        await provider.start()
    try:
        yield found
    finally:
        for provider in found.values():
            await provider.stop()


@pytest.fixture
async def gateway(
    tmp_path: Path, pki: Path, providers: dict[str, FakeIdentityProvider]
) -> AsyncIterator[RunningGateway]:
    identity = {
        "certificate_authorities": [
            {"id": "agency", "bundle": str(pki / "agency-ca" / "ca.pem")},
            {"id": "corp", "bundle": str(pki / "corp-ca" / "ca.pem")},
        ],
        "issuers": [
            {
                "id": name,
                "issuer": provider.issuer,
                "audiences": [AUDIENCE],
                "jwks_uri": f"{provider.base_url}/jwks",
                "algorithms": ["RS256"],
                "claims": {
                    "organisation": "org",
                    "roles": "roles",
                    "nationalities": "verified_claims.claims.nationalities",
                },
            }
            for name, provider in providers.items()
        ],
    }
    clock = Clock(instant(INSIDE_THE_GRANT))
    for provider in providers.values():
        provider.now = clock.now
    async with running_gateway(tmp_path, pki, clock=clock, identity=identity) as running:
        yield running


async def only_record(gateway: RunningGateway, response: httpx.Response) -> dict[str, Any]:
    request_id = response.headers["x-request-id"]
    found = await gateway.gateway.audit.query(RecordFilter(request_id=request_id))
    (record,) = [json.loads(data) for _, data in found]
    return record


def served(gateway: RunningGateway, model: str) -> list[bytes]:
    """The bodies the upstream received that name `model`."""
    return [seen.body for seen in gateway.upstream.log if model.encode() in seen.body]


def comparable(response: httpx.Response, model: str) -> tuple[int, str, dict[str, Any]]:
    """A 404 with the model name and request id taken out, to compare two of them."""
    error = dict(response.json()["error"])
    error.pop("request_id")
    error["message"] = error["message"].replace(model, "M")
    return response.status_code, response.headers["content-type"], error


async def test_a_customer_idp_token_claiming_the_agency_sees_only_the_unknown_model_404(
    gateway: RunningGateway, providers: dict[str, FakeIdentityProvider]
) -> None:
    token = providers["corp-idp"].token(CLAIMS)
    carol = gateway.client("carol", headers={"authorization": f"Bearer {token}"})
    token_only = gateway.client(None, headers={"authorization": f"Bearer {token}"})

    for caller in (carol, token_only):
        hidden = await caller.post(CHAT, json=chat("muse-spark-2"))
        unknown = await caller.post(CHAT, json=chat("muse-spark-9"))
        assert comparable(hidden, "muse-spark-2") == comparable(unknown, "muse-spark-9")
        assert hidden.status_code == 404
        record = await only_record(gateway, hidden)
        assert (record["reason"], record["grant_id"]) == ("model.prerelease", None)
        assert "attribute.out_of_scope[organisation:oidc:corp-idp]" in record["rules"]
        claimed = {"value": "US CAISI", "source": "oidc:corp-idp", "trusted": False}
        assert claimed in record["principal"]["organisations"]

        by_id = await caller.get("/v1/models/muse-spark-2")
        assert comparable(by_id, "muse-spark-2") == comparable(
            await caller.get("/v1/models/muse-spark-9"), "muse-spark-9"
        )
        listed = (await caller.get("/v1/models")).json()["data"]
        assert "muse-spark-2" not in [model["id"] for model in listed]
        assert served(gateway, "muse-spark-2") == []


async def test_whoami_says_the_out_of_scope_claim_is_not_trusted(
    gateway: RunningGateway, providers: dict[str, FakeIdentityProvider]
) -> None:
    token = providers["corp-idp"].token(CLAIMS)
    carol = gateway.client("carol", headers={"authorization": f"Bearer {token}"})

    view = (await carol.get("/v1/whoami")).json()

    trusted = {(a["name"], a["value"], a["source"]): a["trusted"] for a in view["attributes"]}
    assert trusted[("organisation", "US CAISI", "oidc:corp-idp")] is False
    assert trusted[("role", "evaluator", "oidc:corp-idp")] is False
    assert trusted[("organisation", "Globex Corp", "ca:corp")] is True
    assert view["models"] == ["muse-1"]


async def test_an_agency_token_beside_a_customer_certificate_is_a_conflict(
    gateway: RunningGateway, providers: dict[str, FakeIdentityProvider]
) -> None:
    token = providers["agency-idp"].token(CLAIMS)
    carol = gateway.client("carol", headers={"authorization": f"Bearer {token}"})

    for response in (
        await carol.post(CHAT, json=chat("muse-spark-2")),
        await carol.post(CHAT, json=chat("muse-1")),
        await carol.get("/v1/models"),
        await carol.get("/v1/whoami"),
    ):
        assert response.status_code == 401
        assert response.json()["error"] == {
            "message": "Authentication failed.",
            "type": "authentication_error",
            "code": "unauthenticated",
            "param": None,
            "request_id": response.headers["x-request-id"],
        }
        record = await only_record(gateway, response)
        assert (record["kind"], record["reason"], record["status"]) == (
            "auth_failure",
            "identity.conflict",
            401,
        )
        assert "identity.conflict[organisation:ca:corp,oidc:agency-idp]" in record["rules"]
        assert record["principal"]["credentials"] == [
            {"source": "ca:corp", "subject": "carol"},
            {"source": "oidc:agency-idp", "subject": "carol"},
        ]
    assert served(gateway, "muse-spark-2") == []


async def test_a_token_naming_another_subject_than_the_certificate_is_a_conflict(
    gateway: RunningGateway, providers: dict[str, FakeIdentityProvider]
) -> None:
    token = providers["corp-idp"].token({"org": "Globex Corp", "sub": "someone-else"})
    carol = gateway.client("carol", headers={"authorization": f"Bearer {token}"})

    response = await carol.post(CHAT, json=chat("muse-1"))

    assert response.status_code == 401
    record = await only_record(gateway, response)
    assert (record["reason"], record["rules"][-1]) == (
        "identity.conflict",
        "identity.conflict[subject]",
    )
