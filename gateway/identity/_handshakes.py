"""Refused TLS handshakes: what is known about one, and a cap on how many are recorded.

`HandshakeFailure` is what `TlsHttpProtocol` reports when a handshake fails.
`HandshakeFailureLimiter` decides which failures are recorded one by one: at most
`per_peer` per peer address and `overall` in total per window (a minute); the rest are
counted, and each window that counted any ends in one `SuppressedFailures` summary.
Pure: the caller passes a monotonic `now`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
MAX_PEERS = 10_000
"""Peer windows kept at once; past that, a new peer counts against the overall cap only."""


@dataclass(frozen=True, slots=True)
class HandshakeFailure:
    """One refused handshake.

    `reason` is the gateway's code: ``tls.certificate_refused`` (the client certificate
    failed verification), ``tls.handshake_timeout`` or ``tls.handshake_failed``
    (anything else OpenSSL refused). `openssl_reason` is OpenSSL's own reason
    (``CERTIFICATE_VERIFY_FAILED``, ``TLSV1_ALERT_UNKNOWN_CA``, ``HTTP_REQUEST``, ...)
    and `verify_message` its verification message (``certificate has expired``).
    `certificate_fingerprint` and `certificate_subject` stay None: OpenSSL discards a
    peer certificate that fails verification, and Python's ssl module offers no
    verification callback to read it before that.
    """

    peer_address: str | None
    listener: str | None
    reason: str
    openssl_reason: str | None = None
    verify_message: str | None = None
    certificate_fingerprint: str | None = None
    certificate_subject: str | None = None

    @classmethod
    def from_error(
        cls, error: BaseException, peer_address: str | None, listener: str | None
    ) -> HandshakeFailure:
        """The failure an exception from the TLS handshake stands for."""
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = "tls.certificate_refused"
        elif isinstance(error, ssl.SSLError):
            reason = "tls.handshake_failed"
        else:
            reason = "tls.handshake_timeout"
        return cls(
            peer_address=peer_address,
            listener=listener,
            reason=reason,
            openssl_reason=getattr(error, "reason", None),
            verify_message=getattr(error, "verify_message", None),
        )


@dataclass(frozen=True, slots=True)
class SuppressedFailures:
    """Failures not recorded one by one in a window, because of the `cap` they hit:
    ``per_peer`` (of `peer_address`) or ``overall`` (of every peer)."""

    cap: str
    peer_address: str | None
    listener: str | None
    count: int
    reasons: tuple[str, ...]


@dataclass(slots=True)
class _Window:
    started: float
    listener: str | None = None
    recorded: int = 0
    suppressed: int = 0
    reasons: set[str] = field(default_factory=set)

    def suppress(self, failure: HandshakeFailure) -> None:
        self.suppressed += 1
        self.listener = failure.listener
        if len(self.reasons) < 16:
            self.reasons.add(failure.reason)

    def summary(self, peer: str | None) -> SuppressedFailures:
        """`peer` None: the overall window."""
        return SuppressedFailures(
            cap="overall" if peer is None else "per_peer",
            peer_address=peer or None,
            listener=self.listener,
            count=self.suppressed,
            reasons=tuple(sorted(self.reasons)),
        )


class HandshakeFailureLimiter:
    """Per peer address and overall caps on failures recorded one by one per window.

    A window starts with the first failure it sees and lasts `window` seconds. When it
    has ended, its summary (if it suppressed anything) waits in `due()`.
    """

    def __init__(self, per_peer: int, overall: int, window: float = WINDOW_SECONDS) -> None:
        self.per_peer = per_peer
        self.overall = overall
        self.window = window
        self._peers: dict[str, _Window] = {}
        self._overall: _Window | None = None
        self._finished: list[SuppressedFailures] = []

    def admit(self, failure: HandshakeFailure, now: float) -> bool:
        """True: record `failure` on its own. False: it was counted for a summary."""
        overall = self._overall
        if overall is None or self._ended(overall, None, now):
            overall = self._overall = _Window(now)
        address = failure.peer_address or ""
        peer = self._peers.get(address)
        if peer is not None and self._ended(peer, address, now):
            del self._peers[address]
            peer = None
        if peer is None and (len(self._peers) < MAX_PEERS or self._prune(now)):
            peer = self._peers[address] = _Window(now)
        if peer is not None and peer.recorded >= self.per_peer:
            peer.suppress(failure)
            return False
        if overall.recorded >= self.overall:
            overall.suppress(failure)
            return False
        overall.recorded += 1
        if peer is not None:
            peer.recorded += 1
        return True

    def next_end(self) -> float | None:
        """When the earliest window that suppressed something ends, if one did."""
        starts = [w.started for w in self._peers.values() if w.suppressed]
        if self._overall is not None and self._overall.suppressed:
            starts.append(self._overall.started)
        return min(starts) + self.window if starts else None

    def due(self, now: float) -> list[SuppressedFailures]:
        """Summaries of the windows that have ended; those windows are forgotten."""
        for address, window in list(self._peers.items()):
            if self._ended(window, address, now):
                del self._peers[address]
        if self._overall is not None and self._ended(self._overall, None, now):
            self._overall = None
        found, self._finished = self._finished, []
        return found

    def drain(self) -> list[SuppressedFailures]:
        """Every summary still to write, ended or not (at shutdown)."""
        found = self._finished + [w.summary(a) for a, w in self._peers.items() if w.suppressed]
        if self._overall is not None and self._overall.suppressed:
            found.append(self._overall.summary(None))
        self._peers.clear()
        self._overall = None
        self._finished = []
        return found

    def _ended(self, window: _Window, address: str | None, now: float) -> bool:
        """Whether `window` has ended; if so, its summary is kept for `due`."""
        if now - window.started < self.window:
            return False
        if window.suppressed:
            self._finished.append(window.summary(address))
        return True

    def _prune(self, now: float) -> bool:
        """Forget ended peer windows; True if that made room."""
        for address, window in list(self._peers.items()):
            if self._ended(window, address, now):
                del self._peers[address]
        return len(self._peers) < MAX_PEERS
