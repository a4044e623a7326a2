"""Proxy boundary micro-benchmark: what checking a body costs, and the alternative.

Two ways to make the upstream act on the document the gateway decided on:

- refuse: check the caller's bytes (`parse_body`: orjson reads them, writes them back,
  and refuses a body with duplicate or ambiguous members), then forward them unchanged;
- reserialise: read them, forward orjson's serialisation, and digest those bytes too.

Both are timed on typical chat bodies of 1 KB, 64 KB and 4 MB, compact (what the
OpenAI SDKs, httpx and JSON.stringify send) and indented (a hand-written curl body), next
to the bare `orjson.loads` every request paid before. Prints the median in microseconds.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from gateway.audit import BodyDigest
from gateway.proxy import parse_body
from gateway.proxy._body import check_names

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
    function()
    rounds = []
    deadline = time.perf_counter() + budget_s
    while time.perf_counter() < deadline or len(rounds) < 5:
        started = time.perf_counter_ns()
        function()
        rounds.append(time.perf_counter_ns() - started)
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


def main() -> None:
    gc.collect()
    gc.freeze()
    bench_bodies()


if __name__ == "__main__":
    main()
