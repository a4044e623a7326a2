import gateway.candidate


def test_candidate_exports_exactly_its_public_api() -> None:
    assert gateway.candidate.__all__ == [
        "Change",
        "Example",
        "RecordedCaller",
        "ReplayError",
        "ReplayReport",
        "ShadowPolicy",
        "Skipped",
        "caller_from_record",
        "replay",
    ]
