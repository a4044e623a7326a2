"""Shadow mode: a candidate policy decided beside the live one on every inference
request, never enforced.

The request path asks `ShadowPolicy.compare` after the live decision; when the
candidate's outcome (decision, reason, grant) differs, the answer becomes the request
record's `shadow` field and the difference is counted. The candidate is reloaded like
the live policy (file changes, SIGHUP) into its own holder; a request uses the
candidate that was current when it was compared. Suspensions, grants and revocations
made through the admin API apply to the candidate as they do to the live policy (set
`overlay`), so only what differs between the policy files shows as a difference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.identity import Principal
from gateway.logs import get_logger
from gateway.policy import Decision, Policy, PolicyHolder, decide

__all__ = ["ShadowPolicy"]

_UNROUTED = "model.unrouted"


class ShadowPolicy:
    """The candidate policy and what comparing it found.

    `evaluations`: inference requests compared; `differences`: those whose candidate
    outcome differed, also by `(live reason, candidate reason)` in `by_outcome` (for
    metrics).
    """

    def __init__(self, policy: Policy, *, logger: Any = None) -> None:
        self.holder = PolicyHolder(policy)
        self.logger = logger or get_logger()
        # The run-time objects' version and how to lay them over a file policy.
        self.overlay: tuple[Callable[[], str], Callable[[Policy], Policy]] | None = None
        self._effective: tuple[tuple[str, str], Policy] | None = None
        self.evaluations = 0
        self.differences = 0
        self.by_outcome: Counter[tuple[str, str]] = Counter()

    def counts(self) -> tuple[int, Counter[tuple[str, str]]]:
        """Requests compared, and the differences by (live reason, candidate reason)."""
        return self.evaluations, self.by_outcome

    def compare(
        self,
        principal: Principal,
        model: str,
        now: datetime,
        live: Decision,
        *,
        routed: bool,
    ) -> dict[str, Any] | None:
        """The `shadow` record field when the candidate decides otherwise than `live`
        (the live decision as enforced), else None. `routed`: an upstream serves `model`,
        so a candidate that allows an unrouted model still refuses it as the live path
        does. Never raises: the candidate must never affect the live path."""
        try:
            return self._compare(principal, model, now, live, routed)
        except Exception as exc:  # noqa: BLE001 - never enforced, so never a failure
            self.logger.error("shadow.error", error=type(exc).__name__)
            return None

    def _compare(
        self, principal: Principal, model: str, now: datetime, live: Decision, routed: bool
    ) -> dict[str, Any] | None:
        candidate = self._candidate()
        decision = decide(candidate, principal, "model.invoke", model, now)
        allowed, reason, grant = decision.allowed, decision.reason, decision.grant_id
        if allowed and not routed:
            allowed, reason, grant = False, _UNROUTED, None
        self.evaluations += 1
        if (allowed, reason, grant) == (live.allowed, live.reason, live.grant_id):
            return None
        self.differences += 1
        self.by_outcome[(live.reason, reason)] += 1
        return {
            "policy_version": candidate.version,
            "decision": "allow" if allowed else "deny",
            "reason": reason,
            "grant_id": grant,
        }

    def _candidate(self) -> Policy:
        """The candidate with the run-time objects, rebuilt only when either changes."""
        candidate = self.holder.current
        if self.overlay is None:
            return candidate
        version, apply = self.overlay
        key = (candidate.version, version())
        if key[1] == "":
            return candidate
        if self._effective is None or self._effective[0] != key:
            self._effective = (key, apply(candidate))
        return self._effective[1]
