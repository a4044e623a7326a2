"""Policy: may this caller do this, to this model, now? A pure core around `decide()`.

Load a policy directory with `load_policy()`, ask `decide()` (or `Policy.decide`) for a
`Decision`; `reload` swaps policies at run time. A grant counts only with enough approver
signatures: `verify_grant_approvals()` says which count, `approve_grant()` stamps a grant
that has them. Errors: see `gateway.policy._errors` (PolicyError -> PolicyLoadError,
GrantApprovalError).
"""

from ._approvals import (
    ApprovalResult,
    SignatureCheck,
    approve_grant,
    grant_digest,
    grant_signing_form,
    sign_grant,
    verify_grant_approvals,
)
from ._dynamic import DynamicObjects, parse_grant, parse_suspension
from ._engine import ACTIONS, decide, visible_models
from ._errors import GrantApprovalError, PolicyError, PolicyLoadError
from ._loader import load_policy
from ._model import (
    AccessClass,
    Approver,
    CountryGroup,
    Decision,
    Grant,
    GrantSignature,
    Model,
    NationalityRule,
    RoleRule,
    Settings,
    Suspension,
)
from ._pin import approver_set_digest, check_approver_pin
from ._policy import Policy
from ._settings import PolicySettings
from ._windows import ModelWindow, model_windows
from .reload import PolicyHolder, PolicyWatcher, ReloadOutcome

__all__ = [
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
