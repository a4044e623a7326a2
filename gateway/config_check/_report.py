"""What `gateway config check` finds: `Finding`s and the `Report` that holds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "unreachable", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: `severity` error (invalid), unreachable (valid, but the audit store
    cannot be used now) or warning (valid, but probably not what was meant)."""

    severity: Severity
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass
class Report:
    """What `check_config` found, and one line of what it checked per part."""

    findings: list[Finding]
    checked: list[tuple[str, str]]

    @property
    def status(self) -> int:
        severities = {finding.severity for finding in self.findings}
        if "error" in severities:
            return 2
        return 1 if "unreachable" in severities else 0
