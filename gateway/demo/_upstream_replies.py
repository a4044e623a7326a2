"""The OpenAI-shaped answers of the demo upstream: pure functions of the request.

Each builder takes the parsed request body, the test controls and the current time,
and returns a `Reply`: a JSON body, or the list of server-sent events of a stream.
Invalid requests raise `DemoRequestError`, which the app turns into an OpenAI error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

FINGERPRINT = "demo-upstream"
DEFAULT_CHUNKS = 20
MAX_CHUNKS = 100_000
MAX_EMBEDDING_DIMENSIONS = 4096
DEFAULT_EMBEDDING_DIMENSIONS = 16
_SENTENCE = ("This", "is", "the", "demo", "upstream,", "not", "a", "model;", "prompt", "digest")
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("not_found_error", None),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


class DemoRequestError(Exception):
    """A request the demo upstream cannot answer; `status` is the HTTP status to send."""

    def __init__(self, status: int, message: str, *, param: str | None = None) -> None:
        self.status = status
        self.message = message
        self.param = param
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Controls:
    """The test controls of one request (the body's `"demo"` key)."""

    status: int | None = None
    delay: float = 0.0
    chunks: int = DEFAULT_CHUNKS
    chunk_delay: float = 0.0
    abort_after: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A JSON `body`, or the `events` of a stream (each one complete SSE event)."""

    body: dict[str, Any] | None = None
    events: list[bytes] | None = None


def model_listing(models: Sequence[str], path: str) -> dict[str, Any]:
    if path == "/v1/models":
        return {"object": "list", "data": [_model(name) for name in models]}
    name = path.removeprefix("/v1/models/")
    if name not in models:
        raise DemoRequestError(404, f"The model '{name}' does not exist.", param="model")
    return _model(name)


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": FINGERPRINT}


def chat(request: dict[str, Any], controls: Controls, now: float) -> Reply:
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DemoRequestError(400, "'messages' must be a non-empty list.", param="messages")
    cap = request.get("max_completion_tokens", request.get("max_tokens"))
    turn = _Turn(request, messages, _text_of(messages), controls, cap, now)
    head = {"id": f"chatcmpl-{turn.digest[:24]}", "created": turn.created, "model": turn.model}
    head["system_fingerprint"] = FINGERPRINT
    if not turn.stream:
        message = {"role": "assistant", "content": turn.text, "refusal": None}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": turn.finish,
        }
        return Reply(body={**head, "object": "chat.completion", "choices": [choice]} | turn.usage())

    def chunk(index: int, word: str) -> dict[str, Any]:
        delta = {"role": "assistant", "content": word} if index == 0 else {"content": word}
        last = index == len(turn.words) - 1
        choice = {"index": 0, "delta": delta, "logprobs": None}
        return {
            **head,
            "object": "chat.completion.chunk",
            "choices": [choice | {"finish_reason": turn.finish if last else None}],
        }

    final = {**head, "object": "chat.completion.chunk", "choices": []}
    return Reply(events=turn.sse(chunk, final))


def completion(request: dict[str, Any], controls: Controls, now: float) -> Reply:
    prompt = request.get("prompt")
    if not isinstance(prompt, str | list):
        raise DemoRequestError(400, "'prompt' must be a string or a list.", param="prompt")
    turn = _Turn(request, prompt, _text_of(prompt), controls, request.get("max_tokens"), now)
    head = {
        "id": f"cmpl-{turn.digest[:24]}",
        "object": "text_completion",
        "created": turn.created,
    }
    head |= {"model": turn.model, "system_fingerprint": FINGERPRINT}
    if not turn.stream:
        choice = {"text": turn.text, "index": 0, "logprobs": None, "finish_reason": turn.finish}
        return Reply(body={**head, "choices": [choice]} | turn.usage())

    def chunk(index: int, word: str) -> dict[str, Any]:
        last = index == len(turn.words) - 1
        choice = {
            "text": word,
            "index": 0,
            "logprobs": None,
            "finish_reason": turn.finish if last else None,
        }
        return {**head, "choices": [choice]}

    return Reply(events=turn.sse(chunk, {**head, "choices": []}))


def embeddings(request: dict[str, Any], controls: Controls, now: float) -> Reply:
    value = request.get("input")
    inputs = value if isinstance(value, list) and not _is_token_list(value) else [value]
    if not inputs or not all(isinstance(item, str) or _is_token_list(item) for item in inputs):
        raise DemoRequestError(400, "'input' must be a string or a list of strings.", param="input")
    dimensions = request.get("dimensions", DEFAULT_EMBEDDING_DIMENSIONS)
    if not isinstance(dimensions, int) or not 1 <= dimensions <= MAX_EMBEDDING_DIMENSIONS:
        raise DemoRequestError(400, "'dimensions' must be between 1 and 4096.", param="dimensions")
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = _embedding(_text_of(item), dimensions)
        encoded: Any = vector
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(len(_text_of(item).split()) for item in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    body = {"object": "list", "data": data, "model": _model_name(request), "usage": usage}
    return Reply(body=body | {"system_fingerprint": FINGERPRINT})


def responses(request: dict[str, Any], controls: Controls, now: float) -> Reply:
    value = request.get("input")
    if not isinstance(value, str | list):
        raise DemoRequestError(400, "'input' must be a string or a list.", param="input")
    turn = _Turn(
        request,
        value,
        _text_of(value),
        controls,
        request.get("max_output_tokens"),
        now,
    )
    item_id = f"msg_{turn.digest[:24]}"
    part = {"type": "output_text", "text": turn.text, "annotations": []}
    item = {"type": "message", "id": item_id, "status": "completed", "role": "assistant"}
    done = {"id": f"resp_{turn.digest[:24]}", "object": "response", "created_at": turn.created}
    done |= {
        "model": turn.model,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
    }
    done |= {
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
    }
    done |= {
        "tools": [],
        "output": [item | {"content": [part]}],
        "system_fingerprint": FINGERPRINT,
    }
    if turn.finish == "length":
        done |= {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    done["usage"] = {
        "input_tokens": turn.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": len(turn.words),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.prompt_tokens + len(turn.words),
    }
    if not turn.stream:
        return Reply(body=done)
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    started = done | {"status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": item | {"status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **where, "part": part | {"text": ""}},
    ]
    events += [
        {"type": "response.output_text.delta", **where, "delta": w, "logprobs": []}
        for w in turn.deltas()
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": turn.text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": item | {"content": [part]},
        },
        {"type": "response.completed", "response": done},
    ]
    return Reply(events=[_named_event(number, event) for number, event in enumerate(events)])


class _Turn:
    """What a completion-style request asks for, and the deterministic answer to it."""

    def __init__(
        self,
        request: dict[str, Any],
        prompt: Any,
        text: str,
        controls: Controls,
        cap: Any,
        now: float,
    ) -> None:
        self.model = _model_name(request)
        self.stream = request.get("stream", False)
        if not isinstance(self.stream, bool):
            raise DemoRequestError(400, "'stream' must be true or false.", param="stream")
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise DemoRequestError(400, "The token limit must be a positive integer.")
        options = request.get("stream_options") or {}
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True
        self.digest = hashlib.sha256(_canonical(prompt)).hexdigest()
        self.created = int(now)
        count = controls.chunks if cap is None else min(controls.chunks, cap)
        self.finish = "length" if count < controls.chunks else "stop"
        sentence = (*_SENTENCE, f"{self.digest[:16]}.")
        self.words = [sentence[i % len(sentence)] for i in range(count)]
        self.text = " ".join(self.words)
        self.prompt_tokens = len(text.split())

    def deltas(self) -> list[str]:
        return [word if i == 0 else f" {word}" for i, word in enumerate(self.words)]

    def usage(self) -> dict[str, Any]:
        completion = len(self.words)
        total = self.prompt_tokens + completion
        usage = {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion}
        return {"usage": usage | {"total_tokens": total}}

    def sse(
        self, chunk: Callable[[int, str], dict[str, Any]], final: dict[str, Any]
    ) -> list[bytes]:
        extra = {"usage": None} if self.include_usage else {}
        events = [_data_event(chunk(i, word) | extra) for i, word in enumerate(self.deltas())]
        if self.include_usage:
            events.append(_data_event(final | self.usage()))
        events.append(b"data: [DONE]\n\n")
        return events


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    kind, code = _ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    if status == 404 and param == "model":
        code = "model_not_found"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DemoRequestError(400, "The request body is not valid JSON.") from exc
    if not isinstance(value, dict):
        raise DemoRequestError(400, "The request body must be a JSON object.")
    return value


def parse_controls(value: Any) -> Controls:
    if value is None:
        return Controls()
    if not isinstance(value, dict):
        raise DemoRequestError(400, "'demo' must be an object.", param="demo")
    unknown = set(value) - {"status", "delay", "chunks", "chunk_delay", "abort_after"}
    if unknown:
        raise DemoRequestError(400, f"Unknown demo control: {sorted(unknown)[0]}.", param="demo")
    status = value.get("status")
    if status is not None and (not _is_int(status) or not 400 <= status <= 599):
        raise DemoRequestError(
            400, "'demo.status' must be an error status (400-599).", param="demo"
        )
    delays = [value.get(name, 0.0) for name in ("delay", "chunk_delay")]
    if not all(_is_number(d) and 0 <= d <= 3600 for d in delays):
        raise DemoRequestError(400, "Demo delays must be numbers of seconds.", param="demo")
    chunks = value.get("chunks", DEFAULT_CHUNKS)
    if not _is_int(chunks) or not 1 <= chunks <= MAX_CHUNKS:
        raise DemoRequestError(400, "'demo.chunks' must be between 1 and 100000.", param="demo")
    abort_after = value.get("abort_after")
    if abort_after is not None and (not _is_int(abort_after) or abort_after < 0):
        raise DemoRequestError(400, "'demo.abort_after' must be a count.", param="demo")
    return Controls(status, float(delays[0]), chunks, float(delays[1]), abort_after)


def _model_name(request: dict[str, Any]) -> str:
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise DemoRequestError(400, "'model' must be a non-empty string.", param="model")
    return model


def _text_of(value: Any) -> str:
    """The prompt text in chat messages, prompts, inputs or content parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_text_of(item) for item in value)
    if isinstance(value, dict):
        return _text_of(value.get("text", value.get("content", "")))
    if _is_int(value):
        return str(value)  # a token id counts as one word
    return ""


def _embedding(text: str, dimensions: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    stream = b"".join(
        hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        for block in range((dimensions * 4 + 31) // 32)
    )
    values = [n / 2**31 - 1.0 for n in struct.unpack(f">{dimensions}I", stream[: dimensions * 4])]
    # Rounded to float32 so that the float and base64 encodings carry the same numbers.
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *values)))


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _data_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _named_event(number: int, payload: dict[str, Any]) -> bytes:
    body = json.dumps(payload | {"sequence_number": number}, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {body}\n\n".encode()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_token_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(item) for item in value)
