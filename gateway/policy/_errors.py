"""Errors of the policy package.

    PolicyError              base of everything this package raises
     +-- PolicyLoadError     a policy (or a policy test file) does not validate;
                             `file`, `key`, `line` and `message` say where and why
     +-- GrantApprovalError  a grant lacks the approvals it needs; `result` holds the
                             `ApprovalResult` (which signatures count, and why not)
     +-- PolicyEditError     a policy file cannot be changed as asked (`gateway grant
                             sign`); `file` and `message` say which and why

Denials are not errors: `decide()` returns a `Decision`, and turns any exception
raised while evaluating into a denial with reason ``policy.error``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._approvals import ApprovalResult


class PolicyError(Exception):
    """Base class of the policy package's errors."""


class PolicyLoadError(PolicyError):
    """A policy file is invalid: `file`, dotted `key` path and 1-based `line` name the spot."""

    def __init__(self, file: str, key: str, line: int | None, message: str) -> None:
        self.file = file
        self.key = key
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class GrantApprovalError(PolicyError):
    """A grant does not have `min_approvers` counting signatures; see `result`."""

    def __init__(self, result: ApprovalResult) -> None:
        self.result = result
        super().__init__(result.describe())


class PolicyEditError(PolicyError):
    """A policy file cannot be edited as asked; `file` names it, `message` says why."""

    def __init__(self, file: str, message: str) -> None:
        self.file = file
        self.message = message
        super().__init__(f"{file}: {message}")
