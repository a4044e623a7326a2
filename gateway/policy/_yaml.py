"""Validating the policy's YAML: typed getters whose errors name file, key path and line.

The files are read with `gateway.located_yaml` (YAML 1.2 core scalars, so ``NO`` stays
a string; no anchors, aliases, tags or multiple documents; every key and item keeps
its line), whose errors become `PolicyLoadError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

from gateway.located_yaml import LocatedList, LocatedMap, YamlError
from gateway.located_yaml import parse_yaml as _parse

from ._errors import PolicyLoadError

__all__ = ["LocatedList", "LocatedMap", "Node", "parse_yaml"]

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_yaml(text: str, file: str, pause: Callable[[], None] | None = None) -> Any:
    """Parse one YAML document of `file`; a refusal is a PolicyLoadError naming the line."""
    try:
        return _parse(text, pause)
    except YamlError as exc:
        raise PolicyLoadError(file, "", exc.line, exc.message) from exc


class Node:
    """A mapping under validation: typed getters whose errors name file, key path and line."""

    __slots__ = ("data", "file", "path")

    def __init__(self, data: Any, file: str, path: str, line: int | None = None) -> None:
        if data is None:
            data = LocatedMap(line or 1)
        if not isinstance(data, LocatedMap):
            raise PolicyLoadError(file, path, _line_of(data, line), "expected a mapping")
        self.data: LocatedMap = data
        self.file = file
        self.path = path

    def key(self, name: str) -> str:
        """The dotted key path of `name` inside this mapping."""
        return f"{self.path}.{name}" if self.path else name

    def line(self, name: str | None = None) -> int:
        """The line of key `name`, or of the mapping itself."""
        if name is not None and name in self.data.key_lines:
            return self.data.key_lines[name]
        return self.data.line

    def fail(self, name: str | None, message: str) -> NoReturn:
        """Raise a PolicyLoadError for key `name` (or the mapping itself when None)."""
        key = self.key(name) if name is not None else self.path
        raise PolicyLoadError(self.file, key, self.line(name), message)

    def fail_item(self, name: str, index: int, message: str) -> NoReturn:
        """Raise a PolicyLoadError for item `index` of list `name`."""
        value = self.data.get(name)
        line = self.line(name)
        if isinstance(value, LocatedList) and index < len(value.item_lines):
            line = value.item_lines[index]
        raise PolicyLoadError(self.file, f"{self.key(name)}[{index}]", line, message)

    def reject_unknown(self, *allowed: str) -> None:
        """Fail on any key not in `allowed`: a typo must never silently mean a default."""
        for name in self.data:
            if name not in allowed:
                self.fail(name, f"unknown key (expected one of: {', '.join(allowed)})")

    def has(self, name: str) -> bool:
        return self.data.get(name) is not None

    def require(self, name: str) -> Any:
        if not self.has(name):
            self.fail(name, "is required")
        return self.data[name]

    def node(self, name: str, *, required: bool = False) -> Node:
        """The mapping under key `name` (empty when absent and not required)."""
        if required:
            self.require(name)
        return Node(self.data.get(name), self.file, self.key(name), self.line(name))

    def nodes(self, name: str) -> list[Node]:
        """The list of mappings under key `name`, each keyed ``name[i]``."""
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, LocatedList):
            self.fail(name, "expected a list")
        return [
            Node(item, self.file, f"{self.key(name)}[{i}]", value.item_lines[i])
            for i, item in enumerate(value)
        ]

    def string(self, name: str, default: Any = ...) -> Any:
        if not self.has(name):
            if default is ...:
                self.fail(name, "is required")
            return default
        value = self.data[name]
        if not isinstance(value, str):
            self.fail(name, f"expected a string, got {_kind(value)}")
        if not value.strip():
            self.fail(name, "must not be empty")
        return value

    def strings(self, name: str, default: Any = ...) -> Any:
        """A list of non-empty strings (a single string is refused)."""
        if not self.has(name):
            if default is ...:
                self.fail(name, "is required")
            return default
        value = self.data[name]
        if not isinstance(value, LocatedList):
            self.fail(name, f"expected a list of strings, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.fail_item(name, index, f"expected a non-empty string, got {_kind(item)}")
        return list(value)

    def integer(self, name: str, default: Any = ..., *, minimum: int | None = None) -> Any:
        if not self.has(name):
            if default is ...:
                self.fail(name, "is required")
            return default
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"expected an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            self.fail(name, f"must be at least {minimum}")
        return value

    def boolean(self, name: str, default: Any = ...) -> Any:
        if not self.has(name):
            if default is ...:
                self.fail(name, "is required")
            return default
        value = self.data[name]
        if not isinstance(value, bool):
            self.fail(name, f"expected true or false, got {_kind(value)}")
        return value

    def choice(self, name: str, options: tuple[str, ...], default: Any = ...) -> Any:
        value = self.string(name, default)
        if value is not None and value not in options:
            self.fail(name, f"expected one of: {', '.join(options)}")
        return value

    def instant(self, name: str, default: Any = ...) -> Any:
        """An RFC 3339 date-time with an explicit offset, returned as an aware UTC datetime."""
        if not self.has(name) and default is not ...:
            return default
        text = self.string(name)
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            self.fail(name, "expected a date-time such as 2027-01-15T16:00:00Z")
        if value.tzinfo is None or "T" not in text.upper():
            self.fail(name, "expected a date-time with a time zone, such as 2027-01-15T16:00:00Z")
        return value.astimezone(UTC)

    def day(self, name: str) -> date:
        """A calendar date written as YYYY-MM-DD."""
        text = self.string(name)
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.fail(name, "expected a date such as 2025-01-01")

    def duration(self, name: str, default: timedelta) -> timedelta:
        """A duration written as e.g. ``30d``, ``12h``, ``1d12h`` or ``90m``."""
        if not self.has(name):
            return default
        text = self.data[name]
        match = _DURATION.fullmatch(text) if isinstance(text, str) and text else None
        if match is None or not any(match.groups()):
            self.fail(name, "expected a duration such as 30d, 12h or 1d12h")
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, LocatedMap):
        return "a mapping"
    if isinstance(value, LocatedList):
        return "a list"
    return type(value).__name__


def _line_of(value: Any, fallback: int | None) -> int | None:
    return getattr(value, "line", fallback)
