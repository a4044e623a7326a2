"""Evidence of refused TLS handshakes: a log line and a `tls_failure` audit record each,
capped per peer address and overall per minute, then one summary record per window.

`TlsHttpProtocol` reports each failure through `HandshakeEvidence.report` (on the event
loop); records are appended in the background, and `close()` (at shutdown, before the
audit log stops) writes the summaries still owed and waits for every record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.identity import HandshakeFailure, HandshakeFailureLimiter, SuppressedFailures
from gateway.records import event_record

Append = Callable[[dict[str, Any]], Coroutine[Any, Any, int | None]]


class HandshakeEvidence:
    """Turns refused handshakes into capped log lines and `tls_failure` records.

    `append` writes a record (the gateway's `record`), `clock` gives the records' wall
    time, `monotonic` times the windows.
    """

    def __init__(
        self,
        limiter: HandshakeFailureLimiter,
        append: Append,
        clock: Callable[[], float],
        logger: Any,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._append = append
        self._clock = clock
        self._logger = logger
        self._monotonic = monotonic
        self._pending: set[asyncio.Task[int | None]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def report(self, failure: HandshakeFailure) -> None:
        """Record `failure`, or count it for its window's summary."""
        if self._limiter.admit(failure, self._monotonic()):
            self._logger.warning(
                "tls.handshake_failed",
                client_address=failure.peer_address,
                listener=failure.listener,
                reason=failure.reason,
                openssl_reason=failure.openssl_reason,
                verify_message=failure.verify_message,
            )
            self._write(failure_record(self._clock(), failure))
        elif self._timer is None:
            self._schedule()

    async def close(self) -> None:
        """Write every summary still owed, then wait until every record is written."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for summary in self._limiter.drain():
            self._summarise(summary)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _schedule(self) -> None:
        end = self._limiter.next_end()
        if end is None:
            return
        delay = max(0.0, end - self._monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._flush)

    def _flush(self) -> None:
        self._timer = None
        for summary in self._limiter.due(self._monotonic()):
            self._summarise(summary)
        self._schedule()

    def _summarise(self, summary: SuppressedFailures) -> None:
        self._logger.warning(
            "tls.handshake_failures_suppressed",
            cap=summary.cap,
            client_address=summary.peer_address,
            suppressed=summary.count,
            reasons=list(summary.reasons),
        )
        self._write(summary_record(self._clock(), summary))

    def _write(self, record: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._append(record))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


def failure_record(now: float, failure: HandshakeFailure) -> dict[str, Any]:
    """The `tls_failure` record of one refused handshake (fields in docs/audit.md)."""
    return event_record(
        now,
        "tls_failure",
        client_address=failure.peer_address,
        listener=failure.listener,
        decision="deny",
        reason=failure.reason,
        openssl_reason=failure.openssl_reason,
        verify_message=failure.verify_message,
        certificate_fingerprint=failure.certificate_fingerprint,
        certificate_subject=failure.certificate_subject,
        cap=None,
        suppressed=0,
        suppressed_reasons=[],
    )


def summary_record(now: float, summary: SuppressedFailures) -> dict[str, Any]:
    """The `tls_failure` record that counts the failures a cap kept from being recorded."""
    return event_record(
        now,
        "tls_failure",
        client_address=summary.peer_address,
        listener=summary.listener,
        decision="deny",
        reason="tls.failures_suppressed",
        openssl_reason=None,
        verify_message=None,
        certificate_fingerprint=None,
        certificate_subject=None,
        cap=summary.cap,
        suppressed=summary.count,
        suppressed_reasons=list(summary.reasons),
    )
