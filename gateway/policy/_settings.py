"""The `policy` section of the gateway's settings file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gateway.config import Section

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Where the policy lives and whether to reload it when its files change.

    Keys: ``policy.directory`` (required, must exist), ``policy.watch`` (default true):
    reload when a file in the directory changes (SIGHUP always does), and
    ``policy.shadow`` (optional, must exist): a candidate policy evaluated beside the
    live one on every inference request and never enforced; ``policy.approvers_sha256``
    (optional): the pinned digest of the approver set (see `approver_set_digest`).
    """

    directory: Path
    watch: bool = True
    shadow: Path | None = None
    approvers_sha256: str | None = None

    @classmethod
    def from_section(cls, section: Section) -> PolicySettings:
        """Parse the `policy` section; a bad value raises ConfigError naming file and key."""
        section.reject_unknown("directory", "watch", "shadow", "approvers_sha256")
        pin = section.string("approvers_sha256", None)
        if pin is not None and not _SHA256.fullmatch(pin):
            section.fail("approvers_sha256", "expected 64 lower-case hex digits (SHA-256)")
        shadow = section.path_value("shadow", None)
        if shadow is not None and not shadow.is_dir():
            section.fail("shadow", "expected a policy folder")
        return cls(
            directory=section.path_value("directory"),
            watch=section.boolean("watch", True),
            shadow=shadow,
            approvers_sha256=pin,
        )
