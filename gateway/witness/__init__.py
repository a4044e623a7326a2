"""Witnesses: C2SP tlog-witness cosigning of the audit log's checkpoints.

`WitnessSubmitter` runs in the gateway and submits each checkpoint it signs to the
configured witnesses; `build_witness_app` is the witness an evaluating agency runs
itself (`gateway witness serve`). Errors: see `gateway.witness.errors` (WitnessError ->
ProtocolError, WitnessStateError, SubmissionFailed). See docs/audit.md, "Witnesses".
"""

from gateway.witness.errors import (
    ProtocolError,
    SubmissionFailed,
    WitnessError,
    WitnessStateError,
)
from gateway.witness.protocol import AddCheckpoint, format_add_checkpoint, parse_add_checkpoint
from gateway.witness.server import Verdict, Witness, build_witness_app, judge
from gateway.witness.settings import (
    WitnessedLog,
    WitnessServerSettings,
    load_witness_settings,
    load_witness_signer,
)
from gateway.witness.state import Evidence, LatestCheckpoint, WitnessState
from gateway.witness.submitter import WitnessLag, WitnessSubmitter

__all__ = [
    "AddCheckpoint",
    "Evidence",
    "LatestCheckpoint",
    "ProtocolError",
    "SubmissionFailed",
    "Verdict",
    "Witness",
    "WitnessError",
    "WitnessLag",
    "WitnessServerSettings",
    "WitnessState",
    "WitnessStateError",
    "WitnessSubmitter",
    "WitnessedLog",
    "build_witness_app",
    "format_add_checkpoint",
    "judge",
    "load_witness_settings",
    "load_witness_signer",
    "parse_add_checkpoint",
]
