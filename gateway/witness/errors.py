"""Exceptions of the witness package.

    WitnessError              base class of everything below
     +-- ProtocolError        a request or response is not what c2sp.org/tlog-witness says
     +-- WitnessStateError    the witness's own state file cannot be read or written
     +-- SubmissionFailed     a witness did not cosign a checkpoint (`status`, `size`)

Configuration errors are `gateway.config.ConfigError`, as everywhere else.
"""

from __future__ import annotations

__all__ = ["ProtocolError", "SubmissionFailed", "WitnessError", "WitnessStateError"]


class WitnessError(Exception):
    """Base class of witness errors; `reason` is a one-sentence explanation."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ProtocolError(WitnessError):
    """A request or response breaks the tlog-witness wire format."""


class WitnessStateError(WitnessError):
    """The witness's state file failed."""


class SubmissionFailed(WitnessError):
    """A witness did not cosign: `status` is its HTTP status (None: no answer), `size`
    the size it reported with a 409, `conflict` True when it holds a different
    checkpoint of the same size (a fork, or a log that lost its state)."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        size: int | None = None,
        conflict: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.size = size
        self.conflict = conflict
