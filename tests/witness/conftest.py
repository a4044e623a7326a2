"""A log (signer key and Merkle trees written out per RFC 6962) and a witness for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.audit import AuditSettings, Checkpoint, NoteSigner, format_checkpoint, generate_keys
from gateway.audit.cosignature import CosignatureSigner, generate_cosigner
from gateway.audit.keys import HMAC_KEY_FILE, SIGNING_KEY_FILE
from gateway.audit.note import generate_signer
from gateway.witness import WitnessedLog, WitnessState, build_witness_app
from tests.audit.test_tree import NaiveTree
from tests.servers import serve_asgi

ORIGIN = "gateway.test/audit"


class Log:
    """A log that can sign any tree, including two different ones of one size (a fork)."""

    def __init__(self, signer: NoteSigner) -> None:
        self.signer = signer

    @staticmethod
    def tree(size: int, branch: str = "main") -> NaiveTree:
        return NaiveTree([f"{branch}-{i}".encode() for i in range(size)])

    def checkpoint(self, size: int, branch: str = "main", origin: str = ORIGIN) -> str:
        root = self.tree(size, branch).mth(0, size)
        return self.signer.sign(format_checkpoint(Checkpoint(origin, size, root)))

    def proof(self, old: int, new: int, branch: str = "main") -> list[bytes]:
        if old in (0, new):
            return []
        return self.tree(new, branch).subproof(old, 0, new, True)


@dataclass
class RunningWitness:
    url: str
    client: httpx.AsyncClient
    signer: CosignatureSigner
    state: WitnessState
    path: Path


@pytest.fixture
def log() -> Log:
    return Log(generate_signer(ORIGIN))


@pytest.fixture
async def witness(tmp_path: Path, log: Log) -> AsyncIterator[RunningWitness]:
    signer = generate_cosigner("witness.test/w1")
    path = tmp_path / "witness.db"
    state = WitnessState(path)
    app = build_witness_app({ORIGIN: WitnessedLog(ORIGIN, log.signer.verifier)}, signer, state)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield RunningWitness(url, client, signer, state, path)


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    generate_keys(directory, ORIGIN)
    return directory


@pytest.fixture
def settings(tmp_path: Path, key_dir: Path) -> AuditSettings:
    """A log that signs a checkpoint every 10 records."""
    return AuditSettings(
        store=tmp_path / "var" / "audit.db",
        origin=ORIGIN,
        signing_key=key_dir / SIGNING_KEY_FILE,
        hmac_key=key_dir / HMAC_KEY_FILE,
        checkpoint_every_records=10,
        checkpoint_every_seconds=3600,
        batch_max=8,
    )
