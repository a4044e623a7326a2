"""Members of a JSON document at given paths, found in a stream of chunks.

Usage accounting reads the upstream's `usage` member from answers that can be many
megabytes long (an embeddings answer with 1,200 vectors is 10 MB, with `usage` after
`data`) and from events as they stream past. `MemberScanner` finds the members at the
paths it is given (`("usage",)`: the top-level `usage`; `("response", "usage")`: the
`usage` of the top-level `response` object) in one pass over the chunks, keeping only
the bytes of the values it captures (bounded), never the document.

Only real member names count: the scanner follows strings (escapes included, across
chunk boundaries), so `"usage"` written by a model inside a completion's text is
content, not a member, and a `usage` member nested anywhere else is not the top-level
one. Names are compared decoded (`"us\\u0061ge"` is `usage`).
"""

from __future__ import annotations

import json
import re

# Outside strings, the bytes that change the scanner's state.
_STRUCTURE = (b'"', b"{", b"}", b"[", b"]")
_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_OPEN, _QUOTE, _BACKSLASH, _COLON = ord("{"), ord('"'), ord("\\"), ord(":")
# A longer name cannot be one we look for, even written with escapes.
_MAX_NAME_BYTES = 128


class MemberScanner:
    """Feed one JSON document chunk by chunk; `values` maps each path found to the raw
    JSON text of its (last) object value. Values are captured only when they are
    objects no larger than `limit` bytes; memory stays within that bound."""

    __slots__ = (
        "_await_colon",
        "_capture",
        "_capture_depth",
        "_captured",
        "_escape",
        "_in_string",
        "_member",
        "_name",
        "_path",
        "_prefixes",
        "_stack",
        "_targets",
        "limit",
        "values",
    )

    def __init__(self, paths: tuple[tuple[str, ...], ...], limit: int = 64 << 10) -> None:
        self._targets = frozenset(paths)
        self._prefixes = frozenset(path[:i] for path in paths for i in range(1, len(path)))
        self.limit = limit
        self.values: dict[tuple[str, ...], bytes] = {}
        self._stack = bytearray()  # the open containers: `{` or `[`
        self._path: list[str] = []  # names of the tracked objects we are inside
        self._in_string = False
        self._escape = False  # the previous chunk ended inside a string, on a backslash
        self._name: bytearray | None = None  # the string being read, when it may be a name
        self._await_colon: bytes | None = None  # a closed string: a name if `:` follows
        self._member: tuple[str, ...] | None = None  # a tracked name whose value comes next
        self._capture: bytearray | None = None
        self._capture_depth = 0
        self._captured: tuple[str, ...] = ()

    def feed(self, chunk: bytes | bytearray) -> None:
        """Advance over `chunk`, the next bytes of the document."""
        pos, end = 0, len(chunk)
        capture_from = 0
        following = [-1, -1, -1, -1, -1]
        while pos < end:
            if self._in_string:
                if self._escape:
                    self._escape = False
                    if self._name is not None:
                        self._name.append(chunk[pos])
                    pos += 1
                    continue
                stop = _string_stop(chunk, pos, end)
                if self._name is not None:
                    self._name += chunk[pos:stop]
                    if len(self._name) > _MAX_NAME_BYTES:
                        self._name = None
                if stop == end:
                    pos = end
                    break
                if chunk[stop] == _BACKSLASH:  # the escaped byte is in the next chunk
                    if self._name is not None:
                        self._name.append(_BACKSLASH)
                    self._escape = True
                    pos = stop + 1
                    continue
                self._in_string = False
                pos = stop + 1
                if self._name is not None:
                    self._await_colon, self._name = bytes(self._name), None
                continue
            if self._await_colon is not None:
                pos = _WHITESPACE.match(chunk, pos).end()  # type: ignore[union-attr]
                if pos == end:
                    break
                raw, self._await_colon = self._await_colon, None
                if chunk[pos] == _COLON:
                    pos += 1
                    path = (*self._path, _decode(raw))
                    if path in self._targets or path in self._prefixes:
                        self._member = path
                continue
            if self._member is not None:
                pos = _WHITESPACE.match(chunk, pos).end()  # type: ignore[union-attr]
                if pos == end:
                    break
                member, self._member = self._member, None
                if chunk[pos] != _OPEN:
                    self.values.pop(member, None)  # the last member of a name counts
                elif member in self._targets:
                    self._capture, self._captured = bytearray(), member
                    self._capture_depth = len(self._stack)
                    capture_from = pos
                else:
                    self._path.append(member[-1])
                continue
            # The next structural byte: each one's next position is found once (memchr
            # speed) and reused until passed, rather than testing every byte.
            for index in range(5):
                if following[index] < pos:
                    found = chunk.find(_STRUCTURE[index], pos)
                    following[index] = found if found >= 0 else end
            at = min(following)
            if at >= end:
                break
            byte = chunk[at]
            pos = at + 1
            if byte == _QUOTE:
                self._in_string = True
                if (
                    self._capture is None
                    and len(self._stack) == len(self._path) + 1
                    and self._stack[-1] == _OPEN
                ):
                    self._name = bytearray()
            elif byte in b"{[":
                self._stack.append(byte)
            else:
                if self._stack:
                    self._stack.pop()
                depth = len(self._stack)
                if self._capture is not None and depth == self._capture_depth:
                    self._finish_capture(chunk[capture_from:pos])
                elif self._path and depth == len(self._path):
                    self._path.pop()
        if self._capture is not None:
            self._capture += chunk[capture_from:]
            if len(self._capture) > self.limit:
                self._capture = None  # too large to be a usage object: not captured

    def _finish_capture(self, tail: bytes | bytearray) -> None:
        assert self._capture is not None
        value = bytes(self._capture + tail)
        self._capture = None
        if len(value) <= self.limit:
            self.values[self._captured] = value


def _string_stop(chunk: bytes | bytearray, pos: int, end: int) -> int:
    """Where the string that `pos` is inside stops in `chunk`: its closing quote, a
    backslash that is the chunk's last byte (its escaped byte comes next), or `end`."""
    while True:
        quote = chunk.find(b'"', pos)
        stop = quote if quote >= 0 else end
        run = stop
        while run > pos and chunk[run - 1] == _BACKSLASH:
            run -= 1
        if (stop - run) % 2 == 0:
            return stop  # an even run of backslashes escapes nothing
        if quote < 0:
            return end - 1  # the last backslash escapes the next chunk's first byte
        pos = quote + 1  # an escaped quote: the string goes on


def _decode(raw: bytes) -> str:
    """A member name from its raw bytes between the quotes."""
    if _BACKSLASH not in raw:
        return raw.decode("utf-8", "replace")
    try:
        name = json.loads(b'"' + raw + b'"')
    except ValueError:
        return ""
    return name if isinstance(name, str) else ""
