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
        1, 2, 3
    )
    nested = b'{"response": {"usage": {"input_tokens": 3, "output_tokens": 4}}}'
    assert usage_from_json(nested) == Usage(3, 4, 7)


def test_a_usage_member_that_is_not_an_object_falls_back_to_the_whole_body() -> None:
    body = b'{"usage": {"prompt_tokens": 5, "completion_tokens": 1}, "x": {"usage": null}}'
    assert usage_from_json(body) == Usage(5, 1, 6)
