import json

from gateway.proxy import StreamUsage, Usage, usage_from_json


def _event(document: object) -> bytes:
    return b"data: " + json.dumps(document).encode() + b"\n\n"


def test_usage_is_read_from_a_chat_completion_body() -> None:
    body = json.dumps(
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}}
    ).encode()
    assert usage_from_json(body) == Usage(3, 5, 8)


def test_usage_is_read_from_a_responses_api_body() -> None:
    body = json.dumps({"usage": {"input_tokens": 4, "output_tokens": 6}}).encode()
    assert usage_from_json(body) == Usage(4, 6, 10)


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
    assert stream.usage == Usage(2, 7, 9)


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
    assert stream.usage == Usage(5, 2, 7)
