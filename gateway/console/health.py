"""Is the log being signed? Warnings for a stale newest checkpoint and a growing tail.

A healthy log signs a checkpoint once `checkpoint_every_records` records or
`checkpoint_every_seconds` seconds have passed since the newest one; each process checks
after its commits and at least every `checkpoint_every_seconds`. So while records wait
unsigned, the newest checkpoint is at most about twice the interval old, and the
unsigned tail exceeds the record threshold by at most one batch. Beyond either, with a
margin, signing has stopped or fallen behind, and the console says so.

A quiet log signs nothing new (there is nothing to sign): an old checkpoint with no
records after it is not a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.audit import AuditSettings, StoredCheckpoint
from gateway.console.templates import describe_age

__all__ = ["AGE_MARGIN_SECONDS", "Health", "checkpoint_health"]

AGE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Health:
    """The signing state: head size, newest checkpoint, unsigned records, warnings."""

    tree_size: int
    checkpoint_size: int
    age_seconds: float | None
    unsigned: int
    warnings: tuple[str, ...]


def checkpoint_health(
    tree_size: int, newest: StoredCheckpoint | None, now: float, settings: AuditSettings
) -> Health:
    """The signing state at wall-clock time `now` (epoch seconds; checkpoints carry the
    wall-clock time they were signed at)."""
    warnings: list[str] = []
    signed = newest.tree_size if newest is not None else 0
    unsigned = max(0, tree_size - signed)
    age = None if newest is None else max(0.0, now - newest.created_us / 1_000_000)
    every = settings.checkpoint_every_seconds
    if newest is None:
        if tree_size:
            warnings.append(
                f"No checkpoint has been signed yet: none of the {tree_size} records is "
                "covered by a signature."
            )
    elif unsigned and age is not None and age > 2 * every + AGE_MARGIN_SECONDS:
        warnings.append(
            f"The newest checkpoint is {describe_age(age)} old while {unsigned} records wait "
            f"unsigned; a checkpoint is due every {every:g} s. Signing may have stopped."
        )
    limit = settings.checkpoint_every_records + settings.batch_max
    if unsigned > limit:
        warnings.append(
            f"The unsigned tail is growing: {unsigned} records follow the newest checkpoint, "
            f"more than the {limit} a healthy log leaves unsigned "
            f"(checkpoint_every_records {settings.checkpoint_every_records} plus one batch "
            f"of {settings.batch_max})."
        )
    return Health(tree_size, signed, age, unsigned, tuple(warnings))
