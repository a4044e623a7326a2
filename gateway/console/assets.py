"""The console's script and style files, read once from the package into memory.

Only the files shipped in `static/` exist: a name is looked up, never joined to a path,
so no request can reach another file.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["Assets"]

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}


class Assets:
    """The static files by name, with their media types."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        for entry in (files("gateway.console") / "static").iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if entry.is_file() and suffix in _MEDIA_TYPES:
                self._files[entry.name] = (entry.read_bytes(), _MEDIA_TYPES[suffix])

    def get(self, name: str) -> tuple[bytes, str] | None:
        """The file's bytes and media type, or None if the console has no such file."""
        return self._files.get(name)

    def names(self) -> list[str]:
        return sorted(self._files)
