"""`gateway witness keys generate | serve | evidence`, run as an agency would: a real
process, its state file surviving a restart."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.audit.cosignature import CosignatureVerifier
from gateway.witness import format_add_checkpoint
from tests.witness import spec

from .conftest import ORIGIN, Log


def _gateway(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serving(config: Path, port: int) -> Iterator[str]:
    log = config.with_suffix(".log").open("ab")
    with (
        log,
        subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "witness", "serve", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 20
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the witness did not start: see {log.name}")
                time.sleep(0.05)
            yield url
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0


def test_keys_generate_writes_a_private_signer_and_a_verifier(tmp_path: Path) -> None:
    result = _gateway("witness", "keys", "generate", "--out", str(tmp_path), "--name", "w.test/1")
    assert result.returncode == 0, result.stderr
    assert os.stat(tmp_path / "witness.key").st_mode & 0o777 == 0o600
    verifier = CosignatureVerifier.from_string((tmp_path / "witness.pub").read_text())
    assert verifier.name == "w.test/1"
    again = _gateway("witness", "keys", "generate", "--out", str(tmp_path), "--name", "w.test/1")
    assert again.returncode == 2
    assert "never overwritten" in again.stderr


def test_serve_refuses_a_settings_file_with_a_bad_key(tmp_path: Path) -> None:
    config = tmp_path / "witness.yaml"
    (tmp_path / "witness.key").write_text("not a key\n")
    config.write_text(
        yaml.safe_dump(
            {"signing_key": "witness.key", "state": "w.db", "logs": [{"origin": "a", "key": "b"}]}
        )
    )
    result = _gateway("witness", "serve", "--config", str(config))
    assert result.returncode == 2
    assert "logs[0].key" in result.stderr


@pytest.mark.slow
def test_the_witness_state_survives_a_restart(tmp_path: Path, log: Log) -> None:
    assert (
        _gateway(
            "witness", "keys", "generate", "--out", str(tmp_path), "--name", "w.test/1"
        ).returncode
        == 0
    )
    port = _free_port()
    config = tmp_path / "witness.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "signing_key": "witness.key",
                "state": "state/witness.db",
                "logs": [{"origin": ORIGIN, "key": log.signer.verifier.to_string()}],
            }
        )
    )
    first = log.checkpoint(8)
    with _serving(config, port) as url:
        response = httpx.post(url + "/add-checkpoint", content=format_add_checkpoint(0, [], first))
        assert response.status_code == 200
        text, _ = spec.note_text_and_lines(first)
        name, public = spec.public_key_of((tmp_path / "witness.pub").read_text())
        assert spec.cosignature_timestamp(text, response.text, name, public) is not None
    with _serving(config, port) as url:
        # After the restart it still knows size 8: a fresh start (old 0) is a conflict...
        stale = httpx.post(url + "/add-checkpoint", content=format_add_checkpoint(0, [], first))
        assert (stale.status_code, stale.content) == (409, b"8\n")
        # ...a fork at size 8 is refused and kept...
        fork = log.checkpoint(8, "fork")
        forked = httpx.post(url + "/add-checkpoint", content=format_add_checkpoint(8, [], fork))
        assert forked.status_code == 409
        # ...and the log's next checkpoint is cosigned from size 8.
        body = format_add_checkpoint(8, log.proof(8, 21), log.checkpoint(21))
        assert httpx.post(url + "/add-checkpoint", content=body).status_code == 200
    evidence = _gateway("witness", "evidence", "--config", str(config))
    assert evidence.returncode == 0, evidence.stderr
    [kept] = [json.loads(line) for line in evidence.stdout.splitlines()]
    assert (kept["checkpoint"], kept["known_checkpoint"], kept["status"]) == (fork, first, 409)
