"""Errors of the policy package.

    PolicyError              base of everything this package raises
     +-- PolicyLoadError     a policy (or a policy test file) does not validate;
                             `file`, `key`, `line` and `message` say where and why

Denials are not errors: `decide()` returns a `Decision`, and turns any exception
raised while evaluating into a denial with reason ``policy.error``.
"""

from __future__ import annotations


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
