"""The `policy` section of the gateway's settings file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config import Section


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Where the policy lives and whether to reload it when its files change.

    Keys: ``policy.directory`` (required, must exist) and ``policy.watch``
    (default true): reload when a file in the directory changes (SIGHUP always does).
    """

    directory: Path
    watch: bool = True

    @classmethod
    def from_section(cls, section: Section) -> PolicySettings:
        """Parse the `policy` section; a bad value raises ConfigError naming file and key."""
        section.reject_unknown("directory", "watch")
        return cls(
            directory=section.path_value("directory"),
            watch=section.boolean("watch", True),
        )
