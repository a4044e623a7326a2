"""Token usage as the upstream reports it, from a JSON body or from an SSE stream.

Nothing is estimated: a response or stream that carries no usage yields `None`, and the
audit record says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    def to_json(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_from_object(document: Any) -> Usage | None:
    """Usage from a decoded response: Chat/Completions/Embeddings or Responses API shapes."""
    if not isinstance(document, dict):
        return None
    usage = document.get("usage")
    if usage is None and isinstance(document.get("response"), dict):
        usage = document["response"].get("usage")  # Responses API stream events
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    completion = _int(usage.get("completion_tokens", usage.get("output_tokens", 0)))
    if prompt is None or completion is None:
        return None
    total = _int(usage.get("total_tokens"))
    return Usage(prompt, completion, total if total is not None else prompt + completion)


def usage_from_json(body: bytes) -> Usage | None:
    """Usage from a complete JSON response body; None when absent or not JSON.

    Inside JSON strings quotes are escaped, so an unescaped `"usage":` is a member
    name: its value is decoded alone, without decoding the (possibly long) completion.
    The whole body is decoded only when that shortcut finds nothing.
    """
    at = body.rfind(b'"usage"')
    if at < 0:
        return None
    start = body.find(b"{", at + 7, at + 64)
    if start >= 0 and body[at + 7 : start].strip() == b":":
        try:
            value, _ = _DECODER.raw_decode(body[start : start + 4096].decode("utf-8", "replace"))
        except ValueError:
            value = None
        if isinstance(value, dict):
            found = usage_from_object({"usage": value})
            if found is not None:
                return found
    try:
        return usage_from_object(json.loads(body))
    except ValueError:
        return None


_DECODER = json.JSONDecoder()


class StreamUsage:
    """Follows an SSE stream chunk by chunk and keeps the last usage it reports.

    Only the bytes after the last complete event are kept between chunks, so memory
    stays bounded by one event whatever the stream's length.
    """

    __slots__ = ("_pending", "usage")

    _MAX_PENDING = 1 << 20

    def __init__(self) -> None:
        self._pending = b""
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> None:
        data = self._pending + chunk if self._pending else chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._pending = data if len(data) <= self._MAX_PENDING else b""
            return
        self._pending = data[end + 2 :]
        complete = data[:end]
        if b'"usage"' not in complete:
            return
        for event in complete.split(b"\n\n"):
            if b'"usage"' in event and b'"usage":null' not in event:
                self._read_event(event)

    def _read_event(self, event: bytes) -> None:
        payload = b"\n".join(
            line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")
        )
        try:
            found = usage_from_object(json.loads(payload))
        except ValueError:
            return
        if found is not None:
            self.usage = found
