"""Whatever rule the upstream's JSON parser follows, it acts on what the gateway decided.

Two small honest upstreams stand in for the parsers found in the field: one keeps the
first of two members with the same name (RapidJSON, simdjson on-demand), one the last
(Python, orjson, Go). Each reads the request with `json.loads(object_pairs_hook=...)`
and notes the model and stream settings it would act on. Over real sockets through a
real gateway, each receives exactly what the gateway decided, or nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import RecordFilter
from tests.harness import Clock, RunningGateway, instant, running_gateway
from tests.servers import serve_asgi

BRUNO = rb'{"model":"muse-spark-2","mod\u0065l":"muse-1","messages":[]}'


def _first(members: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in members:
        out.setdefault(name, value)
    return out


class ParserUpstream:
    """An OpenAI-style upstream whose JSON parser keeps the first or the last member."""

    def __init__(self, rule: str) -> None:
        self.hook = _first if rule == "first" else dict
        self.read: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        document = json.loads(body, object_pairs_hook=self.hook)
        options = document.get("stream_options")
        self.read.append(
            {
                "model": document.get("model"),
                "stream": document.get("stream"),
                "include_usage": options.get("include_usage") if options else None,
            }
        )
        answer = {
            "object": "chat.completion",
            "model": document.get("model"),
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


# muse-spark-2 keeps its name upstream, so the caller's bytes are what is forwarded;
# muse-1 is renamed, so the gateway's own serialisation is.
_MODELS = [
    {"id": "muse-spark-2", "upstream": "demo"},
    {"id": "muse-1", "upstream": "demo", "upstream_model": "ckpt-0413"},
]
# Inside the CAISI grant window: alice (US) may use muse-spark-2, bruno (FR) may not.
GRANT_OPEN = "2026-12-20T12:00:00Z"


@contextlib.asynccontextmanager
async def behind(
    rule: str, folder: Path, pki: Path
) -> AsyncIterator[tuple[RunningGateway, ParserUpstream]]:
    upstream = ParserUpstream(rule)
    clock = Clock(instant(GRANT_OPEN))
    async with (
        serve_asgi(upstream) as url,
        running_gateway(
            folder, pki, clock=clock, upstream_url=url, overrides={"models": _MODELS}
        ) as gateway,
    ):
        yield gateway, upstream


async def _record(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    found = await gateway.gateway.audit.query(RecordFilter(request_id=request_id, kind="request"))
    (record,) = [json.loads(data) for _, data in found]
    return record


_AMBIGUOUS = [
    BRUNO,
    rb'{"mod\u0065l":"muse-1","model":"muse-spark-2","messages":[]}',
    rb'{"model":"muse-spark-2","\u006d\u006f\u0064\u0065\u006c":"muse-1","messages":[]}',
    b'{"model":"muse-spark-2","messages":[],"model":"muse-1"}',
    b'{"model":"muse-1","Model":"muse-spark-2","messages":[]}',
    b'{"model":"muse-1","messages":[],"stream":false,"stream":true}',
    rb'{"model":"muse-1","messages":[],"stre\u0061m":true,"stream":false}',
    b'{"model":"muse-1","messages":[],"stream_options":{},"stream_options":{"include_usage":true}}',
    rb'{"model":"muse-1","messages":[],"stream_options":{"include_usage":false,'
    rb'"include_\u0075sage":true}}',
    b'{"model":"muse-1","messages":[{"role":"user","content":"a","content":"b"}]}',
    b'{"model":"muse-1","messages":[{"role":"user","content":[{"type":"text",'
    b'"text":"a","text":"b"}]}]}',
    b'{"model":"muse-1","seed":9007199254740993,"messages":[]}',
]


@pytest.mark.parametrize("rule", ["first", "last"])
async def test_an_ambiguous_body_reaches_no_upstream(rule: str, tmp_path: Path, pki: Path) -> None:
    async with behind(rule, tmp_path, pki) as (gateway, upstream):
        for client_name in ("bruno", "alice"):
            client = gateway.client(client_name)
            for body in _AMBIGUOUS:
                response = await client.post(
                    "/v1/chat/completions",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                assert response.status_code == 400, body
                assert response.json()["error"]["code"] == "invalid_json"
                record = await _record(gateway, response.headers["x-request-id"])
                assert record["decision"] == "deny"
                assert record["reason"].startswith("request."), record["reason"]
                assert record["reason"] != "request.invalid_json", body
        assert upstream.read == []


_CLEAR = [
    # (body, what any parser must act on)
    (rb'{"mod\u0065l":"muse-spark-2","messages":[]}', ("muse-spark-2", None, None)),
    (
        rb'{"\u006d\u006f\u0064\u0065\u006c":"mus\u0065-spark-2","stream":false}',
        ("muse-spark-2", False, None),
    ),
    (
        b'{ "model" : "muse-spark-2", "messages": [], "stream_options": {"include_usage": true} }',
        ("muse-spark-2", None, True),
    ),
    (
        rb'{"model":"muse-spark-2","stre\u0061m":false,"messages":[{"role":"user","content":":"}]}',
        ("muse-spark-2", False, None),
    ),
    # A route that renames the model: the gateway's own serialisation is what goes out.
    (rb'{"mod\u0065l":"muse-1","stre\u0061m":false}', ("ckpt-0413", False, None)),
]


@pytest.mark.parametrize("rule", ["first", "last"])
async def test_an_unambiguous_body_is_read_by_the_upstream_as_decided(
    rule: str, tmp_path: Path, pki: Path
) -> None:
    async with behind(rule, tmp_path, pki) as (gateway, upstream):
        client = gateway.client("alice")
        for body, (model, stream, include_usage) in _CLEAR:
            response = await client.post(
                "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == 200, response.text
            record = await _record(gateway, response.headers["x-request-id"])
            assert record["decision"] == "allow"
            assert upstream.read[-1] == {
                "model": model,
                "stream": stream,
                "include_usage": include_usage,
            }
        assert len(upstream.read) == len(_CLEAR)
