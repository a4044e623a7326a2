"""Reading YAML while keeping the line of every key and list item.

Both the policy and the gateway's settings file are read with it, so that every error
can name its line. The document is built from parser events rather than through
PyYAML's constructor, which also means:

- plain scalars follow the YAML 1.2 core schema: only ``true``/``false`` are booleans,
  so a country code such as ``NO`` stays a string; date-times stay text;
- anchors, aliases, explicit tags and several documents per file are refused: a file
  must read the same to a person as to the gateway;
- a long read can pause now and then (`pause`), so that a reload running in a worker
  thread does not hold the interpreter lock for long stretches.

Errors: `YamlError` (a ValueError) with `line` (1-based, None if unknown) and `message`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NoReturn

import yaml

__all__ = ["LocatedList", "LocatedMap", "YamlError", "parse_yaml"]

try:  # the C parser is much faster; fall back to the pure-Python one when absent
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_PAUSE_EVERY = 64


class YamlError(ValueError):
    """A document is not YAML the gateway reads; `line` says where, `message` why."""

    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line is not None else message)


class LocatedMap(dict[str, Any]):
    """A YAML mapping that remembers its own line and the line of each key."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}


class LocatedList(list[Any]):
    """A YAML sequence that remembers its own line and the line of each item."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


def _plain(value: str) -> Any:
    """Resolve a plain (unquoted) scalar under the YAML 1.2 core schema; timestamps stay text."""
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(value):
        return int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def parse_yaml(text: str, pause: Callable[[], None] | None = None) -> Any:
    """Parse one YAML document into LocatedMap / LocatedList / scalars; YamlError if refused."""
    stack: list[Any] = []
    keys: list[str | None] = []
    root: Any = None
    documents = 0
    count = 0

    def fail(line: int, message: str) -> NoReturn:
        raise YamlError(line, message)

    def add(value: Any, line: int) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        parent = stack[-1]
        if isinstance(parent, LocatedList):
            parent.append(value)
            parent.item_lines.append(line)
            return
        key = keys[-1]
        if key is None:
            if not isinstance(value, str):
                fail(line, "mapping keys must be plain strings")
            if value in parent:
                fail(line, f"duplicate key {value!r}")
            keys[-1] = value
            parent.key_lines[value] = line
        else:
            parent[key] = value
            keys[-1] = None

    try:
        for event in yaml.parse(text, Loader=_Loader):
            count += 1
            if pause is not None and count % _PAUSE_EVERY == 0:
                pause()
            mark = event.start_mark
            line = mark.line + 1 if mark is not None else 0
            if getattr(event, "anchor", None) is not None or isinstance(event, yaml.AliasEvent):
                fail(line, "anchors and aliases are not supported")
            if isinstance(event, yaml.ScalarEvent):
                if event.tag is not None and not any(event.implicit):
                    fail(line, "explicit tags are not supported")
                value = _plain(event.value) if event.implicit[0] else event.value
                add(value, line)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if event.tag is not None and not event.implicit:
                    fail(line, "explicit tags are not supported")
                container: Any = (
                    LocatedMap(line)
                    if isinstance(event, yaml.MappingStartEvent)
                    else LocatedList(line)
                )
                if stack and isinstance(stack[-1], LocatedMap) and keys[-1] is None:
                    fail(line, "mapping keys must be plain strings")
                add(container, line)
                stack.append(container)
                keys.append(None)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                stack.pop()
                keys.pop()
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    fail(line, "a file must hold a single YAML document")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        error_line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise YamlError(error_line, f"invalid YAML: {problem}") from exc
    return root
