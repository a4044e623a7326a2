"""The upstream's model name never reaches the caller in an answer's `"model"` members,
whole or streamed, however the stream is cut, and nothing else in the answer changes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import Section
from gateway.proxy import ModelRewrite, Route

INTERNAL = "ckpt-0413/rc2"
REWRITE = ModelRewrite(INTERNAL, "muse-1")


@pytest.mark.parametrize(
    "written",
    [
        b'"model":"ckpt-0413/rc2"',
        b'"model" : "ckpt-0413/rc2"',
        b'"model":\n  "ckpt-0413/rc2"',
        rb'"model":"ckpt-0413\/rc2"',
        rb'"model":"\u0063kpt-0413\u002Frc2"',
        rb'"model":"\u0063\u006b\u0070\u0074\u002d\u0030\u0034\u0031\u0033\u002f\u0072\u0063\u0032"',
    ],
)
def test_every_way_of_writing_the_name_is_rewritten(written: bytes) -> None:
    body = b'{"id":"x",' + written + b',"choices":[]}'
    value = written.index(b'"', written.index(b":"))
    # Only the value changes: the member's name and spacing stay as the upstream wrote them.
    assert REWRITE.rewrite(body) == b'{"id":"x",' + written[:value] + b'"muse-1","choices":[]}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"ckpt-0413/rc2-distilled"}',  # another model
        b'{"model":"ckpt-0413"}',
        b'{"choices":[{"message":{"content":"I am \\"model\\":\\"ckpt-0413/rc2\\""}}]}',
        b'{"models":"ckpt-0413/rc2"}',
        b'{"model":["ckpt-0413/rc2"]}',
    ],
)
def test_nothing_else_changes(body: bytes) -> None:
    assert REWRITE.rewrite(body) == body


def test_every_member_is_rewritten_nested_ones_included() -> None:
    body = json.dumps(
        {
            "model": INTERNAL,
            "response": {"model": INTERNAL, "output": []},
            "x": [{"model": INTERNAL}],
        }
    ).encode()
    assert INTERNAL.encode() not in REWRITE.rewrite(body)


def test_an_error_answer_loses_every_mention_of_the_name() -> None:
    body = b'{"error":{"message":"ckpt-0413/rc2 is overloaded","model":"ckpt-0413/rc2"}}'
    assert REWRITE.rewrite_error(body) == (
        b'{"error":{"message":"muse-1 is overloaded","model":"muse-1"}}'
    )


def _events(count: int) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": INTERNAL, "choices": []}
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for _ in range(count))


def test_a_whole_event_is_never_held_back() -> None:
    stream = REWRITE.stream()
    for event in _events(3).split(b"\n\n")[:-1]:
        out = stream.feed(event + b"\n\n")
        assert out.endswith(b"\n\n")
        assert b'"model": "muse-1"' in out
    assert stream.flush() == b""


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                _events(1),
                b'{"model" :  "ckpt-0413\\/rc2"}',
                b'"model"',
                b'"model":"ckpt-0413',
                b"ckpt-0413/rc2",
                b'"mod',
                b'\\"model\\":\\"ckpt-0413/rc2\\"',
                b" \n",
            ]
        ),
        max_size=8,
    ),
    st.lists(st.integers(1, 30), min_size=1, max_size=10),
)
def test_a_stream_cut_anywhere_reads_as_the_whole_answer_rewritten(
    pieces: list[bytes], cuts: list[int]
) -> None:
    body = b"".join(pieces)
    stream, out, position, index = REWRITE.stream(), [], 0, 0
    while position < len(body):
        size = cuts[index % len(cuts)]
        out.append(stream.feed(body[position : position + size]))
        position, index = position + size, index + 1
    out.append(stream.flush())
    assert b"".join(out) == REWRITE.rewrite(body)


def _route(data: dict[str, object]) -> Route:
    return Route.from_section(Section({"upstream": "demo", **data}, "gateway.yaml", "models[0]"))


def test_rewriting_is_on_by_default_when_the_names_differ() -> None:
    assert _route({"id": "muse-1", "upstream_model": INTERNAL}).rewrite_response_model
    assert not _route({"id": "muse-1"}).rewrite_response_model
    assert not _route({"id": "muse-1", "upstream_model": "muse-1"}).rewrite_response_model


def test_rewriting_can_be_turned_off() -> None:
    route = _route({"id": "muse-1", "upstream_model": INTERNAL, "rewrite_response_model": False})
    assert not route.rewrite_response_model
