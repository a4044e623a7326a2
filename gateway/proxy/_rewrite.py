"""The upstream's model name in answers, replaced by the public model id.

A route maps a public id (`muse-1`) to the name the upstream knows (`ckpt-0413-rc2`);
the upstream writes its own name into every answer's `"model"` member, and an internal
checkpoint name can itself be confidential before release. `ModelRewrite` replaces the
value of every `"model"` member that is the upstream's name, written in any way JSON
allows (each character raw or escaped), by the public id: in a whole body, or in a
stream chunk by chunk, where a member may straddle two chunks. Only a possible start of
a member is held back at the end of a chunk (an event's own end never is), so streams
are not delayed.

A JSON string cannot contain an unescaped quote, so the pattern (quote, `model`, quote,
colon, quote, name, quote) only ever matches a member, never text a model wrote.
"""

from __future__ import annotations

import json
import re

_SPACE = rb"[ \t\r\n]*"
# Held back at most this much; a member spread wider (kilobytes of whitespace) passes as is.
_MAX_HELD = 4096


class ModelRewrite:
    """Replaces `"model": "<upstream name>"` by `"model": "<public id>"`; built once per
    route, shared by every request (`stream()` gives the per-answer state)."""

    __slots__ = ("_member", "_mention", "_partial", "_public", "_quoted")

    def __init__(self, upstream_model: str, public_model: str) -> None:
        units = _name_units(upstream_model)
        name = b"".join(_alternatives(unit) for unit in units)
        self._member = re.compile(rb'("model"' + _SPACE + b":" + _SPACE + rb')"' + name + b'"')
        self._quoted = json.dumps(public_model).encode()
        # Inside an error message: the name as the upstream most likely writes it.
        self._mention = re.compile(re.escape(json.dumps(upstream_model)[1:-1].encode()))
        self._public = json.dumps(public_model)[1:-1].encode()
        literal = [[b'"'], *([bytes([c])] for c in b"model"), [b'"']]
        sequence: list[list[bytes] | None] = [
            *literal,
            None,
            [b":"],
            None,
            [b'"'],
            *units,
            [b'"'],
        ]
        self._partial = re.compile(_prefix_pattern(sequence) + rb"\Z")

    def rewrite(self, body: bytes) -> bytes:
        """A whole body with every member rewritten."""
        # Finding the literal first and matching there is several times faster than
        # re.sub, which tries the pattern at every byte.
        at = body.find(b'"model"')
        if at < 0:
            return body
        parts: list[bytes] = []
        done = 0
        while at >= 0:
            match = self._member.match(body, at)
            if match is None:
                at = body.find(b'"model"', at + 7)
                continue
            parts += (body[done : match.end(1)], self._quoted)
            done = match.end()
            at = body.find(b'"model"', done)
        if not parts:
            return body
        parts.append(body[done:])
        return b"".join(parts)

    def rewrite_error(self, body: bytes) -> bytes:
        """An error body: the members, and the name wherever the message mentions it."""
        return self._mention.sub(lambda _: self._public, self.rewrite(body))

    def stream(self) -> ModelRewriteStream:
        """State for rewriting one answer chunk by chunk."""
        return ModelRewriteStream(self)


class ModelRewriteStream:
    """One answer's rewriting: holds back only a possible start of a member."""

    __slots__ = ("_held", "_rewrite")

    def __init__(self, rewrite: ModelRewrite) -> None:
        self._rewrite = rewrite
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """The next bytes to relay: `chunk` rewritten, less a possible member start."""
        rewrite = self._rewrite
        data = rewrite.rewrite(self._held + chunk if self._held else chunk)
        end = len(data)
        # A member cut short either contains `"model"` (only one can: a quote inside the
        # name is escaped) or is the start of it, which has only its first quote.
        start = data.rfind(b'"model"', max(0, end - _MAX_HELD))
        if start < 0 or rewrite._partial.match(data, start) is None:
            start = data.rfind(b'"', max(0, end - 6))
            if start >= 0 and not b'"model'.startswith(data[start:]):
                start = -1
        if start < 0:
            self._held = b""
            return data
        self._held = data[start:]
        return data[:start]

    def flush(self) -> bytes:
        """Whatever is still held back, at the end of the answer."""
        held, self._held = self._held, b""
        return held


def _name_units(name: str) -> list[list[bytes]]:
    """Every way JSON may write each character of `name`, as alternative byte strings."""
    short = {'"': b'\\"', "\\": b"\\\\", "/": b"\\/", "\b": b"\\b", "\f": b"\\f"}
    short |= {"\n": b"\\n", "\r": b"\\r", "\t": b"\\t"}
    units = []
    for char in name:
        forms = []
        if char not in '"\\' and ord(char) >= 0x20:
            forms.append(char.encode("utf-8"))
        if char in short:
            forms.append(short[char])
        code = ord(char)
        if code > 0xFFFF:
            high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
            forms += _cases(f"\\u{high:04x}\\u{low:04x}")
        else:
            forms += _cases(f"\\u{code:04x}")
        units.append(forms)
    return units


def _cases(escape: str) -> list[bytes]:
    """An escape with its hex digits in every mix of upper and lower case."""
    forms = [""]
    for char in escape:
        options = {char.lower(), char.upper()} if char in "abcdef" else {char}
        forms = [form + option for form in forms for option in sorted(options)]
    return [form.encode("ascii") for form in forms]


def _alternatives(unit: list[bytes]) -> bytes:
    return b"(?:" + b"|".join(re.escape(form) for form in unit) + b")"


def _prefix_pattern(sequence: list[list[bytes] | None]) -> bytes:
    """A pattern for any non-empty proper prefix of the byte sequences `sequence`
    describes (a unit is a list of alternatives, None is optional whitespace)."""
    branches = []
    done = b""
    for unit in sequence:
        if unit is None:
            done += _SPACE
            branches.append(done)  # a prefix that ends in the whitespace
            continue
        partial = sorted({form[:cut] for form in unit for cut in range(1, len(form) + 1)})
        branches.append(done + b"(?:" + b"|".join(re.escape(p) for p in partial) + b")")
        done += _alternatives(unit)
    return b"(?:" + b"|".join(branches) + b")"
