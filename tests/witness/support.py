"""Helpers for the witness tests: an audit log wired to a submitter and witness apps."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gateway.audit import AuditLog, AuditSettings, load_signer, open_store
from gateway.audit.cosignature import CosignatureSigner, generate_cosigner
from gateway.audit.settings import WitnessSettings
from gateway.witness import WitnessedLog, WitnessState, WitnessSubmitter, build_witness_app
from tests.audit.conftest import make_record

from .conftest import ORIGIN


@dataclasses.dataclass
class Witnessing:
    log: AuditLog
    submitter: WitnessSubmitter
    signers: list[CosignatureSigner]
    apps: list[Any]
    states: list[WitnessState]


def witness_settings(signer: CosignatureSigner, number: int) -> WitnessSettings:
    return WitnessSettings(signer.name, f"http://witness-{number}.test/", signer.verifier)


def witness_apps(
    settings: AuditSettings, tmp_path: Path, count: int
) -> tuple[list[CosignatureSigner], list[Any], list[WitnessState]]:
    """`count` witnesses of the log, each an app with its own key and state file."""
    log_key = load_signer(settings.signing_key).verifier
    signers = [generate_cosigner(f"witness.test/w{i}") for i in range(count)]
    states = [WitnessState(tmp_path / f"witness-{i}.db") for i in range(count)]
    apps = [
        build_witness_app({ORIGIN: WitnessedLog(ORIGIN, log_key)}, signer, state)
        for signer, state in zip(signers, states, strict=True)
    ]
    return signers, apps, states


def in_process(apps: list[Any]) -> Callable[[WitnessSettings], httpx.AsyncBaseTransport]:
    """Transports that reach witness app number N for the witness at witness-N.test."""

    def make(witness: WitnessSettings) -> httpx.AsyncBaseTransport:
        number = int(witness.url.split("witness-")[1].split(".")[0])
        return httpx.ASGITransport(app=apps[number])

    return make


class Running:
    """The audit log and a submitter wired as build_app wires them."""

    def __init__(
        self,
        settings: AuditSettings,
        signers: list[CosignatureSigner],
        apps: list[Any],
        states: list[WitnessState],
        transport: Callable[[WitnessSettings], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.settings = dataclasses.replace(
            settings,
            witnesses=tuple(witness_settings(s, i) for i, s in enumerate(signers)),
        )
        self.log = AuditLog(self.settings)
        self.submitter = WitnessSubmitter(self.settings, transport=transport or in_process(apps))
        self.running = Witnessing(self.log, self.submitter, signers, apps, states)

    async def __aenter__(self) -> Witnessing:
        await self.log.start()
        self.log.checkpoint_listeners.append(self.submitter.checkpoint_signed)
        await self.submitter.start()
        return self.running

    async def __aexit__(self, *exc: object) -> None:
        await self.log.stop()
        await self.submitter.stop()
        for state in self.running.states:
            state.close()


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def caught_up(submitter: WitnessSubmitter, size: int) -> Callable[[], bool]:
    return lambda: all(
        lag.cosigned_size >= size and lag.records == 0 for lag in submitter.lag().values()
    )


def log_note(settings: AuditSettings) -> str:
    store = open_store(settings.store, readonly=True)
    try:
        latest = store.latest_checkpoint()
    finally:
        store.close()
    assert latest is not None
    return latest.note


async def append(log: AuditLog, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        await log.append(make_record(number))
