"""What a caller may know about the models open to them: release dates and grant windows.

Pure, like `decide()`: only models the caller may use now appear, so nothing is said
about a model they may not see (not even that it exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ._engine import decide
from ._model import Grant

if TYPE_CHECKING:
    from gateway.identity.principal import Principal

    from ._policy import Policy


@dataclass(frozen=True, slots=True)
class ModelWindow:
    """A model the caller may use now, its public `release_at` (None: released from the
    start), and the pre-release grant it is served under (None: no grant needed)."""

    model: str
    release_at: datetime | None
    grant: Grant | None


def model_windows(policy: Policy, principal: Principal, now: datetime) -> list[ModelWindow]:
    """One `ModelWindow` per model `principal` may invoke at `now`, by model id.

    The same models as `visible_models`; empty on any error (fail closed).
    """
    try:
        grants = {grant.id: grant for grant in policy.grants}
        windows = []
        for model_id, model in policy.models.items():
            decision = decide(policy, principal, "model.invoke", model_id, now)
            if not decision.allowed:
                continue
            grant = grants[decision.grant_id] if decision.grant_id is not None else None
            windows.append(ModelWindow(model_id, model.release_at, grant))
        return sorted(windows, key=lambda window: window.model)
    except Exception:  # noqa: BLE001 - fail closed: list nothing rather than too much
        return []
