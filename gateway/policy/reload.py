"""Hot reload: swap in a newly loaded policy on SIGHUP or when a policy file changes.

Unlike the rest of the package this module does I/O. Loading runs in a worker thread
so the event loop keeps serving; the new `Policy` replaces `PolicyHolder.current` in
one assignment, so a request that already read `current` keeps the policy it started
with. A policy that does not load never replaces the running one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from ._approvals import VerifiedSignatures
from ._errors import PolicyLoadError
from ._loader import load_policy_pausing
from ._pin import check_approver_pin
from ._policy import Policy


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one reload did. `trigger` is "sighup", "file_change" or "manual"; `changed`
    lists the policy files whose content changed since the last load, as (path relative
    to the directory, SHA-256 of the new content or "" for a file removed)."""

    ok: bool
    old_version: str
    new_version: str | None
    error: str | None
    trigger: str
    changed: tuple[tuple[str, str], ...] = ()


class PolicyHolder:
    """The policy in force. Read `current` once per request and keep using that object.

    `static` is the policy the files say; `current` is it with what was added at run time
    (the admin API), as built by `overlay` (identity when nothing was).
    """

    __slots__ = ("current", "last_error", "overlay", "static")

    def __init__(self, policy: Policy) -> None:
        self.static: Policy = policy
        self.current: Policy = policy
        self.last_error: str | None = None
        self.overlay: Callable[[Policy], Policy] | None = None

    def set_static(self, policy: Policy) -> None:
        """Swap in a newly loaded file policy (with the run-time objects on top)."""
        self.static = policy
        self.current = self.overlay(policy) if self.overlay is not None else policy

    def set_overlay(self, overlay: Callable[[Policy], Policy] | None) -> None:
        """Use `overlay` to add run-time objects to the file policy, and apply it now."""
        self.overlay = overlay
        self.set_static(self.static)


class _Baton:
    """Called often by the loading thread; every `slice_ns` it hands the interpreter to
    the event loop and waits until the loop has run one iteration.

    Without this, a CPU-bound loading thread makes the loop wait for the interpreter's
    switch interval (5 ms) every time a timer or socket wakes it.
    """

    __slots__ = ("event", "last", "loop", "slice_ns")

    def __init__(self, loop: asyncio.AbstractEventLoop, slice_ns: int = 1_000_000) -> None:
        self.loop = loop
        self.event = threading.Event()
        self.slice_ns = slice_ns
        self.last = time.perf_counter_ns()

    def __call__(self) -> None:
        if time.perf_counter_ns() - self.last < self.slice_ns:
            return
        self.event.clear()
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the loop is closing: just finish the load
            self.slice_ns = 1 << 62
            return
        self.event.wait(timeout=1.0)
        self.last = time.perf_counter_ns()


def policy_file_hashes(directory: Path) -> dict[str, str]:
    """SHA-256 of every policy file under `directory`, by path relative to it."""
    hashes: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if relative.parts[0] == "tests":
            continue  # policy test cases, not policy content
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            with contextlib.suppress(OSError):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                hashes[str(relative)] = digest
    return hashes


def _is_policy_file(change: watchfiles.Change, path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


class PolicyWatcher:
    """Reloads the policy in `directory` into `holder` and reports each outcome.

    `on_reload` is called on the event loop with every `ReloadOutcome`, successful or
    not. With `watch_files`, changes to YAML files in the directory trigger a reload
    after `debounce_ms` of quiet. With `signals` (the default) SIGHUP triggers one too;
    a process has one SIGHUP handler, so a second watcher leaves it to the first.
    """

    def __init__(
        self,
        directory: str | Path,
        holder: PolicyHolder,
        on_reload: Callable[[ReloadOutcome], None],
        *,
        watch_files: bool = True,
        debounce_ms: int = 300,
        signals: bool = True,
        approvers_sha256: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.approvers_sha256 = approvers_sha256
        self.signals = signals
        self.holder = holder
        self.on_reload = on_reload
        self.watch_files = watch_files
        self.debounce_ms = debounce_ms
        self._lock = asyncio.Lock()
        self._stop_event: asyncio.Event | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[ReloadOutcome]] = set()
        self._signal_installed = False
        self._hashes = policy_file_hashes(self.directory)
        self._verified = VerifiedSignatures()  # grant signatures verified by earlier loads

    async def start(self) -> None:
        """Install the SIGHUP handler (where the platform allows) and start watching files."""
        loop = asyncio.get_running_loop()
        sighup = getattr(signal, "SIGHUP", None) if self.signals else None
        if sighup is not None:
            # Not possible off the main thread or on platforms without signals.
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sighup, self._schedule, "sighup")
                self._signal_installed = True
        if self.watch_files:
            self._stop_event = asyncio.Event()
            self._watch_task = asyncio.create_task(self._watch(self._stop_event))

    async def stop(self) -> None:
        """Remove the signal handler, stop watching and wait for reloads in progress."""
        if self._signal_installed:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal_installed = False
        if self._stop_event is not None:
            self._stop_event.set()
        if self._watch_task is not None:
            try:
                await asyncio.wait_for(self._watch_task, timeout=5)
            except TimeoutError:
                self._watch_task.cancel()
            self._watch_task = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def reload(self, trigger: str = "manual") -> ReloadOutcome:
        """Load the directory again; swap it in if valid, else keep the old policy."""
        async with self._lock:
            old_version = self.holder.current.version
            try:
                baton = _Baton(asyncio.get_running_loop())
                policy = await asyncio.to_thread(
                    load_policy_pausing, self.directory, baton, self._verified
                )
                check_approver_pin(policy, self.approvers_sha256, str(self.directory))
            except PolicyLoadError as exc:
                outcome = self._failed(old_version, str(exc), trigger)
            except Exception as exc:  # noqa: BLE001 - a failed reload must keep the old policy
                outcome = self._failed(old_version, f"unexpected {type(exc).__name__}", trigger)
            else:
                self.holder.set_static(policy)
                self.holder.last_error = None
                hashes = await asyncio.to_thread(policy_file_hashes, self.directory)
                changed = tuple(
                    (name, hashes.get(name, ""))
                    for name in sorted(set(hashes) | set(self._hashes))
                    if hashes.get(name) != self._hashes.get(name)
                )
                self._hashes = hashes
                outcome = ReloadOutcome(
                    True, old_version, self.holder.current.version, None, trigger, changed
                )
        self._report(outcome)
        return outcome

    def _failed(self, old_version: str, error: str, trigger: str) -> ReloadOutcome:
        self.holder.last_error = error
        return ReloadOutcome(False, old_version, None, error, trigger)

    def _report(self, outcome: ReloadOutcome) -> None:
        try:
            self.on_reload(outcome)
        except Exception:  # the callback's failure must not stop reloading
            logging.getLogger(__name__).exception("policy reload callback failed")

    def _schedule(self, trigger: str) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(trigger))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _watch(self, stop_event: asyncio.Event) -> None:
        async for _changes in watchfiles.awatch(
            self.directory,
            watch_filter=_is_policy_file,
            debounce=self.debounce_ms,
            step=50,
            stop_event=stop_event,
        ):
            await self.reload("file_change")
