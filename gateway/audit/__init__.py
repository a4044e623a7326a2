"""What happened: the tamper-evident audit log.

Records are RFC 8785 canonical JSON, the leaves of an RFC 6962 Merkle tree whose
checkpoints are signed as C2SP signed notes with Ed25519 and cosigned by witnesses
(C2SP tlog-cosignature). See docs/audit.md.
"""

from gateway.audit.cosignature import CosignatureSigner, CosignatureVerifier
from gateway.audit.errors import (
    AuditError,
    AuditUnavailable,
    IntegrityError,
    NoteError,
    ProofError,
    RecordError,
    VerificationError,
)
from gateway.audit.jcs import canonicalize
from gateway.audit.keys import generate_keys, load_hmac_key, load_signer, load_verifier
from gateway.audit.log import AuditLog, AuditStatistics, StoreFactory
from gateway.audit.note import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    format_checkpoint,
    open_checkpoint,
    open_note,
    parse_checkpoint,
)
from gateway.audit.ocsf import to_ocsf
from gateway.audit.records import KINDS, BodyDigest, IncrementalDigest, RecordFilter, format_time
from gateway.audit.settings import AuditSettings, WitnessSettings
from gateway.audit.stores import (
    AuditStore,
    SchemaError,
    SQLiteAuditStore,
    StoredCheckpoint,
    StoredCosignature,
    StoreError,
    TreeHead,
    describe_location,
    open_store,
    parse_location,
)
from gateway.audit.tree import (
    CompactRange,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from gateway.audit.verify import VerifiedLog, verify_store

__all__ = [
    "KINDS",
    "AuditError",
    "AuditLog",
    "AuditSettings",
    "AuditStatistics",
    "AuditStore",
    "AuditUnavailable",
    "BodyDigest",
    "Checkpoint",
    "CompactRange",
    "CosignatureSigner",
    "CosignatureVerifier",
    "IncrementalDigest",
    "IntegrityError",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "RecordError",
    "RecordFilter",
    "SQLiteAuditStore",
    "SchemaError",
    "StoreError",
    "StoreFactory",
    "StoredCheckpoint",
    "StoredCosignature",
    "TreeHead",
    "VerificationError",
    "VerifiedLog",
    "WitnessSettings",
    "canonicalize",
    "describe_location",
    "format_checkpoint",
    "format_time",
    "generate_keys",
    "leaf_hash",
    "load_hmac_key",
    "load_signer",
    "load_verifier",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "open_store",
    "parse_checkpoint",
    "parse_location",
    "to_ocsf",
    "verify_consistency",
    "verify_inclusion",
    "verify_store",
]
