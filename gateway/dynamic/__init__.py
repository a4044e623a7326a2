"""The live control state: what operators change while gateways run, and the channel that
tells every worker and replica about it within a second."""

from gateway.dynamic.channel import (
    CHANNEL,
    Change,
    ChangeChannel,
    PostgresChannel,
    SQLiteChannel,
    announce,
    ensure_schema,
    open_channel,
)
from gateway.dynamic.live import Applied, LiveControl, ObjectRefused
from gateway.dynamic.store import ControlStore, ControlStoreError, StoredObject

__all__ = [
    "CHANNEL",
    "Applied",
    "Change",
    "ChangeChannel",
    "ControlStore",
    "ControlStoreError",
    "LiveControl",
    "ObjectRefused",
    "PostgresChannel",
    "SQLiteChannel",
    "StoredObject",
    "announce",
    "ensure_schema",
    "open_channel",
]
