"""The demo upstream's server-sent event streams, disconnects and aborts, over a real socket."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from gateway.demo.upstream import DemoUpstream

CHAT = {"model": "demo-model", "messages": [{"role": "user", "content": "Stream to me"}]}


async def read_events(client: httpx.AsyncClient, path: str, request: Any) -> list[str]:
    """The `data:` payloads of a stream, in order."""
    response = await client.post(path, json=request)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.text.endswith("\n\n")
    return [
        line.removeprefix("data: ")
        for line in response.text.split("\n")
        if line.startswith("data: ")
    ]


async def wait_for(condition: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        await asyncio.sleep(0.01)


async def test_chat_stream_sends_twenty_chunks_then_done(client: httpx.AsyncClient) -> None:
    events = await read_events(client, "/v1/chat/completions", {**CHAT, "stream": True})

    chunks = [json.loads(event) for event in events[:-1]]
    assert events[-1] == "[DONE]"
    assert len(chunks) == 20
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["system_fingerprint"] for chunk in chunks} == {"demo-upstream"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 19 + ["stop"]
    assert not any("usage" in chunk for chunk in chunks)


async def test_streamed_text_equals_the_unstreamed_reply(client: httpx.AsyncClient) -> None:
    events = await read_events(client, "/v1/chat/completions", {**CHAT, "stream": True})
    whole = (await client.post("/v1/chat/completions", json=CHAT)).json()

    streamed = "".join(json.loads(e)["choices"][0]["delta"]["content"] for e in events[:-1])
    assert streamed == whole["choices"][0]["message"]["content"]


async def test_include_usage_adds_a_final_usage_chunk(client: httpx.AsyncClient) -> None:
    request = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}

    events = await read_events(client, "/v1/chat/completions", request)

    *chunks, usage = [json.loads(event) for event in events[:-1]]
    assert events[-1] == "[DONE]"
    assert len(chunks) == 20
    assert all(chunk["usage"] is None for chunk in chunks)
    assert usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 3, "completion_tokens": 20, "total_tokens": 23}


async def test_chunks_control_sets_the_number_of_stream_chunks(
    client: httpx.AsyncClient,
) -> None:
    request = {**CHAT, "stream": True, "demo": {"chunks": 5}}

    events = await read_events(client, "/v1/chat/completions", request)

    assert len(events) == 6


async def test_completion_stream_has_text_completion_chunks(client: httpx.AsyncClient) -> None:
    request = {"model": "demo-model", "prompt": "Once", "stream": True, "demo": {"chunks": 3}}

    events = await read_events(client, "/v1/completions", request)

    chunks = [json.loads(event) for event in events[:-1]]
    assert [chunk["choices"][0]["text"] for chunk in chunks] == ["This", " is", " the"]
    assert {chunk["object"] for chunk in chunks} == {"text_completion"}
    assert events[-1] == "[DONE]"


async def test_responses_stream_sends_named_events_ending_in_completed(
    client: httpx.AsyncClient,
) -> None:
    request = {"model": "demo-model", "input": "Hi there", "stream": True, "demo": {"chunks": 2}}

    events = [json.loads(e) for e in await read_events(client, "/v1/responses", request)]

    assert [event["type"] for event in events] == [
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(9))
    assert events[-1]["response"]["usage"]["input_tokens"] == 2
    assert events[-1]["response"]["usage"]["output_tokens"] == 2


async def test_chunk_delay_spaces_the_chunks(client: httpx.AsyncClient) -> None:
    request = {**CHAT, "stream": True, "demo": {"chunks": 5, "chunk_delay": 0.06}}

    started = time.perf_counter()
    await read_events(client, "/v1/chat/completions", request)

    assert time.perf_counter() - started >= 0.24


async def test_client_disconnect_mid_stream_is_logged_as_cancelled(
    client: httpx.AsyncClient, upstream: DemoUpstream
) -> None:
    request = {**CHAT, "stream": True, "demo": {"chunks": 200, "chunk_delay": 0.02}}

    async with client.stream("POST", "/v1/chat/completions", json=request) as response:
        async for _ in response.aiter_raw():
            break
    await client.aclose()

    await wait_for(lambda: upstream.log and upstream.log[0].cancelled)
    assert upstream.log[0].completed is False


async def test_client_disconnect_during_delay_is_logged_as_cancelled(
    base_url: str, upstream: DemoUpstream
) -> None:
    request = {**CHAT, "demo": {"delay": 5}}

    async with httpx.AsyncClient(base_url=base_url, timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/v1/chat/completions", json=request)

    await wait_for(lambda: upstream.log and upstream.log[0].cancelled)
    assert upstream.log[0].completed is False


async def test_abort_after_drops_the_connection_mid_stream(
    client: httpx.AsyncClient, upstream: DemoUpstream
) -> None:
    request = {**CHAT, "stream": True, "demo": {"chunks": 10, "abort_after": 3}}
    received: list[bytes] = []

    async def read_stream() -> None:
        async with client.stream("POST", "/v1/chat/completions", json=request) as response:
            async for data in response.aiter_raw():
                received.append(data)

    with pytest.raises(httpx.RemoteProtocolError):
        await read_stream()

    assert b"".join(received).count(b"data: ") == 3
    assert (upstream.log[0].completed, upstream.log[0].cancelled) == (False, False)


async def test_completed_stream_is_logged_as_completed(
    client: httpx.AsyncClient, upstream: DemoUpstream
) -> None:
    await read_events(client, "/v1/chat/completions", {**CHAT, "stream": True})

    await wait_for(lambda: upstream.log and upstream.log[0].completed)
    assert upstream.log[0].cancelled is False
