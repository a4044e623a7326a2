"""Typed reading of YAML settings, with errors that name the file and the key.

Each sub-package parses its own section with a `Section`, so that a bad value is
reported as ``gateway.yaml:21: identity.issuers[0].audiences: expected a list of strings``.
The line is known when the data was read with `gateway.located_yaml` (its mappings
remember the line of each key); for plain mappings it is left out.

Errors:

    ConfigError            a setting is missing, of the wrong type or invalid
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or invalid; `file`, `key` and `line` (1-based, None when
    unknown) say which one."""

    def __init__(self, file: str, key: str, message: str, line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.message = message
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class Section:
    """A mapping read from a settings file, that knows where it came from.

    `file` is the settings file's name, `path` the dotted key of this section
    (`""` for the top level), `base` the folder that relative paths resolve against.
    """

    def __init__(
        self,
        data: Any,
        file: str,
        path: str = "",
        base: Path | None = None,
        line: int | None = None,
    ) -> None:
        line = getattr(data, "line", line)
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(file, path, "expected a mapping", line)
        self.data: Mapping[str, Any] = data
        self.file = file
        self.path = path
        self.base = base if base is not None else Path(".")
        self.own_line = line

    def key(self, name: str) -> str:
        """The dotted path of `name` within this section."""
        return f"{self.path}.{name}" if self.path else name

    def line(self, name: str | None = None) -> int | None:
        """The line of key `name` (its first dotted part), else of this section, if known."""
        if name is not None:
            found = getattr(self.data, "key_lines", {}).get(name.split(".")[0].split("[")[0])
            if found is not None:
                return int(found)
        return self.own_line

    def error(self, name: str, message: str) -> ConfigError:
        """A ConfigError for key `name` of this section, with its line (to raise ... from)."""
        return ConfigError(self.file, self.key(name), message, self.line(name))

    def fail(self, name: str, message: str) -> NoReturn:
        """Raise a ConfigError for key `name` of this section."""
        raise self.error(name, message)

    def reject_unknown(self, *allowed: str) -> None:
        """Fail on keys not in `allowed`: a typo must not silently mean a default."""
        for name in self.data:
            if name not in allowed:
                self.fail(str(name), f"unknown key (expected one of: {', '.join(allowed)})")

    def has(self, name: str) -> bool:
        return name in self.data and self.data[name] is not None

    def section(self, name: str, *, required: bool = False) -> Section:
        if required and not self.has(name):
            self.fail(name, "is required")
        return Section(self.data.get(name), self.file, self.key(name), self.base, self.line(name))

    def sections(self, name: str, *, required: bool = False) -> list[Section]:
        """A list of mappings, each a Section keyed `name[i]`."""
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return []
        if not isinstance(value, list):
            self.fail(name, "expected a list")
        lines = getattr(value, "item_lines", None) or [self.line(name)] * len(value)
        return [
            Section(item, self.file, f"{self.key(name)}[{i}]", self.base, lines[i])
            for i, item in enumerate(value)
        ]

    def _get(self, name: str, kind: type[T] | tuple[type, ...], label: str, default: Any) -> Any:
        if not self.has(name):
            if default is _REQUIRED:
                self.fail(name, "is required")
            return default
        value = self.data[name]
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            self.fail(name, f"expected {label}, got a boolean")
        if not isinstance(value, kind):
            self.fail(name, f"expected {label}, got {type(value).__name__}")
        return value

    def string(self, name: str, default: Any = ...) -> Any:
        value = self._get(name, str, "a string", _REQUIRED if default is ... else default)
        if isinstance(value, str) and not value:
            self.fail(name, "must not be empty")
        return value

    def integer(self, name: str, default: Any = ..., *, minimum: int | None = None) -> Any:
        value = self._get(name, int, "an integer", _REQUIRED if default is ... else default)
        if isinstance(value, int) and minimum is not None and value < minimum:
            self.fail(name, f"must be at least {minimum}")
        return value

    def number(self, name: str, default: Any = ..., *, minimum: float | None = None) -> Any:
        value = self._get(name, (int, float), "a number", _REQUIRED if default is ... else default)
        if isinstance(value, int | float) and minimum is not None and value < minimum:
            self.fail(name, f"must be at least {minimum}")
        return float(value) if value is not None else None

    def boolean(self, name: str, default: Any = ...) -> Any:
        return self._get(name, bool, "true or false", _REQUIRED if default is ... else default)

    def choice(self, name: str, options: tuple[str, ...], default: Any = ...) -> Any:
        value = self.string(name, default)
        if value is not None and value not in options:
            self.fail(name, f"expected one of: {', '.join(options)}")
        return value

    def strings(self, name: str, default: Any = ...) -> Any:
        """A list of non-empty strings (a single string is not accepted)."""
        value = self._get(name, list, "a list of strings", _REQUIRED if default is ... else default)
        if isinstance(value, list):
            for item in value:
                if not isinstance(item, str) or not item:
                    self.fail(name, "expected a list of non-empty strings")
            return list(value)
        return value

    def path_value(self, name: str, default: Any = ..., *, must_exist: bool = True) -> Any:
        """A file path, resolved against `base`; it must exist unless told otherwise."""
        value = self.string(name, default)
        if value is None:
            return None
        path = self.resolve(value)
        if must_exist and not path.exists():
            self.fail(name, f"file not found: {value}")
        return path

    def resolve(self, value: str) -> Path:
        """`value` as an absolute path without `.`, `..` or symbolic links, relative
        ones taken from `base`: resolved once here, so logs and errors show the real file."""
        path = Path(value)
        return (path if path.is_absolute() else self.base / path).resolve()


_REQUIRED: Any = object()


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def key_line(document: Any, key: str) -> int | None:
    """The line of dotted `key` (``identity.certificate_authorities[0].crls[1]``) in a
    document read with `gateway.located_yaml`: of the deepest part that exists."""
    node, line = document, getattr(document, "line", None)
    for name, index in _KEY_PART.findall(key):
        if name:
            lines = getattr(node, "key_lines", None)
            if lines is None or name not in lines:
                break
            node, line = node[name], lines[name]
        else:
            items = getattr(node, "item_lines", None)
            if items is None or int(index) >= len(items):
                break
            node, line = node[int(index)], items[int(index)]
    return line


def with_line(error: ConfigError, document: Any) -> ConfigError:
    """`error` with the line of its key in `document` when it has none yet."""
    if error.line is not None or not error.key:
        return error
    located = ConfigError(error.file, error.key, error.message, key_line(document, error.key))
    located.__cause__ = error.__cause__
    return located
