"""Exceptions raised by the audit log.

    AuditError                 base class of everything below
     +-- AuditUnavailable      the log cannot durably record now; callers must deny (503)
     +-- RecordError           a record or query is not valid input (a programming error)
     +-- VerificationError     something failed cryptographic or structural verification
          +-- ProofError       an inclusion or consistency proof does not verify
          +-- NoteError        a signed note, checkpoint or key is malformed or badly signed
          +-- IntegrityError   a stored log disagrees with itself (`index` / `tree_size`)

Every exception carries its cause as data in `reason`; messages never contain record
contents, key material or digests.
"""

from __future__ import annotations


class AuditError(Exception):
    """Base class of audit errors; `reason` is a one-sentence explanation."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class AuditUnavailable(AuditError):
    """The log cannot durably record right now; the request must be refused."""


class RecordError(AuditError, ValueError):
    """A record, filter or value cannot be canonicalised or stored as given."""


class VerificationError(AuditError):
    """Something failed verification."""


class ProofError(VerificationError):
    """An inclusion or consistency proof does not verify."""


class NoteError(VerificationError):
    """A signed note, checkpoint or key string is malformed or its signature fails."""


class IntegrityError(VerificationError):
    """The stored log is inconsistent; `index` or `tree_size` says where."""

    def __init__(self, reason: str, *, index: int | None = None, tree_size: int | None = None):
        self.index = index
        self.tree_size = tree_size
        if index is not None:
            message = f"record {index}: {reason}"
        elif tree_size is not None:
            message = f"checkpoint at size {tree_size}: {reason}"
        else:
            message = reason
        super().__init__(reason)
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])
