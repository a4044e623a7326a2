import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.proxy import StreamUsage, Usage, usage_from_json
from gateway.proxy._usage import JsonUsage


def _event(document: object) -> bytes:
    return b"data: " + json.dumps(document).encode() + b"\n\n"


def test_usage_is_read_from_a_chat_completion_body() -> None:
    body = json.dumps(
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}
    ).encode()
    assert usage_from_json(body) == Usage(3, 5, 8)


def test_usage_is_read_from_a_responses_api_body() -> None:
    body = json.dumps({"usage": {"input_tokens": 4, "output_tokens": 6}}).encode()
    assert usage_from_json(body) == Usage(4, 6, None)


def test_a_body_without_usage_has_none() -> None:
    assert usage_from_json(b'{"choices": []}') is None


def test_a_body_that_is_not_json_has_none() -> None:
    assert usage_from_json(b'{"usage": ') is None


def test_negative_or_non_integer_counts_are_not_usage() -> None:
    assert usage_from_json(b'{"usage": {"prompt_tokens": -1, "completion_tokens": 2}}') is None
    assert usage_from_json(b'{"usage": {"prompt_tokens": true, "completion_tokens": 2}}') is None


def test_stream_usage_comes_from_the_final_chunk() -> None:
    stream = StreamUsage()
    stream.feed(_event({"choices": [{"delta": {"content": "a"}}], "usage": None}))
    stream.feed(_event({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 7}}))
    stream.feed(b"data: [DONE]\n\n")
    assert stream.usage == Usage(2, 7, None)


def test_stream_usage_survives_an_event_split_across_chunks() -> None:
    event = _event({"usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    stream = StreamUsage()
    for i in range(len(event)):
        stream.feed(event[i : i + 1])
    assert stream.usage == Usage(1, 1, 2)


def test_a_stream_without_usage_is_recorded_as_none() -> None:
    stream = StreamUsage()
    for _ in range(20):
        stream.feed(_event({"choices": [{"delta": {"content": "x"}}]}))
    stream.feed(b"data: [DONE]\n\n")
    assert stream.usage is None


def test_responses_api_completed_event_carries_usage() -> None:
    stream = StreamUsage()
    stream.feed(
        b"event: response.completed\n"
        + _event(
            {
                "type": "response.completed",
                "response": {"usage": {"input_tokens": 5, "output_tokens": 2}},
            }
        )
    )
    assert stream.usage == Usage(5, 2, None)


def test_usage_after_a_long_completion_is_found_without_decoding_it() -> None:
    body = json.dumps(
        {
            "choices": [{"message": {"content": 'say "usage": {"prompt_tokens": 99} ' * 500}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3000, "total_tokens": 3012},
        }
    ).encode()
    assert usage_from_json(body) == Usage(12, 3000, 3012)


def test_usage_written_with_spaces_or_nested_is_still_found() -> None:
    assert usage_from_json(b'{"usage" :  {"prompt_tokens": 1, "completion_tokens": 2}}') == Usage(
        1, 2
    )
    # In a JSON answer only the top-level member counts.
    nested = b'{"response": {"usage": {"input_tokens": 3, "output_tokens": 4}}}'
    assert usage_from_json(nested) is None


def test_a_usage_member_that_is_not_an_object_falls_back_to_the_whole_body() -> None:
    body = b'{"usage": {"prompt_tokens": 5, "completion_tokens": 1}, "x": {"usage": null}}'
    assert usage_from_json(body) == Usage(5, 1)


# The class of issue 13 item 13: usage found in answers of any size, only where the
# upstream put it, and recorded as reported.


def _embeddings_answer(vectors: int, dimensions: int = 384) -> bytes:
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": [-0.012345678901234 * (1 + (i + j) % 7) for j in range(dimensions)],
        }
        for i in range(vectors)
    ]
    usage = {"prompt_tokens": 7951, "total_tokens": 7951}
    return json.dumps({"object": "list", "data": data, "model": "m", "usage": usage}).encode()


def test_usage_after_ten_megabytes_of_embeddings_is_found_in_bounded_memory() -> None:
    body = _embeddings_answer(1200)
    assert len(body) > 9_000_000
    reader = JsonUsage()
    tracemalloc.start()
    try:
        for start in range(0, len(body), 65536):
            reader.feed(body[start : start + 65536])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert reader.usage == Usage(prompt_tokens=7951, total_tokens=7951)


def test_an_embeddings_usage_records_only_the_counts_reported() -> None:
    reader = JsonUsage()
    reader.feed(_embeddings_answer(3))
    assert reader.usage is not None
    assert reader.usage.to_json() == {"prompt_tokens": 7951, "total_tokens": 7951}
    assert usage_from_json(_embeddings_answer(3)) == reader.usage


FAKES = [
    # What a caller can make the model write, and members that are not the answer's usage.
    {"choices": [{"message": {"content": '"usage": {"prompt_tokens": 0}'}}]},
    {"choices": [{"message": {"content": '}, "usage": {"prompt_tokens": 0}, "x": {'}}]},
    {"choices": [{"message": {"content": '\\", "usage": {"prompt_tokens": 0}} '}}]},
    {"data": [{"usage": {"prompt_tokens": 0, "completion_tokens": 0}}]},
    {"choices": [{"message": {"tool_calls": [{"arguments": '{"usage": {"total_tokens": 0}}'}]}}]},
    {"metadata": {"usage": {"prompt_tokens": 0}}},
]


@pytest.mark.parametrize("fake", FAKES)
def test_text_or_nested_members_never_count_as_usage(fake: dict[str, object]) -> None:
    real = {"prompt_tokens": 12, "completion_tokens": 3}
    for document, expected in (
        ({**fake, "usage": real}, Usage(12, 3)),
        ({"usage": real, **fake}, Usage(12, 3)),
        (fake, None),
    ):
        body = json.dumps(document).encode()
        assert usage_from_json(body) == expected
        reader = JsonUsage()
        for start in range(0, len(body), 7):
            reader.feed(body[start : start + 7])
        assert reader.usage == expected
        stream = StreamUsage()
        stream.feed(_event(document))
        assert stream.usage == expected


def test_a_usage_name_written_with_escapes_is_the_usage_member() -> None:
    body = rb'{"choices": [], "us\u0061ge": {"prompt_tokens": 4, "completion_tokens": 1}}'
    assert usage_from_json(body) == Usage(4, 1)
    reader = JsonUsage()
    reader.feed(body)
    assert reader.usage == Usage(4, 1)
    stream = StreamUsage()
    stream.feed(b"data: " + body + b"\n\n")
    assert stream.usage == Usage(4, 1)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_stream_usage_is_found_whatever_the_line_ending(newline: bytes) -> None:
    events = [
        {"choices": [{"delta": {"content": "a"}}], "usage": None},
        {"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 7}},
    ]
    stream_bytes = (
        b"".join(
            b"event: chunk" + newline + b"data: " + json.dumps(e).encode() + newline * 2
            for e in events
        )
        + b"data: [DONE]"
        + newline * 2
    )
    for size in (1, 2, 3, 5, len(stream_bytes)):
        stream = StreamUsage()
        for start in range(0, len(stream_bytes), size):
            stream.feed(stream_bytes[start : start + size])
        assert stream.usage == Usage(2, 7), size


def test_a_multi_line_data_event_is_read_as_one_document() -> None:
    stream = StreamUsage()
    stream.feed(b'data: {"usage":\ndata: {"prompt_tokens": 3,\ndata: "total_tokens": 3}}\n\n')
    assert stream.usage == Usage(prompt_tokens=3, total_tokens=3)


def test_usage_in_an_event_larger_than_a_megabyte_is_found() -> None:
    # A Responses API `response.completed` event repeats the whole output before usage.
    completed = {
        "type": "response.completed",
        "response": {
            "output": [{"content": [{"text": 'x "usage": {"input_tokens": 0} ' * 100_000}]}],
            "usage": {"input_tokens": 9, "output_tokens": 600_000, "total_tokens": 600_009},
        },
    }
    event = b"event: response.completed\ndata: " + json.dumps(completed).encode() + b"\n\n"
    assert len(event) > 2 << 20
    stream = StreamUsage()
    tracemalloc.start()
    try:
        for start in range(0, len(event), 65536):
            stream.feed(event[start : start + 65536])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.usage == Usage(9, 600_000, 600_009)
    assert peak < 2 << 20


# Documents whose strings say "usage" in every way, and nested usage members.
_TEXT = st.lists(
    st.sampled_from(['"', "\\", "{", "}", "[", "]", ":", ",", '"usage":', "usage", " ", "é"])
).map("".join)
_JSON = st.recursive(
    st.none() | st.integers(0, 100) | _TEXT,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["usage", "data", "text", "u"]), inner, max_size=3)
    ),
    max_leaves=10,
)
_USAGE = st.none() | st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 10**6)},
    optional={"completion_tokens": st.integers(0, 10**6), "total_tokens": st.integers(0, 9)},
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["data", "text", "choices", "x"]), _JSON, max_size=3),
    _USAGE,
    st.integers(0, 3),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
    st.booleans(),
)
def test_usage_is_the_top_level_member_however_the_answer_is_cut(
    members: dict[str, object],
    usage: dict[str, int] | None,
    where: int,
    cuts: list[int],
    indent: bool,
) -> None:
    items = list(members.items())
    if usage is not None:
        items.insert(min(where, len(items)), ("usage", usage))
    body = json.dumps(dict(items), indent=2 if indent else None).encode()
    expected = (
        Usage(usage["prompt_tokens"], usage.get("completion_tokens"), usage.get("total_tokens"))
        if usage is not None
        else None
    )
    assert usage_from_json(body) == expected
    reader, stream = JsonUsage(), StreamUsage()
    event = b"data: " + json.dumps(dict(items)).encode() + b"\n\n"
    position, index = 0, 0
    while position < len(body):
        size = cuts[index % len(cuts)]
        reader.feed(body[position : position + size])
        position, index = position + size, index + 1
    for start in range(0, len(event), cuts[0]):
        stream.feed(event[start : start + cuts[0]])
    assert reader.usage == expected
    assert stream.usage == expected
