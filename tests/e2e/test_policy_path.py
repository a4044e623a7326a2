"""Policy in the running gateway: whoami, model listing, and reloads under load."""

from __future__ import annotations

import asyncio
import json

from gateway.audit import RecordFilter
from tests.harness import RunningGateway

CHAT = "/v1/chat/completions"


def chat(model: str = "muse-1") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


async def test_whoami_shows_attributes_with_sources_and_nothing_secret(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client("alice").get("/v1/whoami")
    assert response.status_code == 200
    view = response.json()
    assert view["subject"] == "alice"
    assert view["issuer"] == "ca:agency"
    assert view["auth_methods"] == ["mtls"]
    assert len(view["certificate_fingerprint"]) == 64
    assert {"name": "nationality", "value": "US", "source": "ca:agency", "trusted": True} in (
        view["attributes"]
    )
    assert view["roles"] == ["evaluator"]
    assert "muse-1" in view["models"]
    assert "BEGIN" not in response.text
    assert "PRIVATE" not in response.text


async def test_a_caller_without_credentials_gets_one_undifferentiated_401(
    gateway: RunningGateway,
) -> None:
    bare = gateway.client(None)
    no_credentials = await bare.post(CHAT, json=chat())
    bad_token = await bare.post(CHAT, json=chat(), headers={"authorization": "Bearer a.b.c"})
    for response in (no_credentials, bad_token):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.json()["error"]["message"] == "Authentication failed."
    reasons = []
    for response in (no_credentials, bad_token):
        found = await gateway.gateway.audit.query(
            RecordFilter(request_id=response.headers["x-request-id"])
        )
        (record,) = [json.loads(data) for _, data in found]
        assert record["kind"] == "auth_failure"
        reasons.append(record["reason"])
    assert reasons[0] == "credentials.missing"
    assert reasons[1].startswith("token.")


async def test_the_model_list_shows_only_what_the_caller_may_use(
    gateway: RunningGateway,
) -> None:
    gateway.clock.set("2027-01-05T16:00:00Z")
    listed = {}
    for who in ("alice", "carol", "bruno", "emil"):
        response = await gateway.client(who).get("/v1/models")
        listed[who] = sorted(m["id"] for m in response.json()["data"])
    assert listed == {
        "alice": ["muse-1", "muse-spark-2"],
        "carol": ["muse-1"],
        "bruno": ["muse-1"],
        "emil": [],
    }
    hidden = await gateway.client("carol").get("/v1/models/muse-spark-2")
    unknown = await gateway.client("carol").get("/v1/models/muse-spark-9")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "model_not_found"


async def test_reloads_under_concurrent_requests_never_fail_a_request(
    gateway: RunningGateway,
) -> None:
    client = gateway.client("carol")
    suspensions = gateway.policy_directory / "suspensions.yaml"
    original = suspensions.read_text()
    versions = {gateway.gateway.policies.current.version}
    statuses: list[int] = []
    stop = asyncio.Event()

    async def caller() -> None:
        while not stop.is_set():
            response = await client.post(CHAT, json=chat())
            statuses.append(response.status_code)

    callers = [asyncio.create_task(caller()) for _ in range(8)]
    try:
        for round_ in range(3):
            # A valid edit (a suspension of someone else), then an invalid one.
            suspensions.write_text(
                original + f"  - subject: nobody-{round_}\n    reason: drill\n"
                "    since: 2026-01-01T00:00:00Z\n"
            )
            async with asyncio.timeout(10):
                while gateway.gateway.policies.current.version in versions:
                    await asyncio.sleep(0.02)
            versions.add(gateway.gateway.policies.current.version)
            suspensions.write_text(original + "  - subject: [not, a, string]\n")
            async with asyncio.timeout(10):
                while gateway.gateway.policies.last_error is None:
                    await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*callers)
    assert len(statuses) > 20
    assert set(statuses) == {200}
    found = await gateway.gateway.audit.query(RecordFilter(kind="request"), limit=100_000)
    used = {json.loads(data)["policy_version"] for _, data in found}
    assert used <= versions
    assert len(used) >= 2
