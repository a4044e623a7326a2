"""The completion record carries the usage the upstream reported, found wherever the
upstream put it in an answer of any size, and never read from text a caller could make
the model write. Over real sockets through a real gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway.audit import RecordFilter
from tests.harness import Clock, RunningGateway, running_gateway
from tests.servers import serve_asgi


async def completion(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            found = await gateway.gateway.audit.query(
                RecordFilter(request_id=request_id, kind="completion")
            )
            if found:
                return dict(json.loads(found[0][1]))
            await asyncio.sleep(0.02)


async def test_usage_after_ten_megabytes_of_embeddings_is_recorded(
    gateway: RunningGateway,
) -> None:
    inputs = [f"input number {i}" for i in range(1200)]
    response = await gateway.client("alice").post(
        "/v1/embeddings", json={"model": "muse-1", "input": inputs, "dimensions": 400}
    )
    assert response.status_code == 200
    assert len(response.content) > 9_000_000
    reported = response.json()["usage"]
    record = await completion(gateway, response.headers["x-request-id"])
    assert record["usage"] == reported == {"prompt_tokens": 3600, "total_tokens": 3600}


class ScriptedUpstream:
    """Answers every request with the next scripted (content type, chunks)."""

    def __init__(self) -> None:
        self.script: list[tuple[bytes, list[bytes]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body", False):
            pass
        content_type, chunks = self.script.pop(0)
        headers = [(b"content-type", content_type)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b""})


FAKE = 'Sure: "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}'


def _chat(content: str, usage: dict[str, int] | None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    answer: dict[str, Any] = {"object": "chat.completion", "choices": [{"message": message}]}
    if usage is not None:
        answer["usage"] = usage
    return answer


async def test_usage_is_the_upstreams_wherever_the_model_writes_usage_like_text(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    upstream = ScriptedUpstream()
    real = {"prompt_tokens": 11, "completion_tokens": 5}
    json_type, events_type = b"application/json", b"text/event-stream"
    answer = json.dumps({**_chat(FAKE, None), "usage": real, "tail": FAKE}).encode()
    no_usage = json.dumps(_chat(FAKE, None)).encode()
    deltas = [{"choices": [{"delta": {"content": part}}]} for part in FAKE.split(" ")]
    events = [json.dumps(d).encode() for d in [*deltas, {"choices": [], "usage": real}]]
    crlf = b"".join(b"data: " + e + b"\r\n\r\n" for e in events) + b"data: [DONE]\r\n\r\n"
    only_fake = b"".join(b"data: " + json.dumps(d).encode() + b"\n\n" for d in deltas)
    cases = [
        # (content type, chunks as the upstream sends them, expected usage)
        (json_type, [answer], real),
        (json_type, [answer[i : i + 9] for i in range(0, len(answer), 9)], real),
        (json_type, [no_usage], None),
        (events_type, [crlf[i : i + 13] for i in range(0, len(crlf), 13)], real),
        (events_type, [only_fake], None),
    ]
    async with (
        serve_asgi(upstream) as url,
        running_gateway(tmp_path, pki, clock=clock, upstream_url=url) as gateway,
    ):
        client = gateway.client("alice")
        for content_type, chunks, expected in cases:
            upstream.script.append((content_type, chunks))
            response = await client.post(
                "/v1/chat/completions", json={"model": "muse-1", "messages": []}
            )
            assert response.status_code == 200
            assert response.content == b"".join(chunks)
            record = await completion(gateway, response.headers["x-request-id"])
            assert record["usage"] == expected, (content_type, len(chunks))
