"""Serving /metrics: a listener of its own, what it shows, and the multiprocess directory.

One process serves /metrics for a gateway: the gateway itself, or with
`--workers N` the supervisor, which adds up the files its workers write in a private
directory (prometheus-client's multiprocess mode). Either way the audit store's own
state (tree size, newest checkpoint, unsigned tail) is read there, at scrape time, at
most once per `STORE_READ_INTERVAL`: one read for the whole log, whichever process
wrote it.

The listener is a small threaded HTTP server (wsgiref, as prometheus-client's own);
it answers `GET /metrics` (404 for other paths, 405 for other methods), and drops a
connection idle for `IDLE_TIMEOUT` seconds.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from gateway.audit import AuditStore, StoreError, open_store
from gateway.audit.stores import StoreLocation

__all__ = [
    "MULTIPROCESS_VARIABLE",
    "AuditStoreCollector",
    "MetricsListener",
    "MultiprocessDirectory",
]

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
STORE_READ_INTERVAL = 5.0
IDLE_TIMEOUT = 10.0


class AuditStoreCollector(Collector):
    """The audit log's head and newest checkpoint, read from the store (cached)."""

    def __init__(
        self,
        location: StoreLocation,
        *,
        interval: float = STORE_READ_INTERVAL,
        clock: Callable[[], float] = time.time,
        opener: Callable[[StoreLocation], AuditStore] | None = None,
    ) -> None:
        self._location = location
        self._interval = interval
        self._clock = clock
        self._open = opener or (lambda location: open_store(location, readonly=True))
        self._lock = threading.Lock()
        self._store: AuditStore | None = None
        self._read_at = float("-inf")
        self._state: tuple[int, int, float | None] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self._interval:
                self._read_at = time.monotonic()
                self._state = self._read()
            state = self._state
        yield _gauge(
            "gateway_audit_store_readable",
            "1 if the audit store could be read at the latest scrape.",
            0 if state is None else 1,
        )
        if state is None:
            return
        tree_size, signed_size, signed_at = state
        yield _gauge("gateway_audit_tree_size", "Records in the audit log.", tree_size)
        yield _gauge(
            "gateway_audit_checkpoint_tree_size",
            "Records covered by the newest signed checkpoint.",
            signed_size,
        )
        yield _gauge(
            "gateway_audit_unsigned_records",
            "Records committed but not yet covered by a signed checkpoint.",
            tree_size - signed_size,
        )
        if signed_at is not None:
            yield _gauge(
                "gateway_audit_checkpoint_age_seconds",
                "Seconds since the newest checkpoint was signed.",
                max(0.0, self._clock() - signed_at),
            )

    def _read(self) -> tuple[int, int, float | None] | None:
        try:
            if self._store is None:
                self._store = self._open(self._location)
            head = self._store.head()
            latest = self._store.latest_checkpoint()
        except (StoreError, OSError):
            self.close()  # reconnect at the next read
            return None
        if latest is None:
            return head.tree_size, 0, None
        return head.tree_size, latest.tree_size, latest.created_us / 1e6

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT  # a client that stops sending frees its thread

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes are not events worth a log line


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class MetricsListener:
    """Serves `registry` at `http://host:port/metrics` from a thread, with the audit
    store's state (`AuditStoreCollector`) when `store` is given."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        store: StoreLocation | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self._registry = registry
        self._collector = AuditStoreCollector(store) if store is not None else None
        metrics = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("PATH_INFO") != "/metrics":
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"Not found: metrics are at /metrics\n"]
            if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
                start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
                return [b"Method not allowed\n"]
            result: Iterable[bytes] = metrics(environ, start_response)
            return result

        self._app = app
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port bound (the one chosen by the system when 0 was asked for)."""
        assert self._server is not None
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        """Bind and serve; raises OSError if the address cannot be bound."""
        server_class = type(
            "MetricsServer",
            (_Server,),
            {"address_family": socket.AF_INET6 if ":" in self.host else socket.AF_INET},
        )
        self._server = make_server(
            self.host, self.requested_port, self._app, server_class, handler_class=_Handler
        )
        if self._collector is not None:
            self._registry.register(self._collector)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-listener", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the store connection (a no-op if never started)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector.close()


class _WithoutReplacedVersions(Collector):
    """Every worker's files added up, less the policy versions replaced since.

    A worker sets a replaced version's `gateway_policy_info` to 0 and removes it, but in
    multiprocess mode the value stays in the worker's file; left there, every policy
    change would add a series for as long as the worker lives.
    """

    def __init__(self, path: str) -> None:
        self._inner = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        for family in self._inner.collect():  # type: ignore[no-untyped-call]
            if family.name == "gateway_policy_info":
                family.samples = [sample for sample in family.samples if sample.value != 0]
            yield family


class MultiprocessDirectory:
    """The supervisor's private directory for its workers' metric files.

    Created fresh (mode 0700) for each run, named in the environment that spawned
    workers inherit, and removed at `close()`; an inherited value is ignored, so no
    stale file of an earlier run is ever counted.
    """

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ[MULTIPROCESS_VARIABLE] = self.path

    def registry(self, extra: Iterable[Collector] = ()) -> CollectorRegistry:
        """A registry that adds up every worker's files, with `extra` collectors."""
        registry = CollectorRegistry()
        registry.register(_WithoutReplacedVersions(self.path))
        for collector in extra:
            registry.register(collector)
        return registry

    def process_exited(self, pid: int) -> None:
        """Drop an exited worker's `live` gauges (its counters keep counting in the sum)."""
        mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if os.environ.get(MULTIPROCESS_VARIABLE) == self.path:
            del os.environ[MULTIPROCESS_VARIABLE]
        shutil.rmtree(self.path, ignore_errors=True)
