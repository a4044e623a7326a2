"""Proxy boundary micro-benchmark: what the request and response checks cost.

1. Bodies.
Two ways to make the upstream act on the document the gateway decided on:

- refuse: check the caller's bytes (`parse_body`: orjson reads them, writes them back,
  and refuses a body with duplicate or ambiguous members), then forward them unchanged;
- reserialise: read them, forward orjson's serialisation, and digest those bytes too.

Both are timed on typical chat bodies of 1 KB, 64 KB and 4 MB, compact (what the
OpenAI SDKs, httpx and JSON.stringify send) and indented (a hand-written curl body), next
to the bare `orjson.loads` every request paid before.

2. The request path as a whole (issue 9's checks): the body check and the header filter
   on a typical SDK request, against what the same request cost before them.
3. The identity assertion: one ES256 signature per request, for upstreams that ask.
4. Usage accounting: a chat answer, an SSE event, a 10 MB embeddings answer scanned.
5. Rewriting the answer's model name: a 1 KB answer, one SSE event.

Prints median CPU time per call in microseconds (milliseconds where it says so).
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from gateway.audit import BodyDigest
from gateway.proxy import (
    AssertionSigner,
    InboundHeaders,
    ModelRewrite,
    StreamUsage,
    parse_body,
    upstream_headers,
    usage_from_json,
)
from gateway.proxy._body import check_names
from gateway.proxy._usage import JsonUsage

DIGESTS = BodyDigest(b"k" * 32)


def chat_body(size: int) -> dict[str, Any]:
    """A chat request of about `size` bytes: a few turns of ordinary prose."""
    text = "The quick brown fox jumps over the lazy dog; it said: \u00e9t\u00e9 \u2713. "
    turns = max(1, size // 400)
    content = text * max(1, (size // turns - 60) // len(text))
    messages = [
        {"role": "user" if index % 2 == 0 else "assistant", "content": content}
        for index in range(turns)
    ]
    return {
        "model": "muse-1",
        "messages": messages,
        "temperature": 0.7,
        "max_tokens": 512,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def median_us(function: Callable[[], object], budget_s: float = 0.5) -> float:
    """CPU time per call: the median of rounds of calls (CPU time, not wall time, so that
    other processes on a shared machine disturb it less)."""
    function()
    started = time.process_time_ns()
    function()
    once = max(time.process_time_ns() - started, 1)
    calls = max(1, min(10_000, int(2e6 / once)))  # rounds of about 2 ms
    rounds = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(rounds) < 5:
        started = time.process_time_ns()
        for _ in range(calls):
            function()
        rounds.append((time.process_time_ns() - started) / calls)
    return statistics.median(rounds) / 1000


def reserialise(body: bytes) -> tuple[bytes, str]:
    document = orjson.loads(body)
    check_names(document)  # case-insensitive parsers still bind two names to one field
    ours = orjson.dumps(document, option=orjson.OPT_STRICT_INTEGER)
    return ours, DIGESTS.digest(ours)


def bench_bodies() -> None:
    print(f"{'body':<18} {'loads only':>11} {'refuse':>11} {'reserialise':>12}  (median us)")
    for label, size in (("1 KB", 1 << 10), ("64 KB", 64 << 10), ("4 MB", 4 << 20)):
        document = chat_body(size)
        forms = {
            "compact": json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode(),
            "indented": json.dumps(document, indent=2).encode(),
        }
        for form, body in forms.items():
            parse_body(body)  # it is accepted
            budget = 0.3 if size < (1 << 20) else 2.0
            loads = median_us(lambda body=body: orjson.loads(body), budget)
            refuse = median_us(lambda body=body: parse_body(body), budget)
            again = median_us(lambda body=body: reserialise(body), budget)
            name = f"{label} {form}"
            print(f"{name:<18} {loads:>11.1f} {refuse:>11.1f} {again:>12.1f}")


# What an OpenAI SDK request carries, as uvicorn hands it over.
SDK_HEADERS = [
    (b"host", b"gateway.example:8443"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"accept", b"application/json"),
    (b"content-type", b"application/json"),
    (b"user-agent", b"AsyncOpenAI/Python 1.70.0"),
    (b"x-stainless-lang", b"python"),
    (b"x-stainless-package-version", b"1.70.0"),
    (b"x-stainless-os", b"Linux"),
    (b"x-stainless-arch", b"x64"),
    (b"x-stainless-runtime", b"CPython"),
    (b"x-stainless-runtime-version", b"3.11.9"),
    (b"authorization", b"Bearer eyJhbGciOi.token.signature"),
    (b"x-stainless-async", b"async:asyncio"),
    (b"x-stainless-retry-count", b"0"),
    (b"content-length", b"1024"),
]

_BEFORE_DROPPED = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization",
        b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade",
        b"authorization", b"cookie", b"x-api-key", b"api-key", b"host", b"content-length",
        b"accept-encoding", b"x-request-id", b"x-goog-api-key", b"x-forwarded-client-cert",
        b"x-ssl-client-cert", b"x-client-cert", b"ssl-client-cert", b"expect",
    }
)  # fmt: skip


def headers_before(headers: list[tuple[bytes, bytes]], request_id: str) -> dict[str, str]:
    """The header filter as it was before the identity family was dropped."""
    declared: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            declared.update(t.strip().lower() for t in value.split(b",") if t.strip())
    out = {}
    for name, value in headers:
        if name in _BEFORE_DROPPED or name in declared or b"_" in name:
            continue
        out[name.decode("latin-1")] = value.decode("latin-1")
    out["x-request-id"] = request_id
    out["accept-encoding"] = "identity"
    return out


def body_before(body: bytes) -> object:
    """The body handling before the check: parse, and look for a second literal "model"."""
    document = orjson.loads(body)
    if body.count(b'"model"') > 1:
        json.loads(body, object_pairs_hook=lambda items: items)
    return document


def bench_request_path() -> None:
    # What the OpenAI SDKs and httpx send: compact, non-ASCII characters as they are.
    body = json.dumps(chat_body(1 << 10), separators=(",", ":"), ensure_ascii=False).encode()
    inbound = InboundHeaders()  # as the gateway holds it: one per app, names remembered
    before = median_us(lambda: (body_before(body), headers_before(SDK_HEADERS, "r")))
    after = median_us(
        lambda: (
            parse_body(body),
            upstream_headers(SDK_HEADERS, "r", inbound, client_address="10.0.0.1", scheme="https"),
        )
    )
    body_only = median_us(lambda: parse_body(body)) - median_us(lambda: body_before(body))
    print(f"request path, 1 KB SDK request: before {before:.1f}, after {after:.1f}, ", end="")
    print(f"added {after - before:.1f} (of which the body check {body_only:.1f})")


def bench_assertion() -> None:
    key = ECKey.import_key(ec.generate_private_key(ec.SECP256R1()))
    signer = AssertionSigner(key, "gateway.example/audit")
    claims = {
        "sub": "alice",
        "jti": "5f0e6c1d2b3a49c8a7e6d5c4b3a29180",
        "subject_issuer": "ca:agency",
        "organisation": "US CAISI",
        "nationalities": [{"value": "US", "source": "ca:agency"}],
        "roles": ["evaluator"],
        "auth_methods": ["mtls"],
        "model": "muse-spark-2",
        "reason": "allow.grant",
        "grant_id": "caisi-muse-spark-2-eval",
        "request_id": "5f0e6c1d2b3a49c8a7e6d5c4b3a29180",
        "audit_index": 1234567,
        "policy_version": "a" * 64,
    }
    cost = median_us(lambda: signer.sign(claims, "vllm-a", 1e9))
    print(f"identity assertion, ES256 per request: {cost:.1f}")


def bench_usage_and_rewrite() -> None:
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "ckpt-0413-rc2",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "word " * 150}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 150, "total_tokens": 162},
    }
    body = json.dumps(answer, separators=(",", ":")).encode()
    delta = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "ckpt-0413-rc2",
        "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}],
    }
    event = b"data: " + json.dumps(delta, separators=(",", ":")).encode() + b"\n\n"
    stream = StreamUsage()
    print(f"usage, {len(body)} B chat answer: {median_us(lambda: usage_from_json(body)):.1f}")
    print(f"usage, one SSE event without usage: {median_us(lambda: stream.feed(event)):.2f}")
    vectors = [
        {"object": "embedding", "index": i, "embedding": [-0.0123456789012 * (1 + i % 7)] * 512}
        for i in range(1200)
    ]
    usage = {"prompt_tokens": 7951, "total_tokens": 7951}
    big = json.dumps({"object": "list", "data": vectors, "usage": usage}).encode()

    def scan() -> None:
        reader = JsonUsage()
        for start in range(0, len(big), 65536):
            reader.feed(big[start : start + 65536])

    print(f"usage, {len(big) / 1e6:.1f} MB embeddings answer scanned in 64 KiB chunks: ", end="")
    print(f"{median_us(scan, 2.0) / 1000:.1f} ms")
    rewrite = ModelRewrite("ckpt-0413-rc2", "muse-1")
    print(f"model rewrite, {len(body)} B answer: {median_us(lambda: rewrite.rewrite(body)):.2f}")
    rewriting = rewrite.stream()
    print(f"model rewrite, one SSE event: {median_us(lambda: rewriting.feed(event)):.2f}")


def main() -> None:
    gc.collect()
    gc.freeze()
    bench_bodies()
    print()
    bench_request_path()
    bench_assertion()
    print()
    bench_usage_and_rewrite()


if __name__ == "__main__":
    main()
