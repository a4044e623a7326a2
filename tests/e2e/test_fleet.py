"""A fleet for real: three gateway replicas, each in its own network namespace, share one
PostgreSQL database (a server of the test's own, on the bridge) and write one log under
concurrent load, through a replica crash (SIGKILL) and a database outage.

What must hold (issue: one log, many gateways):
- every request a client got an answer for (other than the outage's 503) is in the log
  exactly once; no index gap or duplicate; the other replicas keep serving a crash;
- while the database is down, requests get `503 audit_unavailable` within
  `write_timeout_seconds` and nothing reaches the model; when it is back, service
  resumes with no restart, and the checkpoints before and after the outage are consistent;
- `gateway audit verify` passes, and an RFC 6962 root recomputed from the stored leaves by
  code written here (not gateway.audit.tree) equals the newest checkpoint's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml

from gateway.audit import load_verifier, open_checkpoint, open_store, verify_consistency
from gateway.audit.proofs import StoredTree
from gateway.cli import main
from gateway.demo.upstream import create_app
from gateway.identity.pki import issue_server
from tests.e2e.audit_support import CHAT, chat
from tests.e2e.crash_gateway import client_context
from tests.harness import REPO, gateway_settings
from tests.netns import Network
from tests.postgres import PostgresServer
from tests.servers import serve_asgi

WRITE_TIMEOUT = 1.0
MARGIN = 0.25  # the documented bound on top of write_timeout_seconds


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 Merkle Tree Hash, written out from the RFC's definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(b"\x01" + _mth(leaves[:split]) + _mth(leaves[split:])).digest()


class _Replica:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log


@contextlib.asynccontextmanager
async def _replicas(
    network: Network, folder: Path, pki: Path, upstream: str, store: str
) -> AsyncIterator[list[_Replica]]:
    certificate, private_key = issue_server(
        pki / "corp-ca", folder / "fleet-server", network.addresses
    )
    shutil.copytree(REPO / "policies", folder / "policies")
    replicas: list[_Replica] = []
    try:
        for index, address in enumerate(network.addresses):
            home = folder / f"replica{index}"
            home.mkdir()
            config = gateway_settings(
                home,
                pki,
                folder / "policies",
                upstream,
                port=8443,
                overrides={
                    "audit_store": store,
                    "audit_write_timeout_seconds": WRITE_TIMEOUT,
                    "audit_checkpoint_every_seconds": 0.5,
                },
            )
            settings = yaml.safe_load(config.read_text())
            settings["listen"]["host"] = address
            settings["tls"]["certificate"] = str(certificate)
            settings["tls"]["private_key"] = str(private_key)
            config.write_text(yaml.safe_dump(settings))
            log = home / "gateway.log"
            with log.open("wb") as sink:
                process = subprocess.Popen(
                    network.command(index, [sys.executable, "-m", "gateway.cli", "serve",
                                            "--config", str(config)]),
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                )  # fmt: skip
            replicas.append(_Replica(process, f"https://{address}:8443", log))
        for replica in replicas:
            await _until_ready(replica, pki)
        yield replicas
    finally:
        for replica in replicas:
            if replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()


async def _until_ready(replica: _Replica, pki: Path) -> None:
    async with httpx.AsyncClient(verify=client_context(pki, None), timeout=2) as client:
        async with asyncio.timeout(60):
            while True:
                if replica.process.poll() is not None:
                    raise RuntimeError(replica.log.read_text()[-3000:])
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(replica.url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)


class _Load:
    """Callers spread over the replicas; every request has its own x-request-id."""

    def __init__(self, replicas: list[_Replica], pki: Path) -> None:
        self.replicas = replicas
        self.context = client_context(pki, "alice")
        self.answers: dict[str, tuple[int, str, float]] = {}  # id -> (status, code, seconds)
        self.transport_errors: dict[int, int] = {}
        self.stop = asyncio.Event()

    async def caller(self, number: int) -> None:
        replica = self.replicas[number % len(self.replicas)]
        async with httpx.AsyncClient(verify=self.context, timeout=10) as http:
            for sequence in itertools.count():
                if self.stop.is_set():
                    return
                request_id = f"fleet-{number}-{sequence}"
                started = time.monotonic()
                try:
                    response = await http.post(
                        replica.url + CHAT, json=chat(), headers={"x-request-id": request_id}
                    )
                except httpx.TransportError:
                    index = self.replicas.index(replica)
                    self.transport_errors[index] = self.transport_errors.get(index, 0) + 1
                    if replica.process.poll() is not None:
                        return  # its replica is gone; the others carry on
                    await asyncio.sleep(0.05)
                    continue
                code = response.json().get("error", {}).get("code", "") if response.content else ""
                self.answers[request_id] = (
                    response.status_code,
                    code,
                    time.monotonic() - started,
                )

    def served_since(self, count: int) -> int:
        return sum(1 for status, _, _ in list(self.answers.values())[count:] if status == 200)


@pytest.mark.slow
async def test_three_replicas_one_log_through_a_crash_and_a_database_outage(
    tmp_path: Path, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Network(hosts=3) as network, PostgresServer(host=network.gateway_address) as database:
        store = database.url
        demo = create_app()
        async with (
            serve_asgi(demo, host=network.gateway_address) as upstream,
            _replicas(network, tmp_path, pki, upstream, store) as replicas,
        ):
            load = _Load(replicas, pki)
            callers = [asyncio.create_task(load.caller(n)) for n in range(24)]
            try:
                await _until(lambda: load.served_since(0) > 50)

                # A replica crashes mid-load; the others keep serving.
                replicas[1].process.kill()
                replicas[1].process.wait()
                before = len(load.answers)
                await _until(lambda: load.served_since(before) > 20)

                # The database goes away mid-load.
                checkpoints_before = _checkpoint_sizes(store)
                forwarded_before = len(demo.log)
                database.stop("immediate")
                outage_started = len(load.answers)
                await asyncio.sleep(3 * WRITE_TIMEOUT + 1)
                during = list(load.answers.items())[outage_started:]
                database.start()
                refused = [(i, a) for i, a in during if a[0] == 503]
                assert len(refused) > 10
                assert {code for _, (_, code, _) in refused} == {"audit_unavailable"}
                # Within the timeout (a request queued behind a stalled write waits the
                # rest of that write's timeout, never more).
                assert max(seconds for _, (_, _, seconds) in refused) < WRITE_TIMEOUT + MARGIN
                # No request answered 503 reached the model.
                refused_ids = {i for i, _ in refused}
                reached = {seen.header("x-request-id") for seen in demo.log[forwarded_before:]}
                assert not refused_ids & reached

                # Back: service resumes in every surviving replica, no restart.
                resumed = len(load.answers)
                await _until(lambda: load.served_since(resumed) >= 50)
            finally:
                load.stop.set()
                await asyncio.gather(*callers)
            for replica in (replicas[0], replicas[2]):
                replica.process.terminate()
                assert replica.process.wait(30) == 0, replica.log.read_text()[-2000:]
        _audit(store, pki, load.answers, checkpoints_before, capsys)


async def _until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    """Wait (bounded) until `condition` holds; the load runs meanwhile."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.1)


def _checkpoint_sizes(store: str) -> list[int]:
    with psycopg.connect(store) as connection:
        return [int(row[0]) for row in connection.execute("SELECT tree_size FROM checkpoints")]


def _audit(
    store: str,
    pki: Path,
    answers: dict[str, tuple[int, str, float]],
    checkpoints_before: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = pki / "audit-signing.pub"
    code = main(["audit", "verify", "--store", store, "--key", str(key), "--require-signed"])
    output = capsys.readouterr().out
    assert code == 0, output

    with psycopg.connect(store) as connection:
        rows = connection.execute(
            "SELECT leaf_index, data FROM records ORDER BY leaf_index"
        ).fetchall()
        latest = connection.execute(
            "SELECT note FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
    assert [index for index, _ in rows] == list(range(len(rows)))  # no gap, no duplicate
    leaves = [bytes(data) for _, data in rows]
    # The newest checkpoint, read as the C2SP text it is: origin, size, base64 root.
    lines = str(latest[0]).split("\n")
    assert int(lines[1]) == len(leaves)
    assert base64.b64decode(lines[2]) == _mth(leaves)

    requests: dict[str, int] = {}
    for data in leaves:
        record = json.loads(data)
        if record["kind"] == "request" and record["request_id"].startswith("fleet-"):
            requests[record["request_id"]] = requests.get(record["request_id"], 0) + 1
    for request_id, (status, _, _) in answers.items():
        if status != 503:
            assert requests.get(request_id) == 1, (request_id, status)
        else:
            assert requests.get(request_id, 0) <= 1

    # Consistency across the outage: the last checkpoint before it to the first after.
    sizes = _checkpoint_sizes(store)
    before = max(checkpoints_before)
    after = min(size for size in sizes if size > before)
    verifier = load_verifier(key)
    reader = open_store(store, readonly=True)
    try:
        notes = {c.tree_size: c.note for c in reader.checkpoints()}
        old = open_checkpoint(notes[before], verifier)
        new = open_checkpoint(notes[after], verifier)
        proof = StoredTree(reader).consistency_proof(before, after)
    finally:
        reader.close()
    verify_consistency(before, after, proof, old.root_hash, new.root_hash)
