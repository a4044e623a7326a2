import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.audit import AuditLog, AuditSettings, SQLiteAuditStore

from .test_cli import run_cli

HELPER = Path(__file__).with_name("crash_writer.py")


@pytest.mark.slow
async def test_sigkill_mid_run_loses_no_acknowledged_record(
    settings: AuditSettings, verifier_file: Path
) -> None:
    repo = Path(__file__).parents[2]
    process = subprocess.Popen(
        [
            sys.executable,
            str(HELPER),
            str(settings.store),
            str(settings.signing_key),
            str(settings.hmac_key),
            settings.origin,
        ],
        stdout=subprocess.PIPE,
        cwd=repo,
    )
    assert process.stdout is not None
    acknowledged: list[int] = []
    try:
        while len(acknowledged) < 1500:
            line = process.stdout.readline()
            assert line, "writer exited early"
            acknowledged.append(int(line.split()[0]))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    # Lines printed before the kill but not yet read are acknowledged too.
    acknowledged.extend(int(line.split()[0]) for line in process.stdout.read().splitlines())
    process.stdout.close()

    log = AuditLog(settings)
    await log.start()
    size = log.tree_size
    await log.stop()
    assert max(acknowledged) < size
    store = SQLiteAuditStore(settings.store, readonly=True)
    try:
        present = {row.index for row in store.iter_records()}
    finally:
        store.close()
    assert set(acknowledged) <= present
    code, _, _ = run_cli(["audit", "verify", "--store", str(settings.store),
                          "--key", str(verifier_file)])  # fmt: skip
    assert code == 0
