"""Policy replay: decide recorded inference requests again under another policy and say
which outcomes would change.

A request is replayed when its record is a `request` on an inference route with a
principal and a model, decided by the policy (its reason is one of the policy's, or
`model.unrouted`: the policy allowed a model no upstream serves, and routing is not
replayed). The question is the recorded one: the principal rebuilt from its recorded
attributes and their sources, the recorded model, `model.invoke`, at the record's
`time`. An outcome is the decision, the reason and the grant served under; a change is
any difference. A request the policy allowed and a quota or rate limit then refused is
replayed too: unchanged while the new policy still allows it under the same grant (the
limit would apply as before), a change when it refuses it or serves it under another
grant (whose budget is another). Rate limits are not replayed: a raised limit changes
nothing here. Everything else is counted as not
replayed, with why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.candidate.principals import ReplayError, caller_from_record
from gateway.policy import Decision, Policy, decide

__all__ = ["Change", "Example", "ReplayReport", "Skipped", "replay"]

# The policy's reason codes (gateway/policy/_engine.py); anything else was decided by
# the gateway around the policy and is not the policy's to change.
_POLICY_REASONS = (
    "allow.",
    "model.unknown",
    "model.prerelease",
    "suspended.",
    "grant.",
    "nationality.",
    "policy.",
    "role.",
    "action.",
)
_UNROUTED = "model.unrouted"
# Refused after the policy allowed: by a grant's quota or a rate limit.
_LIMIT_REASONS = ("quota.", "rate_limited.")
NO_ROLES = "recorded without its asserted role attributes, which this policy's roles read"


@dataclass(frozen=True, slots=True)
class Example:
    """One affected request: where it is in the log and who asked for what, when."""

    index: int
    request_id: str | None
    time: str
    subject: str | None
    model: str | None


@dataclass(slots=True)
class Change:
    """Requests whose outcome goes from `old` to `new` (reason codes, with the grant in
    brackets when only the grant differs)."""

    old: str
    new: str
    old_decision: str
    new_decision: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass(slots=True)
class Skipped:
    """Records not replayed for one reason."""

    reason: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass(slots=True)
class ReplayReport:
    """What a replay found. `examined`: inference request records in the range;
    `replayed` of them were decided again, `changed` of those differently."""

    policy_version: str
    examined: int = 0
    replayed: int = 0
    changed: int = 0
    changes: dict[tuple[str, str], Change] = field(default_factory=dict)
    skipped: dict[str, Skipped] = field(default_factory=dict)
    recorded_policies: Counter[str] = field(default_factory=Counter)

    def sorted_changes(self) -> list[Change]:
        """The changes, most frequent first."""
        return sorted(self.changes.values(), key=lambda c: (-c.count, c.old, c.new))

    def to_json(self) -> dict[str, Any]:
        def example(e: Example) -> dict[str, Any]:
            return {
                "index": e.index,
                "request_id": e.request_id,
                "time": e.time,
                "subject": e.subject,
                "model": e.model,
            }

        return {
            "policy_version": self.policy_version,
            "examined": self.examined,
            "replayed": self.replayed,
            "unchanged": self.replayed - self.changed,
            "changed": self.changed,
            "changes": [
                {
                    "old_reason": c.old,
                    "new_reason": c.new,
                    "old_decision": c.old_decision,
                    "new_decision": c.new_decision,
                    "count": c.count,
                    "examples": [example(e) for e in c.examples],
                }
                for c in self.sorted_changes()
            ],
            "not_replayed": [
                {"reason": s.reason, "count": s.count, "examples": [example(e) for e in s.examples]}
                for s in sorted(self.skipped.values(), key=lambda s: -s.count)
            ],
            "recorded_policy_versions": dict(self.recorded_policies.most_common()),
        }


def replay(
    records: Iterable[tuple[int, Mapping[str, Any]]],
    policy: Policy,
    routes: frozenset[str],
    *,
    examples: int = 5,
) -> ReplayReport:
    """Decide each `(index, record)` again under `policy`; `routes` are the inference
    routes; at most `examples` examples are kept per change and per reason skipped."""
    report = ReplayReport(policy.version)
    roles_from_roles = any(rule.attribute == "role" for rule in policy.role_rules)
    for index, record in records:
        if record.get("kind") != "request" or record.get("route") not in routes:
            continue
        report.examined += 1
        found = _example(index, record)
        reason = record.get("reason")
        if not isinstance(reason, str):
            _skip(report, "the record has no reason", found, examples)
            continue
        if record.get("principal") is None or record.get("model") is None:
            _skip(report, f"no principal or model ({reason})", found, examples)
            continue
        limited = reason.startswith(_LIMIT_REASONS)
        if reason != _UNROUTED and not limited and not reason.startswith(_POLICY_REASONS):
            _skip(report, f"not decided by the policy ({reason})", found, examples)
            continue
        try:
            caller = caller_from_record(record["principal"])
            at = _time(record.get("time"))
            model = record["model"]
            if not isinstance(model, str):
                raise ReplayError("the recorded model is not a string")
        except ReplayError as exc:
            _skip(report, f"malformed record: {exc.reason}", found, examples)
            continue
        if not caller.roles_known and roles_from_roles:
            _skip(report, NO_ROLES, found, examples)
            continue
        report.replayed += 1
        report.recorded_policies[str(record.get("policy_version"))] += 1
        decision = decide(policy, caller.principal, "model.invoke", model, at)
        if limited and decision.allowed and decision.grant_id == record.get("grant_id"):
            continue  # allowed still, under the same grant: the limit refuses it as it did
        old = (str(record.get("decision")), reason, record.get("grant_id"))
        new = _outcome(decision, unrouted=reason == _UNROUTED)
        if old == new:
            continue
        report.changed += 1
        old_label, new_label = _labels(old, new)
        change = report.changes.setdefault(
            (old_label, new_label), Change(old_label, new_label, old[0], new[0])
        )
        change.count += 1
        if len(change.examples) < examples:
            change.examples.append(found)
    return report


def _outcome(decision: Decision, *, unrouted: bool) -> tuple[str, str, str | None]:
    if decision.allowed and unrouted:
        return "deny", _UNROUTED, None  # still allowed, and still served by no upstream
    return ("allow" if decision.allowed else "deny"), decision.reason, decision.grant_id


def _labels(old: tuple[str, str, Any], new: tuple[str, str, Any]) -> tuple[str, str]:
    if old[1] == new[1]:  # the same reason under another grant
        return f"{old[1]}[{old[2]}]", f"{new[1]}[{new[2]}]"
    return old[1], new[1]


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ReplayError("the recorded time is not a string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReplayError("the recorded time is not RFC 3339") from exc
    if moment.utcoffset() is None:
        raise ReplayError("the recorded time has no zone")
    return moment


def _example(index: int, record: Mapping[str, Any]) -> Example:
    principal = record.get("principal")
    subject = principal.get("subject") if isinstance(principal, Mapping) else None
    return Example(
        index,
        _maybe_text(record.get("request_id")),
        str(record.get("time")),
        _maybe_text(subject),
        _maybe_text(record.get("model")),
    )


def _maybe_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _skip(report: ReplayReport, reason: str, example: Example, examples: int) -> None:
    skipped = report.skipped.setdefault(reason, Skipped(reason))
    skipped.count += 1
    if len(skipped.examples) < examples:
        skipped.examples.append(example)
