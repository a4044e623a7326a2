import gateway.policy


def test_exported_members_are_pinned() -> None:
    assert gateway.policy.__all__ == [
        "ACTIONS",
        "AccessClass",
        "ApprovalResult",
        "Approver",
        "CountryGroup",
        "Decision",
        "DynamicObjects",
        "Grant",
        "GrantApprovalError",
        "GrantSignature",
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
        "SignatureCheck",
        "Suspension",
        "approve_grant",
        "approver_set_digest",
        "check_approver_pin",
        "decide",
        "grant_digest",
        "grant_signing_form",
        "load_policy",
        "model_windows",
        "parse_grant",
        "parse_suspension",
        "sign_grant",
        "verify_grant_approvals",
        "visible_models",
    ]


def test_every_exported_member_exists() -> None:
    for name in gateway.policy.__all__:
        assert hasattr(gateway.policy, name), name
