"""The public surface of gateway.telemetry is pinned: changing it is a deliberate act."""

import gateway.telemetry


def test_all_lists_exactly_the_public_api() -> None:
    assert gateway.telemetry.__all__ == [
        "MULTIPROCESS_VARIABLE",
        "OTHER",
        "PUBLISH_INTERVAL",
        "STAGES",
        "STAGE_BUCKETS",
        "AuditStoreCollector",
        "BoundedLabel",
        "MetricsListener",
        "MetricsSettings",
        "MultiprocessDirectory",
        "RequestView",
        "Sources",
        "Telemetry",
        "TracingSettings",
        "policy_organisations",
    ]


def test_every_exported_name_exists() -> None:
    for name in gateway.telemetry.__all__:
        assert getattr(gateway.telemetry, name) is not None
