"""Callers see the public model id in answers, never the upstream's own name for it, and
the completion record's digest is of the bytes the caller received."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.audit import RecordFilter
from tests.harness import Clock, RunningGateway, running_gateway
from tests.servers import serve_asgi

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Hello there"}]


async def _completion(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while not (
            found := await gateway.gateway.audit.query(
                RecordFilter(request_id=request_id, kind="completion")
            )
        ):
            await asyncio.sleep(0.02)
    return dict(json.loads(found[0][1]))


async def test_a_json_answer_names_the_public_model(gateway: RunningGateway) -> None:
    # muse-1 is routed to the upstream's "demo-muse-1".
    response = await gateway.client("alice").post(CHAT, json={"model": "muse-1", "messages": HELLO})
    assert response.status_code == 200
    assert json.loads(gateway.upstream.log[-1].body)["model"] == "demo-muse-1"
    assert response.json()["model"] == "muse-1"
    assert b"demo-muse-1" not in response.content
    record = await _completion(gateway, response.headers["x-request-id"])
    assert record["response_digest"] == gateway.gateway.digests.digest(response.content)
    assert record["response_bytes"] == len(response.content)


async def test_a_stream_names_the_public_model_in_every_chunk(gateway: RunningGateway) -> None:
    body = {
        "model": "muse-1",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
        "demo": {"chunks": 12},
    }
    async with gateway.client("alice").stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        received = b"".join([chunk async for chunk in response.aiter_raw()])
    events = [e for e in received.split(b"\n\n") if e and e != b"data: [DONE]"]
    assert len(events) >= 12
    assert {json.loads(e.removeprefix(b"data: "))["model"] for e in events} == {"muse-1"}
    assert b"demo-muse-1" not in received
    record = await _completion(gateway, response.headers["x-request-id"])
    assert record["response_digest"] == gateway.gateway.digests.digest(received)
    assert record["usage"] is not None


async def test_an_embeddings_answer_names_the_public_model(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(
        "/v1/embeddings", json={"model": "muse-1", "input": ["a", "b"]}
    )
    assert response.json()["model"] == "muse-1"


async def test_the_rewrite_can_be_turned_off(tmp_path: Path, pki: Path, clock: Clock) -> None:
    models = [
        {"id": "muse-spark-2", "upstream": "demo"},
        {
            "id": "muse-1",
            "upstream": "demo",
            "upstream_model": "demo-muse-1",
            "rewrite_response_model": False,
        },
    ]
    async with running_gateway(tmp_path, pki, clock=clock, overrides={"models": models}) as gw:
        response = await gw.client("alice").post(CHAT, json={"model": "muse-1", "messages": HELLO})
    assert response.json()["model"] == "demo-muse-1"


async def _answer_with_length(scope: Any, receive: Any, send: Any) -> None:
    """An upstream that sends Content-Length, and an error naming its model."""
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    status = 503 if scope["path"].endswith("/embeddings") else 200
    if status == 503:
        answer = {"error": {"message": "demo-muse-1 is overloaded", "model": "demo-muse-1"}}
    else:
        answer = {"object": "chat.completion", "model": "demo-muse-1", "choices": []}
    body = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_answers_of_known_length_and_errors_name_the_public_model(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    async with (
        serve_asgi(_answer_with_length) as url,
        running_gateway(tmp_path, pki, clock=clock, upstream_url=url) as gateway,
    ):
        client = gateway.client("alice")
        answer = await client.post(CHAT, json={"model": "muse-1", "messages": HELLO})
        error = await client.post("/v1/embeddings", json={"model": "muse-1", "input": "a"})
    assert answer.json()["model"] == "muse-1"
    assert int(answer.headers["content-length"]) == len(answer.content)
    assert error.status_code == 503
    assert error.json() == {"error": {"message": "muse-1 is overloaded", "model": "muse-1"}}
    assert int(error.headers["content-length"]) == len(error.content)
