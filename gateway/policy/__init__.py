"""Policy: may this caller do this, to this model, now? A pure core around `decide()`.

Load a policy directory with `load_policy()`, ask `decide()` (or `Policy.decide`) for a
`Decision`; `reload` swaps policies at run time. Errors: see `gateway.policy._errors`
(PolicyError -> PolicyLoadError).
"""

from ._dynamic import DynamicObjects, parse_grant, parse_suspension
from ._engine import ACTIONS, decide, visible_models
from ._errors import PolicyError, PolicyLoadError
from ._loader import load_policy
from ._model import (
    AccessClass,
    CountryGroup,
    Decision,
    Grant,
    Model,
    NationalityRule,
    RoleRule,
    Settings,
    Suspension,
)
from ._policy import Policy
from ._settings import PolicySettings
from ._windows import ModelWindow, model_windows
from .reload import PolicyHolder, PolicyWatcher, ReloadOutcome

__all__ = [
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
