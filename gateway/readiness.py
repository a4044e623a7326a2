"""Readiness of the upstreams: a bounded TCP probe of each, in the background.

`/readyz` reports what the last probe round found and never probes itself, so however
often it is asked, each gateway process opens one short connection per upstream per
`probe_interval_seconds`. Reachable means a TCP connection to the host and port of the
upstream's `base_url` opened within `probe_timeout_seconds`; it does not check TLS, the
credential or the model (a request that fails for those reasons still gets its 502).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.audit import AuditStatistics
from gateway.config import Section
from gateway.proxy import UpstreamSettings

__all__ = ["ReadinessSettings", "UpstreamProbe", "UpstreamStatus", "audit_lag"]

REQUIRE = ("any", "all", "none")


@dataclass(frozen=True, slots=True)
class ReadinessSettings:
    """When the gateway counts as ready, as far as its upstreams go.

    `upstreams`: `any` (ready while at least one upstream is reachable), `all`, or
    `none` (upstreams are not probed and do not count). `max_checkpoint_age_seconds`:
    not ready while records wait unsigned behind a checkpoint older than this (None:
    the audit lag is reported, never a reason to be unready).
    """

    upstreams: str = "any"
    probe_interval_seconds: float = 5.0
    probe_timeout_seconds: float = 2.0
    max_checkpoint_age_seconds: float | None = None

    @classmethod
    def from_section(cls, section: Section) -> ReadinessSettings:
        section.reject_unknown(
            "upstreams",
            "probe_interval_seconds",
            "probe_timeout_seconds",
            "max_checkpoint_age_seconds",
        )
        interval = section.number("probe_interval_seconds", 5.0, minimum=0.1)
        timeout = section.number("probe_timeout_seconds", 2.0, minimum=0.01)
        if timeout > interval:
            section.fail("probe_timeout_seconds", "must not exceed probe_interval_seconds")
        return cls(
            upstreams=section.choice("upstreams", REQUIRE, "any"),
            probe_interval_seconds=interval,
            probe_timeout_seconds=timeout,
            max_checkpoint_age_seconds=section.number(
                "max_checkpoint_age_seconds", None, minimum=1
            ),
        )


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """One upstream's last probe: `reachable`, when (monotonic seconds), and if not, why
    (`refused`, `timeout`, `unresolved`, `unreachable`: no address or message)."""

    reachable: bool
    checked: float
    error: str | None = None


class UpstreamProbe:
    """Probes every upstream once at `start()`, then every interval until `stop()`."""

    def __init__(
        self, upstreams: Sequence[UpstreamSettings], settings: ReadinessSettings, logger: Any
    ) -> None:
        self.settings = settings
        self._targets = {u.name: _address(u.base_url) for u in upstreams}
        self._status: dict[str, UpstreamStatus] = {}
        self._logger = logger
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the first round (at most one timeout long), then keep probing."""
        if self.settings.upstreams == "none":
            return
        await self._round()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def ready(self) -> bool:
        """Whether the upstreams satisfy `settings.upstreams`."""
        if self.settings.upstreams == "none":
            return True
        reachable = [self._status.get(name) for name in self._targets]
        found = [status is not None and status.reachable for status in reachable]
        return all(found) if self.settings.upstreams == "all" else any(found)

    def reachability(self) -> dict[str, bool]:
        """Whether each probed upstream's last probe connected (none before the first)."""
        return {name: status.reachable for name, status in self._status.items()}

    def report(self) -> dict[str, Any]:
        """A JSON-ready view for /readyz: per upstream name, reachable and since when."""
        now = time.monotonic()
        upstreams = {
            name: {
                "reachable": status.reachable,
                "error": status.error,
                "checked_seconds_ago": round(now - status.checked, 1),
            }
            for name, status in sorted(self._status.items())
        }
        return {"ready": self.ready, "require": self.settings.upstreams, "upstreams": upstreams}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.probe_interval_seconds)
            await self._round()

    async def _round(self) -> None:
        names = list(self._targets)
        results = await asyncio.gather(*(self._probe(self._targets[n]) for n in names))
        for name, error in zip(names, results, strict=True):
            previous = self._status.get(name)
            self._status[name] = UpstreamStatus(error is None, time.monotonic(), error)
            if previous is None or previous.reachable != (error is None):
                if error is None:
                    self._logger.info("upstream.reachable", upstream=name)
                else:
                    self._logger.warning("upstream.unreachable", upstream=name, error=error)

    async def _probe(self, address: tuple[str, int] | None) -> str | None:
        """None if a TCP connection opens in time, else a fixed error code."""
        if address is None:
            return "unreachable"
        host, port = address
        try:
            async with asyncio.timeout(self.settings.probe_timeout_seconds):
                _, writer = await asyncio.open_connection(host, port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        except TimeoutError:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        except socket.gaierror:
            return "unresolved"
        except OSError:
            return "unreachable"
        return None


def _address(base_url: str) -> tuple[str, int] | None:
    parts = urlsplit(base_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port out of range: nothing can be reached there
        return None
    return (parts.hostname, port) if parts.hostname else None


def audit_lag(statistics: AuditStatistics, now: float, bound: float | None) -> dict[str, Any]:
    """The audit log's unsigned tail as this process last saw it, for /readyz.

    `lagging` when `bound` is set, records wait unsigned and the newest checkpoint
    (signed by any process) is older than `bound` seconds at `now` (epoch seconds).
    """
    unsigned = max(0, statistics.tree_size - statistics.signed_size)
    signed_at = statistics.checkpoint_time
    age = None if signed_at is None else max(0.0, now - signed_at)
    lagging = bound is not None and unsigned > 0 and age is not None and age > bound
    return {
        "unsigned_records": unsigned,
        "checkpoint_age_seconds": None if age is None else round(age, 1),
        "lagging": lagging,
    }
