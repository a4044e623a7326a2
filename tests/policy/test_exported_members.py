import gateway.policy


def test_exported_members_are_pinned() -> None:
    assert gateway.policy.__all__ == [
        "ACTIONS",
        "AccessClass",
        "CountryGroup",
        "Decision",
        "DynamicObjects",
        "Grant",
        "Model",
        "ModelWindow",
        "NationalityRule",
        "Policy",
        "PolicyError",
        "PolicyHolder",
        "PolicyLoadError",
        "PolicySettings",
        "PolicyWatcher",
        "ReloadOutcome",
        "RoleRule",
        "Settings",
        "Suspension",
        "decide",
        "load_policy",
        "model_windows",
        "parse_grant",
        "parse_suspension",
        "visible_models",
    ]


def test_every_exported_member_exists() -> None:
    for name in gateway.policy.__all__:
        assert hasattr(gateway.policy, name), name
