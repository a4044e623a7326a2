"""The demo upstream's JSON endpoints, controls, log and API key, over a real socket."""

from __future__ import annotations

import base64
import json
import re
import struct
import time

import httpx

from gateway.demo.upstream import DemoUpstream, create_app
from tests.demo.conftest import NOW
from tests.servers import serve_asgi

CHAT = {"model": "demo-model", "messages": [{"role": "user", "content": "Say hello to me"}]}


async def test_chat_completion_has_openai_shape_and_says_it_is_the_demo(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/chat/completions", json=CHAT)

    body = response.json()
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert body["object"] == "chat.completion"
    assert body["created"] == int(NOW)
    assert body["model"] == "demo-model"
    assert body["system_fingerprint"] == "demo-upstream"
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", body["id"])
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("This is the demo upstream, not a model;")


async def test_chat_reply_is_deterministic_and_depends_on_the_prompt(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.post("/v1/chat/completions", json=CHAT)).json()
    again = (await client.post("/v1/chat/completions", json=CHAT)).json()
    other_prompt = {**CHAT, "messages": [{"role": "user", "content": "Something else"}]}
    other = (await client.post("/v1/chat/completions", json=other_prompt)).json()

    assert first == again
    assert first["choices"][0]["message"] != other["choices"][0]["message"]
    assert first["id"] != other["id"]


async def test_usage_counts_whitespace_separated_words(client: httpx.AsyncClient) -> None:
    parts = [{"type": "text", "text": "four  five"}, {"type": "text", "text": "six"}]
    request = {
        "model": "demo-model",
        "messages": [
            {"role": "system", "content": "one two\nthree"},
            {"role": "user", "content": parts},
        ],
    }

    body = (await client.post("/v1/chat/completions", json=request)).json()

    content = body["choices"][0]["message"]["content"]
    assert len(content.split()) == 20
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 20, "total_tokens": 26}


async def test_max_tokens_cuts_the_reply_with_finish_reason_length(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 3})).json()

    assert body["choices"][0]["message"]["content"] == "This is the"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


async def test_chunks_control_sets_the_number_of_words(client: httpx.AsyncClient) -> None:
    request = {**CHAT, "demo": {"chunks": 12}}

    body = (await client.post("/v1/chat/completions", json=request)).json()

    words = body["choices"][0]["message"]["content"].split()
    assert len(words) == 12
    assert re.fullmatch(r"[0-9a-f]{16}\.", words[10])


async def test_completion_has_text_completion_shape(client: httpx.AsyncClient) -> None:
    request = {"model": "demo-model", "prompt": ["Once upon", "a time"]}

    body = (await client.post("/v1/completions", json=request)).json()

    assert body["object"] == "text_completion"
    assert body["system_fingerprint"] == "demo-upstream"
    assert body["choices"][0]["text"].startswith("This is the demo upstream")
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 20, "total_tokens": 24}


async def test_embeddings_are_derived_from_the_input(client: httpx.AsyncClient) -> None:
    request = {"model": "demo-embed", "input": ["alpha", "beta", "alpha"], "dimensions": 8}

    body = (await client.post("/v1/embeddings", json=request)).json()

    vectors = [item["embedding"] for item in body["data"]]
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert all(len(vector) == 8 and all(-1 <= x <= 1 for x in vector) for vector in vectors)
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert body["model"] == "demo-embed"


async def test_base64_embeddings_carry_the_same_numbers_as_floats(
    client: httpx.AsyncClient,
) -> None:
    request = {"model": "demo-embed", "input": "gamma"}

    floats = (await client.post("/v1/embeddings", json=request)).json()
    encoded = await client.post("/v1/embeddings", json={**request, "encoding_format": "base64"})

    raw = base64.b64decode(encoded.json()["data"][0]["embedding"])
    assert list(struct.unpack("<16f", raw)) == floats["data"][0]["embedding"]


async def test_models_are_listed_as_owned_by_the_demo_upstream(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()

    assert body == {
        "object": "list",
        "data": [
            {"id": "demo-model", "object": "model", "created": 0, "owned_by": "demo-upstream"},
            {"id": "demo-prerelease", "object": "model", "created": 0, "owned_by": "demo-upstream"},
        ],
    }


async def test_one_model_is_found_by_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/demo-prerelease")

    assert response.status_code == 200
    assert response.json()["id"] == "demo-prerelease"


async def test_unknown_model_id_is_model_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/no-such-model")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


async def test_status_control_answers_with_an_openai_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={**CHAT, "demo": {"status": 503}})

    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "message": "The demo upstream was asked to fail with status 503.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    }


async def test_delay_control_holds_the_answer_back(client: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await client.post("/v1/chat/completions", json={**CHAT, "demo": {"delay": 0.3}})

    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.3


async def test_body_that_is_not_json_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", content=b"{not json")

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_request_without_model_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": CHAT["messages"]})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


async def test_unknown_demo_control_is_rejected(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={**CHAT, "demo": {"sleep": 1}})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "demo"


async def test_status_control_must_be_an_error_status(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={**CHAT, "demo": {"status": 200}})

    assert response.status_code == 400


async def test_unknown_path_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/images/generations", json=CHAT)

    assert response.status_code == 404


async def test_wrong_method_is_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/chat/completions")

    assert response.status_code == 405


async def test_log_keeps_what_the_upstream_received(
    client: httpx.AsyncClient, upstream: DemoUpstream
) -> None:
    body = json.dumps(CHAT).encode()

    await client.post(
        "/v1/chat/completions",
        content=body,
        headers={"Content-Type": "application/json", "X-Trace": "abc"},
    )

    [seen] = upstream.log
    assert (seen.method, seen.path, seen.body) == ("POST", "/v1/chat/completions", body)
    assert ("x-trace", "abc") in seen.headers
    assert seen.header("Content-Type") == "application/json"
    assert (seen.completed, seen.cancelled) == (True, False)


async def test_unrecorded_upstream_keeps_no_log() -> None:
    app = create_app(record=False)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/v1/chat/completions", json=CHAT)

    assert response.status_code == 200
    assert app.log == []


async def test_log_keeps_only_the_latest_requests() -> None:
    app = create_app(log_limit=2)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
        for n in range(5):
            await http.post("/v1/completions", json={"model": "demo-model", "prompt": str(n)})

    assert [json.loads(seen.body)["prompt"] for seen in app.log] == ["3", "4"]


async def test_api_key_is_required_when_configured() -> None:
    app = create_app(api_key="test-upstream-key")
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
        missing = await http.post("/v1/chat/completions", json=CHAT)
        wrong = await http.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer other"}
        )
        right = await http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": "Bearer test-upstream-key"},
        )

    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert "test-upstream-key" not in wrong.text


async def test_health_check_needs_no_api_key() -> None:
    app = create_app(api_key="test-upstream-key")
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/healthz")

    assert response.status_code == 200
