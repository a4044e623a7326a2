"""`gateway serve --workers N`: N gateway processes on one listening socket.

The supervisor binds the socket, then starts each worker as a fresh interpreter (the
`spawn` start method: no state shared but the socket) that loads the settings and
serves on the inherited socket. Every worker appends to the one audit store (the store
sequences them), has its own readiness, and signs a final checkpoint when it stops;
the last to stop covers everything. With `metrics.listen` set, the supervisor serves
/metrics: its workers write their values to a private directory it creates for the
run (prometheus-client's multiprocess mode), and it adds them up.

- A worker that dies is logged (`worker.exited`, with its exit code) and replaced; one
  that dies within `CRASH_WINDOW` seconds of starting waits before its replacement,
  doubling up to `MAX_BACKOFF`, so a worker that cannot start does not spin.
- SIGTERM or SIGINT stops every worker gracefully (SIGTERM to each, up to
  `STOP_TIMEOUT` seconds, then SIGKILL) and exits 0 once all have stopped.
- SIGHUP is passed to every worker (each reloads its policy).
- A worker whose supervisor is gone (killed with SIGKILL, say) stops by itself within
  `ORPHAN_CHECK` seconds, as if sent SIGTERM (`worker.orphaned`): no worker keeps
  serving on the shared port with nobody left to stop it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from gateway.logs import configure_logging, get_logger
from gateway.settings import Settings
from gateway.telemetry import MetricsListener, MultiprocessDirectory

__all__ = ["Supervisor", "bind_socket", "supervised", "worker_identity"]

CRASH_WINDOW = 5.0
MAX_BACKOFF = 30.0
STOP_TIMEOUT = 20.0
ORPHAN_CHECK = 0.5
_WORKER_VARIABLE = "GATEWAY_WORKER"


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening socket every worker accepts on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _run_worker(
    config: str, sock: socket.socket, index: int, log_level: str, supervisor: int
) -> None:
    """A worker process: load the settings and serve on the inherited socket."""
    from gateway.server import serve
    from gateway.settings import load_settings

    os.environ[_WORKER_VARIABLE] = str(index)
    configure_logging(log_level)
    # The supervisor handles Ctrl-C in a terminal; a worker stops when the supervisor says.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(
        target=_stop_when_orphaned, args=(supervisor,), name="orphan-check", daemon=True
    ).start()
    serve(load_settings(Path(config)), sock)


def _stop_when_orphaned(supervisor: int) -> None:
    """Stop this worker gracefully (SIGTERM to itself) once its supervisor has gone."""
    while os.getppid() == supervisor:
        time.sleep(ORPHAN_CHECK)
    get_logger().bind(role="worker").error("worker.orphaned", supervisor_pid=supervisor)
    os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    started: float
    backoff: float = 0.0


class Supervisor:
    """Runs `workers` gateway processes for the settings file at `config`."""

    def __init__(self, config: Path, settings: Settings, workers: int) -> None:
        self.config = config
        self.settings = settings
        self.count = workers
        self.logger = get_logger().bind(role="supervisor")
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._reload = False
        self._workers: dict[int, _Worker] = {}
        self._waiting: dict[int, tuple[float, float]] = {}  # index -> (start at, backoff)
        self._metrics: MultiprocessDirectory | None = None
        self._listener: MetricsListener | None = None

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status (3: a port cannot be bound)."""
        metrics = self.settings.metrics
        listener = self._listener = None
        if metrics.host is not None:
            # Before any worker starts: each inherits the directory and writes its files there.
            self._metrics = MultiprocessDirectory()
            listener = self._listener = MetricsListener(
                metrics.host,
                metrics.port,
                self._metrics.registry(),
                store=self.settings.audit.store,
            )
        try:
            if listener is not None:
                try:
                    listener.start()
                except OSError as exc:
                    self.logger.error(
                        "metrics.bind_failed", host=metrics.host, port=metrics.port, error=str(exc)
                    )
                    return 3
                self.logger.info("metrics.listening", host=listener.host, port=listener.port)
            return self._serve()
        finally:
            if listener is not None:
                listener.stop()
            if self._metrics is not None:
                self._metrics.close()
                self._metrics = None

    def _serve(self) -> int:
        sock = bind_socket(self.settings.host, self.settings.port)
        previous = {
            number: signal.signal(number, self._on_signal)
            for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        }
        try:
            for index in range(self.count):
                self._start(index, sock, 0.0)
            self.logger.info(
                "supervisor.started",
                workers=self.count,
                host=self.settings.host,
                port=sock.getsockname()[1],
            )
            while not self._stopping:
                self._tend(sock)
                time.sleep(0.2)
            return self._stop_all()
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            sock.close()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        if number == signal.SIGHUP:
            self._reload = True
        else:
            self._stopping = True

    def _start(self, index: int, sock: socket.socket, backoff: float) -> None:
        process = self._context.Process(
            target=_run_worker,
            args=(str(self.config), sock, index, self.settings.log_level, os.getpid()),
            name=f"gateway-worker-{index}",
        )
        process.start()
        self._workers[index] = _Worker(index, process, time.monotonic(), backoff)
        self.logger.info("worker.started", worker=index, pid=process.pid)

    def _tend(self, sock: socket.socket) -> None:
        if self._reload:
            self._reload = False
            for worker in self._workers.values():
                if worker.process.pid is not None and worker.process.is_alive():
                    os.kill(worker.process.pid, signal.SIGHUP)
        now = time.monotonic()
        for index, worker in list(self._workers.items()):
            if worker.process.is_alive():
                continue
            worker.process.join()
            lived = now - worker.started
            backoff = (
                min(MAX_BACKOFF, max(1.0, worker.backoff * 2)) if lived < CRASH_WINDOW else 0.0
            )
            self.logger.error(
                "worker.exited",
                worker=index,
                pid=worker.process.pid,
                exit_code=worker.process.exitcode,
                lived_seconds=round(lived, 1),
                restart_in_seconds=backoff,
            )
            del self._workers[index]
            if self._metrics is not None and worker.process.pid is not None:
                self._metrics.process_exited(worker.process.pid)
            self._waiting[index] = (now + backoff, backoff)
        for index, (start_at, backoff) in list(self._waiting.items()):
            if now >= start_at:
                del self._waiting[index]
                self._start(index, sock, backoff)

    def _stop_all(self) -> int:
        self.logger.info("supervisor.stopping", workers=len(self._workers))
        if self._listener is not None:
            # Its store connection closes first: SQLite folds the WAL into the file only
            # when the last connection (the last worker's) closes.
            self._listener.stop()
        for worker in self._workers.values():
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        status = 0
        for worker in self._workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                self.logger.error("worker.stop_timeout", worker=worker.index)
                worker.process.kill()
                worker.process.join()
                status = 1
            elif worker.process.exitcode not in (0, None):
                status = 1
        self.logger.info("supervisor.stopped", status=status)
        return status


def supervised() -> bool:
    """Whether this process is a worker of `gateway serve --workers N`."""
    return _WORKER_VARIABLE in os.environ


def worker_identity() -> dict[str, Any]:
    """Which worker this process is (for /readyz and metrics): index and pid."""
    index = os.environ.get(_WORKER_VARIABLE)
    return {"index": int(index) if index is not None else 0, "pid": os.getpid()}
