"""The run-time part of the policy in one process: objects from the shared store, kept in
step with every other process through the change channel, laid over the file policy.

`LiveControl` loads the objects at start, validates each against the file policy in
force (as the same object in a policy file would be), and installs an overlay in the
`PolicyHolder`, so `holder.current` is the file policy plus suspensions and grants added
at run time, minus grants revoked early. A change made here is stored (and
announced) first, then applied here at once; other processes apply it when the channel
tells them. Parsed objects are kept per file-policy version, so a change costs parsing
that one object and rebuilding two indexes, not a policy load.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.dynamic.channel import Change, ChangeChannel
from gateway.dynamic.store import ControlStore, ObjectKind, StoredObject, digest_of
from gateway.policy import (
    DynamicObjects,
    Grant,
    Policy,
    PolicyHolder,
    PolicyLoadError,
    Suspension,
    parse_grant,
    parse_suspension,
)
from gateway.policy.reload import policy_file_hashes

__all__ = ["LiveControl", "ObjectRefused", "Parsed"]

Parsed = Suspension | Grant | str  # a revocation is the revoked grant's id


class ObjectRefused(Exception):
    """An object the admin API refuses: invalid (`field` names where), or a conflict."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


@dataclass(frozen=True, slots=True)
class Applied:
    """One change made through this process: the stored object, what it means, and the
    effective policy version before and after."""

    stored: StoredObject
    parsed: Parsed
    old_version: str
    new_version: str


class LiveControl:
    """Run-time objects for `holder`, stored in `store`, announced on `channel`."""

    def __init__(
        self,
        store: ControlStore,
        channel: ChangeChannel,
        holder: PolicyHolder,
        *,
        logger: Any,
        clock: Callable[[], float] = time.time,
        policy_directory: Path | None = None,
    ) -> None:
        self.store = store
        self.policy_directory = policy_directory
        self.channel = channel
        self.holder = holder
        self.logger = logger
        self.clock = clock
        self._objects: dict[str, StoredObject] = {}
        self._parsed: dict[str, Parsed] = {}
        self._parsed_for = ""
        self._file_grant_ids: frozenset[str] = frozenset()
        self._dynamic = DynamicObjects()
        self._refreshing: asyncio.Task[None] | None = None
        self._again = False
        # Changes made here, counted: a refresh that loaded before one must not undo it.
        self._local_changes = 0

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._objects = {o.id: o for o in await asyncio.to_thread(self.store.load)}
        self.holder.set_overlay(self._overlay)
        await self.channel.start(self._heard)

    async def stop(self) -> None:
        await self.channel.stop()
        if self._refreshing is not None:
            await asyncio.gather(self._refreshing, return_exceptions=True)
        await asyncio.to_thread(self.store.close)

    # -- the overlay --------------------------------------------------------------------

    def _overlay(self, static: Policy) -> Policy:
        """The effective policy for the file policy `static`. Objects are parsed once per
        file-policy version; after that each change touches only its own object."""
        if self._parsed_for != static.version:
            self._parsed_for = static.version
            self._file_grant_ids = frozenset(grant.id for grant in static.grants)
            self._dynamic = DynamicObjects()
            self._parsed = {}
            for item in self._objects.values():
                self._admit(static, item)
        return self._dynamic.apply(static)

    def _admit(self, static: Policy, item: StoredObject) -> None:
        try:
            parsed = _parse(static, item, self._file_grant_ids)
        except (PolicyLoadError, ValueError) as exc:
            # Valid when it was added, no longer under the file policy (a model removed,
            # say): it does not apply, and the log line says why.
            self.logger.error("control.object_ignored", id=item.id, error=str(exc))
            return
        self._parsed[item.id] = parsed
        self._dynamic.add(item.id, item.digest, parsed)

    def _forget(self, object_id: str) -> None:
        self._objects.pop(object_id, None)
        self._parsed.pop(object_id, None)
        self._dynamic.discard(object_id)

    def overlay_onto(self, policy: Policy) -> Policy:
        """`policy` (another file policy: shadow mode's candidate) with the run-time
        objects in force here, so that it is compared under the same fleet state."""
        return self._dynamic.apply(policy)

    @property
    def objects_version(self) -> str:
        """SHA-256 over the run-time objects in force ("" when there are none)."""
        return self._dynamic.version

    def file_hashes(self) -> dict[str, str]:
        """SHA-256 of each policy file, by path in the policy directory."""
        if self.policy_directory is None:
            return {}
        return policy_file_hashes(self.policy_directory)

    def objects(self) -> list[tuple[StoredObject, Parsed | None]]:
        """Every object in force here, with what it means under the current file policy."""
        return [(item, self._parsed.get(item.id)) for item in self._objects.values()]

    # -- changes from elsewhere ---------------------------------------------------------

    def _heard(self, change: Change) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._again = True
            return
        self._refreshing = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while True:
            self._again = False
            changes = self._local_changes
            try:
                loaded = await asyncio.to_thread(self.store.load)
            except Exception as exc:  # noqa: BLE001 - keep serving what is in force; retry on the next change
                self.logger.error("control.refresh_failed", error=type(exc).__name__)
                return
            if changes != self._local_changes:
                continue  # a change made here meanwhile: the snapshot may predate it
            fresh = {o.id: o for o in loaded}
            changed = False
            for object_id in [i for i in self._objects if i not in fresh]:
                self._forget(object_id)
                changed = True
            for object_id, item in fresh.items():
                old = self._objects.get(object_id)
                if old is None or old.digest != item.digest:
                    self._forget(object_id)
                    self._objects[object_id] = item
                    self._admit(self.holder.static, item)
                    changed = True
            if changed:
                self.holder.set_static(self.holder.static)
            if not self._again:
                return

    # -- changes made here --------------------------------------------------------------

    async def add_suspension(self, body: dict[str, Any], actor: str) -> Applied:
        object_id = f"suspension:{secrets.token_hex(6)}"
        return await self._add("suspension", object_id, body, actor)

    async def add_grant(self, body: dict[str, Any], actor: str) -> Applied:
        grant_id = body.get("id")
        if not isinstance(grant_id, str) or not grant_id:
            raise ObjectRefused("a grant needs an id", field="id")
        return await self._add("grant", f"grant:{grant_id}", body, actor)

    async def lift_suspension(self, object_id: str, actor: str) -> Applied | None:
        """Lift a suspension added at run time; None if there is no such suspension (a
        grant, a revocation or a file suspension is never lifted here)."""
        old_version = self.holder.current.version
        removed = await asyncio.to_thread(self.store.remove, object_id, "suspension")
        if removed is None:
            return None
        parsed = self._parsed.get(object_id)
        self._local_changes += 1
        self._forget(object_id)
        self.holder.set_static(self.holder.static)
        self.logger.info("control.removed", id=object_id, actor=actor)
        return Applied(removed, parsed or object_id, old_version, self.holder.current.version)

    async def revoke_grant(self, grant_id: str, actor: str) -> Applied | None:
        """Close access under grant `grant_id` now, for good: store its revocation (which
        also withdraws it if it was added at run time). A revoked id cannot be posted
        again; re-opening access takes a grant with a new id and new approvals. None if
        no grant of that id is in force."""
        grant_object_id = f"grant:{grant_id}"
        if grant_object_id not in self._objects and not any(
            g.id == grant_id for g in self.holder.static.grants
        ):
            return None
        item = self._new("revocation", f"revocation:{grant_id}", {"grant": grant_id}, actor)
        old_version = self.holder.current.version
        try:
            withdrawn = await asyncio.to_thread(self.store.revoke, item, grant_object_id)
        except KeyError:
            raise ObjectRefused(f"grant {grant_id} is revoked already", status=409) from None
        if withdrawn is not None:
            self._forget(grant_object_id)
        self._install(item, grant_id)
        self.logger.info("control.revoked", id=grant_id, actor=actor)
        return Applied(item, grant_id, old_version, self.holder.current.version)

    async def _add(
        self, kind: ObjectKind, object_id: str, body: dict[str, Any], actor: str
    ) -> Applied:
        item = self._new(kind, object_id, body, actor)
        try:
            parsed = _parse(self.holder.static, item, self._file_grant_ids)
        except PolicyLoadError as exc:
            raise ObjectRefused(exc.message, field=exc.key or None) from exc
        except ValueError as exc:
            raise ObjectRefused(str(exc)) from exc
        old_version = self.holder.current.version
        revocation = f"revocation:{object_id.removeprefix('grant:')}" if kind == "grant" else None
        blocked = await asyncio.to_thread(self.store.add, item, unless=revocation)
        if blocked == object_id:
            raise ObjectRefused(f"{object_id} exists already", field="id", status=409)
        if blocked is not None:
            raise ObjectRefused(
                f"grant {object_id.removeprefix('grant:')} was revoked; re-opening access"
                " takes a grant with a new id, signed again by its approvers",
                field="id",
                status=409,
            )
        self._install(item, parsed)
        self.logger.info("control.added", id=object_id, actor=actor)
        return Applied(item, parsed, old_version, self.holder.current.version)

    def _new(
        self, kind: ObjectKind, object_id: str, body: dict[str, Any], actor: str
    ) -> StoredObject:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        created_us = int(self.clock() * 1e6)
        return StoredObject(object_id, kind, text, digest_of(text), created_us, actor)

    def _install(self, item: StoredObject, parsed: Parsed) -> None:
        self._local_changes += 1
        self._objects[item.id] = item
        self._parsed[item.id] = parsed
        self._dynamic.add(item.id, item.digest, parsed)
        self.holder.set_static(self.holder.static)


def _parse(static: Policy, item: StoredObject, file_grant_ids: frozenset[str]) -> Parsed:
    where = f"control object {item.id}"
    if item.kind == "suspension":
        return parse_suspension(static, item.body, where, item.id)
    if item.kind == "grant":
        return parse_grant(static, item.body, where, file_grant_ids)
    if item.kind == "revocation":
        grant_id = json.loads(item.body).get("grant")
        if not isinstance(grant_id, str):
            raise ValueError("a revocation names a grant")
        return grant_id
    raise ValueError(f"unknown kind {item.kind!r}")
