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

__all__ = [
    "CHANNEL",
    "Change",
    "ChangeChannel",
    "PostgresChannel",
    "SQLiteChannel",
    "announce",
    "ensure_schema",
    "open_channel",
]
