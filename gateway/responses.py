"""Responses the gateway writes itself, in the OpenAI error shape, sent over plain ASGI.

{"error": {"message": ..., "type": ..., "code": ..., "param": ..., "request_id": ...}}
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_error",
}


def error_body(
    status: int, code: str, message: str, request_id: str, param: str | None = None
) -> bytes:
    """The JSON bytes of an OpenAI-shaped error."""
    return json.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPES.get(status, "api_error"),
                "code": code,
                "param": param,
                "request_id": request_id,
            }
        },
        separators=(",", ":"),
    ).encode()


def model_not_found_message(model: str) -> str:
    """The one message for a model that doesn't exist and for one the caller may not see."""
    return f"The model '{model}' does not exist or you do not have access to it."


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete JSON response."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    request_id: str,
    *,
    param: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> int:
    """Send an OpenAI-shaped error; returns the number of body bytes sent."""
    body = error_body(status, code, message, request_id, param)
    await send_json(send, status, body, request_id, extra_headers)
    return len(body)
