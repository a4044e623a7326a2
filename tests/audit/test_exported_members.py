import gateway.audit


def test_audit_exports_exactly_its_public_api() -> None:
    assert gateway.audit.__all__ == [
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
        "TreeHead",
        "VerificationError",
        "VerifiedLog",
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


def test_every_exported_name_exists() -> None:
    for name in gateway.audit.__all__:
        assert hasattr(gateway.audit, name), name
