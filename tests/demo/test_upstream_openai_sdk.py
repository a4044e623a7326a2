"""The official `openai` SDK talks to the demo upstream, streaming and not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest

from gateway.demo.upstream import create_app
from tests.servers import serve_asgi

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Hello from the SDK"}
]


@pytest.fixture
async def sdk(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{base_url}/v1", api_key="unused-by-the-demo", max_retries=0
    ) as client:
        yield client


async def test_chat_completion(sdk: openai.AsyncOpenAI) -> None:
    completion = await sdk.chat.completions.create(model="demo-model", messages=MESSAGES)

    assert completion.system_fingerprint == "demo-upstream"
    assert completion.choices[0].message.content is not None
    assert completion.choices[0].message.content.startswith("This is the demo upstream")
    assert completion.usage is not None
    assert completion.usage.total_tokens == 24


async def test_chat_completion_stream_with_usage(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="demo-model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        pieces += [choice.delta.content or "" for choice in chunk.choices]
        usage = chunk.usage or usage

    whole = await sdk.chat.completions.create(model="demo-model", messages=MESSAGES)
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 20)


async def test_completion_stream(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.completions.create(
        model="demo-model",
        prompt="Once upon a time",
        stream=True,
        extra_body={"demo": {"chunks": 4}},
    )

    texts = [chunk.choices[0].text async for chunk in stream]

    assert "".join(texts) == "This is the demo"


async def test_embeddings_in_both_encodings_agree(sdk: openai.AsyncOpenAI) -> None:
    as_floats = await sdk.embeddings.create(
        model="demo-embed", input="vector me", encoding_format="float"
    )
    as_base64 = await sdk.embeddings.create(model="demo-embed", input="vector me")

    assert len(as_floats.data[0].embedding) == 16
    assert as_floats.data[0].embedding == as_base64.data[0].embedding


async def test_models_are_listed_and_retrieved(sdk: openai.AsyncOpenAI) -> None:
    listed = [model.id async for model in sdk.models.list()]
    one = await sdk.models.retrieve("demo-prerelease")

    assert listed == ["demo-model", "demo-prerelease"]
    assert one.owned_by == "demo-upstream"


async def test_unknown_model_raises_not_found(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.models.retrieve("no-such-model")

    assert caught.value.code == "model_not_found"


async def test_responses_api(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="demo-model", input="Tell me something")

    assert response.output_text.startswith("This is the demo upstream")
    assert response.usage is not None
    assert response.usage.input_tokens == 3


async def test_responses_api_stream(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(
        model="demo-model", input="Tell me", stream=True, extra_body={"demo": {"chunks": 3}}
    )

    events = [event async for event in stream]

    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["This", " is", " the"]
    assert events[-1].type == "response.completed"


async def test_status_control_surfaces_as_api_status_error(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        await sdk.chat.completions.create(
            model="demo-model", messages=MESSAGES, extra_body={"demo": {"status": 503}}
        )

    assert caught.value.status_code == 503


async def test_wrong_api_key_raises_authentication_error() -> None:
    app = create_app(api_key="right-key")
    async with (
        serve_asgi(app) as url,
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="wrong-key", max_retries=0) as client,
    ):
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
        right = client.with_options(api_key="right-key")
        models = await right.models.list()

    assert [model.id for model in models.data] == ["demo-model"]
