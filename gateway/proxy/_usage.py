"""Token usage as the upstream reports it, from a JSON answer or from an SSE stream.

Nothing is estimated and nothing is filled in: a count the upstream did not report is
absent from the record, and an answer or stream that carries no usage yields `None`.
Usage is the answer's top-level `usage` member (for Responses API stream events, the
`usage` of the top-level `response` object), never text inside a string that a caller
could make the model write. Answers and events of any size are read in bounded memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.proxy._scan import MemberScanner

_TOP = ("usage",)
_DECODE_WHOLE_LIMIT = 256 << 10
_RESPONSE = ("response", "usage")


@dataclass(frozen=True, slots=True)
class Usage:
    """The counts an upstream reported; None where it reported none (or not a count).

    The Responses API's `input_tokens` and `output_tokens` are read as `prompt_tokens`
    and `completion_tokens`.
    """

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None

    def to_json(self) -> dict[str, int]:
        """The reported counts only."""
        counts = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        return {name: value for name, value in counts.items() if value is not None}


_INVALID = -1


def _count(usage: dict[str, Any], *names: str) -> int | None:
    """The first of `names` reported; `_INVALID` when it is not a count."""
    for name in names:
        value = usage.get(name)
        if value is not None:
            return value if type(value) is int and value >= 0 else _INVALID
    return None


def usage_from_value(value: Any) -> Usage | None:
    """Usage from a decoded `usage` object; None when it holds no count, or a reported
    count that is not a non-negative integer (a malformed account is not used at all)."""
    if not isinstance(value, dict):
        return None
    prompt = _count(value, "prompt_tokens", "input_tokens")
    completion = _count(value, "completion_tokens", "output_tokens")
    total = _count(value, "total_tokens")
    counts = (prompt, completion, total)
    if _INVALID in counts or counts == (None, None, None):
        return None
    return Usage(prompt, completion, total)


def _from_raw(raw: bytes | None) -> Usage | None:
    if raw is None:
        return None
    try:
        return usage_from_value(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return None


def may_name_usage(data: bytes | bytearray) -> bool:
    """False only when `data` cannot contain a member named `usage`: spelt out, or with
    one of its letters escaped (`\\u0075`, `\\u0073`, `\\u0061`, `\\u0067`, `\\u0065`)."""
    return b"usage" in data or b"\\u006" in data or b"\\u007" in data


def usage_from_json(body: bytes) -> Usage | None:
    """Usage from a complete JSON answer held in memory; None when absent or not JSON."""
    if not may_name_usage(body):
        return None
    if len(body) > _DECODE_WHOLE_LIMIT:
        # Decoding megabytes of embeddings into Python objects costs far more memory
        # and time than scanning past them.
        reader = JsonUsage()
        reader.feed(body)
        return reader.usage
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return usage_from_value(document.get("usage")) if isinstance(document, dict) else None


# Answers up to this size are kept and decoded whole rather than scanned.
_KEEP_LIMIT = 256 << 10


class JsonUsage:
    """Usage from a JSON answer relayed chunk by chunk, whatever its size.

    An answer of up to `_KEEP_LIMIT` bytes (nearly all of them) is kept and decoded once
    at the end, which is far cheaper than scanning it; a longer one is scanned as it
    passes, in bounded memory."""

    __slots__ = ("_kept", "_scanner", "_size")

    def __init__(self) -> None:
        self._kept: list[bytes] | None = []
        self._size = 0
        self._scanner: MemberScanner | None = None

    def feed(self, chunk: bytes) -> None:
        if self._kept is not None:
            self._size += len(chunk)
            if self._size <= _KEEP_LIMIT:
                self._kept.append(chunk)
                return
            self._scanner = MemberScanner((_TOP,))
            for kept in self._kept:
                self._scanner.feed(kept)
            self._kept = None
        assert self._scanner is not None
        self._scanner.feed(chunk)

    @property
    def usage(self) -> Usage | None:
        if self._kept is not None:
            return usage_from_json(b"".join(self._kept))
        assert self._scanner is not None
        return _from_raw(self._scanner.values.get(_TOP))


_LINE_END = re.compile(rb"\r\n|\r|\n")
_EVENT_END = (b"\n\n", b"\r\n\r\n", b"\r\r")


class StreamUsage:
    """Follows an SSE stream chunk by chunk and keeps the last usage an event reports.

    Lines end in LF, CRLF or CR (the SSE grammar); an event's `data:` lines are joined
    with LF and read as one JSON document. An event is kept whole up to `_MAX_KEPT`
    bytes; a larger one is scanned as it passes, so memory stays bounded whatever the
    length of the stream or of one event.
    """

    __slots__ = ("_after_cr", "_data", "_field", "_kept", "_line", "_scanner", "usage")

    _MAX_KEPT = 1 << 20

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self._after_cr = False  # the last chunk ended in CR: a leading LF is its pair
        self._line = b""  # the start of a line whose field is not known yet
        self._field: bool | None = None  # in a line: True for `data`, False for another
        self._data = 0  # data lines seen in this event
        self._kept: bytearray | None = None  # this event's data, while small
        self._scanner: MemberScanner | None = None  # ... or its scan, once large

    def feed(self, chunk: bytes) -> None:
        if self._after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._after_cr = chunk[-1:] == b"\r"
        if (
            self._field is None
            and not self._line
            and not self._data
            and chunk.endswith(_EVENT_END)
            and not may_name_usage(chunk)
        ):
            return  # whole events, none of which can report usage
        pieces = _LINE_END.split(chunk)
        for piece in pieces[:-1]:
            self._extend_line(piece)
            self._end_line()
        self._extend_line(pieces[-1])

    def _extend_line(self, piece: bytes) -> None:
        if self._field is None:
            piece = self._line + piece
            if len(piece) < 5 and b"data:".startswith(piece):
                self._line = piece  # too short yet to know the field
                return
            self._line = b""
            self._field = piece.startswith(b"data:")
            if not self._field:
                return
            if self._data:
                self._append(b"\n")
            self._data += 1
            piece = piece[5:]
            if piece[:1] == b" ":
                piece = piece[1:]
            # A line "data:" split right before its optional space is rare enough to
            # read the space as JSON whitespace, which it is.
        if self._field:
            self._append(piece)

    def _end_line(self) -> None:
        if self._field is None and self._line == b"data":
            self._field = True  # `data` alone: a data line with an empty value
            if self._data:
                self._append(b"\n")
            self._data += 1
        elif self._field is None and not self._line:
            self._dispatch()  # an empty line ends the event
        self._field, self._line = None, b""

    def _append(self, data: bytes) -> None:
        if self._scanner is not None:
            self._scanner.feed(data)
            return
        if self._kept is None:
            self._kept = bytearray()
        self._kept += data
        if len(self._kept) > self._MAX_KEPT:
            self._scanner = MemberScanner((_TOP, _RESPONSE))
            self._scanner.feed(self._kept)
            self._kept = None

    def _dispatch(self) -> None:
        found = None
        if self._scanner is not None:
            values = self._scanner.values
            found = _from_raw(values.get(_TOP)) or _from_raw(values.get(_RESPONSE))
        elif self._kept is not None and may_name_usage(self._kept):
            found = _event_usage(bytes(self._kept))
        if found is not None:
            self.usage = found
        self._data, self._kept, self._scanner = 0, None, None


def _event_usage(payload: bytes) -> Usage | None:
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None  # `[DONE]`, or not JSON
    if not isinstance(document, dict):
        return None
    found = usage_from_value(document.get("usage"))
    response = document.get("response")
    if found is None and isinstance(response, dict):
        found = usage_from_value(response.get("usage"))  # Responses API events
    return found
