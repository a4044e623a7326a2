"""PostgreSQL for tests: a private schema per test in the machine's server, or a whole
server of the test's own (`PostgresServer`) when the test must stop and start it.

The shared server is `GATEWAY_TEST_POSTGRES` (default postgresql://127.0.0.1:5432/test,
trust authentication, as on the development machine and in CI).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg

SERVER = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def with_search_path(url: str, schema: str) -> str:
    """`url` with the connection's search path set to `schema`."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def private_schema(server: str = SERVER) -> Iterator[str]:
    """A store URL in a new, empty schema of `server`, dropped afterwards."""
    schema = f"audit_test_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        yield with_search_path(server, schema)
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE".encode())


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise FileNotFoundError(f"{name} is not installed (Debian's postgresql package has it)")


class PostgresServer:
    """A PostgreSQL server of the test's own, in a temporary folder, on `host`:`port`.

    `initdb` and `pg_ctl` come from the machine's PostgreSQL installation; as root the
    server runs as the `postgres` user, which owns the folder.
    """

    def __init__(
        self, folder: Path | None = None, host: str = "127.0.0.1", port: int | None = None
    ) -> None:
        # A folder of its own under /tmp: the server's user must be able to reach it, which
        # it cannot below pytest's private temporary folders.
        self._own_folder = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.folder / "data"
        self.host = host
        self.port = port or _free_port(host)
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        if self._user is not None:
            command = ("runuser", "-u", self._user, "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            shutil.chown(self.folder, self._user)
        self._run(
            _binary("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '{self.host}'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\n"
                "max_connections = 100\nsynchronous_commit = on\nfsync = on\n"
            )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 0.0.0.0/0 trust\n")

    def start(self) -> None:
        self._run(
            _binary("pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def __enter__(self) -> PostgresServer:
        self.init()
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        if self._own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
