"""Typed reading of YAML settings, with errors that name the file and the key.

Each sub-package parses its own section with a `Section`, so that a bad value is
reported as ``gateway.yaml: identity.issuers[0].audiences: expected a list of strings``.

Errors:

    ConfigError            a setting is missing, of the wrong type or invalid
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")


class ConfigError(Exception):
    """A setting is missing or invalid; `file` and `key` say which one."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")


class Section:
    """A mapping read from a settings file, that knows where it came from.

    `file` is the settings file's name, `path` the dotted key of this section
    (`""` for the top level), `base` the folder that relative paths resolve against.
    """

    def __init__(self, data: Any, file: str, path: str = "", base: Path | None = None) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(file, path, "expected a mapping")
        self.data: Mapping[str, Any] = data
        self.file = file
        self.path = path
        self.base = base if base is not None else Path(".")

    def key(self, name: str) -> str:
        """The dotted path of `name` within this section."""
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> NoReturn:
        """Raise a ConfigError for key `name` of this section."""
        raise ConfigError(self.file, self.key(name), message)

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
        return Section(self.data.get(name), self.file, self.key(name), self.base)

    def sections(self, name: str, *, required: bool = False) -> list[Section]:
        """A list of mappings, each a Section keyed `name[i]`."""
        value = self.data.get(name)
        if value is None:
            if required:
                self.fail(name, "is required")
            return []
        if not isinstance(value, list):
            self.fail(name, "expected a list")
        return [
            Section(item, self.file, f"{self.key(name)}[{i}]", self.base)
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
