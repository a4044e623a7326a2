import gateway.witness


def test_witness_exports_exactly_its_public_api() -> None:
    assert gateway.witness.__all__ == [
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
