"""Audit stores side by side behind one protocol: SQLite (embedded) and PostgreSQL (fleet).

A store is named by a location: a file path or `sqlite:///path` for SQLite, a
`postgresql://...` URL (libpq syntax; passwords from PGPASSWORD or a passfile, never
the settings file) for PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from gateway.audit.stores.base import (
    NODE_LEVEL_STRIDE,
    SCHEMA_VERSION,
    AppendedBatch,
    AuditStore,
    BatchBuilder,
    CheckpointSigner,
    SchemaError,
    StoredCheckpoint,
    StoredCosignature,
    StoredRecord,
    StoreError,
    TreeHead,
)
from gateway.audit.stores.sqlite import SQLiteAuditStore

__all__ = [
    "NODE_LEVEL_STRIDE",
    "SCHEMA_VERSION",
    "AppendedBatch",
    "AuditStore",
    "BatchBuilder",
    "CheckpointSigner",
    "SQLiteAuditStore",
    "SchemaError",
    "StoreError",
    "StoreLocation",
    "StoredCheckpoint",
    "StoredCosignature",
    "StoredRecord",
    "TreeHead",
    "describe_location",
    "open_store",
    "parse_location",
]

StoreLocation = Path | str
"""A SQLite file path, or a PostgreSQL URL."""

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def parse_location(text: str, base: Path | None = None) -> StoreLocation:
    """A store location from settings or the command line; raises ValueError if unknown.

    `sqlite:///var/audit.db` is the relative path `var/audit.db` and
    `sqlite:////var/lib/audit.db` an absolute one (SQLAlchemy's convention); a plain path
    is a SQLite file too. Relative paths resolve against `base` (the settings file's
    folder) or the working directory.
    """
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in _POSTGRES_SCHEMES:
        return text
    if scheme == "sqlite":
        if not text.startswith("sqlite:///") or len(text) == len("sqlite:///"):
            raise ValueError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
        path = Path(text[len("sqlite:///") :])
    elif scheme:
        raise ValueError(
            f"unknown store scheme {scheme!r} (expected a file path, sqlite:/// or postgresql://)"
        )
    else:
        path = Path(text)
    if not path.is_absolute():
        path = (base or Path.cwd()) / path
    return path.resolve()


def describe_location(location: StoreLocation) -> str:
    """The location as it may appear in messages and logs: never a password."""
    if isinstance(location, Path):
        return str(location)
    parts = urlsplit(location)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


def open_store(
    location: StoreLocation, *, readonly: bool = False, write_timeout: float = 5.0
) -> AuditStore:
    """Open the store at `location`; `write_timeout` bounds waits for another writer's lock."""
    if isinstance(location, Path):
        return SQLiteAuditStore(
            location, readonly=readonly, busy_timeout_ms=max(1, int(write_timeout * 1000))
        )
    from gateway.audit.stores.postgres import PostgresAuditStore

    return PostgresAuditStore(location, readonly=readonly, write_timeout=write_timeout)
