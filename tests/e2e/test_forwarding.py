"""The forwarding path end to end: real TLS, real sockets, the demo upstream behind."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import openai

from gateway.demo.upstream import create_app
from tests.e2e.audit_support import the_record
from tests.harness import UPSTREAM_KEY, Clock, RunningGateway, running_gateway
from tests.servers import serve_asgi

CHAT = "/v1/chat/completions"


def chat(model: str = "muse-1", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "Hello there"}], **extra}


def sdk(gateway: RunningGateway, who: str = "alice") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gateway.base_url + "/v1",
        api_key="mtls",
        http_client=openai.DefaultAsyncHttpxClient(verify=gateway.ssl_context(who)),
        max_retries=0,
    )


async def test_the_openai_sdk_gets_a_completion(gateway: RunningGateway) -> None:
    async with sdk(gateway) as client:
        completion = await client.chat.completions.create(
            model="muse-1", messages=[{"role": "user", "content": "Hello there"}]
        )
    assert completion.choices[0].message.content
    assert completion.usage is not None
    assert completion.usage.total_tokens > 0


async def test_the_openai_sdk_streams_a_completion(gateway: RunningGateway) -> None:
    async with sdk(gateway) as client:
        stream = await client.chat.completions.create(
            model="muse-1",
            messages=[{"role": "user", "content": "Hello there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    words = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(words) == 20
    assert chunks[-1].usage is not None


async def test_the_upstream_gets_the_callers_bytes_except_a_rewritten_model(
    gateway: RunningGateway,
) -> None:
    body = b'{"model": "muse-spark-2",  "messages": [{"role":"user","content":"x"}], "n": 1}'
    gateway.clock.set("2027-02-01T00:00:00Z")  # muse-spark-2 released; alice is a US citizen
    response = await gateway.client("alice").post(
        CHAT, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert gateway.upstream.log[-1].body == body


async def test_a_routed_model_id_is_rewritten_for_the_upstream(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(CHAT, json=chat("muse-1"))
    assert response.status_code == 200
    assert json.loads(gateway.upstream.log[-1].body)["model"] == "demo-muse-1"


async def test_the_first_event_arrives_before_the_upstream_finishes(
    gateway: RunningGateway,
) -> None:
    body = chat(stream=True, demo={"chunks": 5, "chunk_delay": 0.4})
    client = gateway.client("alice")
    started = time.monotonic()
    async with client.stream("POST", CHAT, json=body) as response:
        chunks = response.aiter_raw()
        first = await chunks.__anext__()
        first_at = time.monotonic() - started
        assert first.startswith(b"data: ")
        assert gateway.upstream.log[-1].completed is False
        rest = b"".join([chunk async for chunk in chunks])
    assert first_at < 1.0
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_a_caller_that_disconnects_cancels_the_upstream_request(
    gateway: RunningGateway,
) -> None:
    body = chat(stream=True, demo={"chunks": 100, "chunk_delay": 0.05})
    client = gateway.client("alice")
    async with client.stream("POST", CHAT, json=body) as response:
        await response.aiter_raw().__anext__()
    await client.aclose()
    seen = gateway.upstream.log[-1]
    async with asyncio.timeout(5):
        while not seen.cancelled:
            await asyncio.sleep(0.02)
    assert seen.completed is False


async def test_caller_credentials_never_reach_the_upstream(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(
        CHAT,
        json=chat(),
        headers={
            "cookie": "session=caller-secret",
            "x-api-key": "caller-key",
            "connection": "x-hop",
            "x-hop": "1",
            "x-request-id": "eval-run-42",
            "x-forwarded-client-cert": "Cert=forged",
        },
    )
    assert response.status_code == 200
    seen = gateway.upstream.log[-1]
    names = {name for name, _ in seen.headers}
    assert {"cookie", "x-api-key", "x-hop", "x-forwarded-client-cert"}.isdisjoint(names)
    assert seen.header("authorization") == f"Bearer {UPSTREAM_KEY}"
    assert seen.header("x-request-id") == "eval-run-42"
    assert response.headers["x-request-id"] == "eval-run-42"


async def test_the_upstream_credential_never_reaches_the_caller(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(CHAT, json=chat(stream=True))
    assert UPSTREAM_KEY not in str(response.headers)
    assert UPSTREAM_KEY.encode() not in response.content


async def test_invalid_json_is_400(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(CHAT, content=b"{not json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["request_id"] == response.headers["x-request-id"]
    assert set(error) == {"message", "type", "code", "param", "request_id"}


async def test_a_missing_model_is_404_model_not_found(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(CHAT, json={"messages": []})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_an_unknown_model_is_404_model_not_found(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(CHAT, json=chat("no-such-model"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert gateway.upstream.log == []


async def test_a_body_over_the_limit_is_413(gateway: RunningGateway) -> None:
    big = chat(padding="x" * 70_000)
    response = await gateway.client("alice").post(CHAT, json=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_a_chunked_body_over_the_limit_is_413_without_reading_it_all(
    gateway: RunningGateway,
) -> None:
    sent = 0
    total = 8192 * 1000

    async def body():  # type: ignore[no-untyped-def]
        nonlocal sent
        while sent < total:
            sent += 8192
            yield b"x" * 8192

    status = None
    try:
        response = await gateway.client("alice").post(CHAT, content=body())
        status = response.status_code
    except httpx.HTTPError:
        pass  # the gateway answered 413 and closed while the client was still sending
    assert sent < total
    assert status in (None, 413)
    assert gateway.upstream.log == []


async def test_an_upstream_error_passes_through_unchanged(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(CHAT, json=chat(demo={"status": 503}))
    assert response.status_code == 503
    assert "demo upstream was asked to fail" in response.json()["error"]["message"]


async def test_an_upstream_timeout_is_504(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(CHAT, json=chat(demo={"delay": 3}))
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"


async def test_an_unreachable_upstream_is_502(tmp_path: Path, pki: Path, clock: Clock) -> None:
    async with running_gateway(
        tmp_path, pki, clock=clock, upstream_url="http://127.0.0.1:9"
    ) as running:
        response = await running.client("alice").post(CHAT, json=chat())
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


async def test_a_hundred_concurrent_streams_arrive_intact_and_in_order(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    upstream = create_app(record=False)
    async with running_gateway(tmp_path, pki, clock=clock, upstream=upstream) as running:
        client = running.client("alice", limits=httpx.Limits(max_connections=100))

        async def one(i: int) -> list[str]:
            body = chat(stream=True, messages=[{"role": "user", "content": f"prompt {i}"}])
            body["demo"] = {"chunks": 30, "chunk_delay": 0.001}
            response = await client.post(CHAT, json=body)
            assert response.status_code == 200
            events = [e for e in response.text.split("\n\n") if e]
            assert events[-1] == "data: [DONE]"
            return [
                json.loads(e[6:])["choices"][0]["delta"].get("content", "") for e in events[:-1]
            ]

        results = await asyncio.gather(*(one(i) for i in range(100)))
        # The demo upstream is deterministic: one at a time, each prompt gives its reference.
        references = [await one(i) for i in range(100)]
    assert results == references
    assert len({tuple(words) for words in results}) == 100


async def test_an_upstream_redirect_is_not_followed(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    elsewhere = create_app()

    async def redirecting(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        location = f"{target}/v1/chat/completions".encode()
        await send(  # type: ignore[operator]
            {"type": "http.response.start", "status": 307, "headers": [(b"location", location)]}
        )
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    async with (
        serve_asgi(elsewhere) as target,
        serve_asgi(redirecting) as redirector,
        running_gateway(tmp_path, pki, clock=clock, upstream_url=redirector) as running,
    ):
        response = await running.client("alice").post(CHAT, json=chat())
    assert response.status_code == 307
    assert elsewhere.log == []


async def test_an_upstream_refusing_the_gateways_credential_is_a_502_not_a_401(
    tmp_path: Path, pki: Path, clock: Clock
) -> None:
    """The caller's credentials never reach the upstream: its 401 is about the gateway."""
    upstream = create_app(api_key=UPSTREAM_KEY + "-rotated")
    async with running_gateway(tmp_path, pki, clock=clock, upstream=upstream) as gateway:
        response = await gateway.client("alice").post(
            CHAT, json=chat(), headers={"x-request-id": "refused-credential"}
        )
        assert response.status_code == 502, response.text
        assert response.json()["error"]["code"] == "upstream_credential_refused"
        assert "www-authenticate" not in response.headers
        assert UPSTREAM_KEY not in response.text
        completion = await the_record(gateway, "refused-credential", "completion")
        assert (completion["status"], completion["upstream_status"]) == (502, 401)
        assert completion["error"] == "upstream.credential_refused"
