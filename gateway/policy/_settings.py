"""The `policy` section of the gateway's settings file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.config import Section


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Where the policy lives and whether to reload it when its files change.

    Keys: ``policy.directory`` (required, must exist), ``policy.watch`` (default true):
    reload when a file in the directory changes (SIGHUP always does), and
    ``policy.shadow`` (optional, must exist): a candidate policy evaluated beside the
    live one on every inference request and never enforced.
    """

    directory: Path
    watch: bool = True
    shadow: Path | None = None

    @classmethod
    def from_section(cls, section: Section) -> PolicySettings:
        """Parse the `policy` section; a bad value raises ConfigError naming file and key."""
        section.reject_unknown("directory", "watch", "shadow")
        shadow = section.path_value("shadow", None)
        if shadow is not None and not shadow.is_dir():
            section.fail("shadow", "expected a policy folder")
        return cls(
            directory=section.path_value("directory"),
            watch=section.boolean("watch", True),
            shadow=shadow,
        )
