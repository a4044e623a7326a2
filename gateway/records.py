"""The audit records the request path writes: what each field holds is in docs/audit.md.

Pure functions from what the stages produced to JSON-ready dicts; the audit log adds the
index, canonicalises and appends.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.identity import Principal
from gateway.policy import Decision, Policy

if TYPE_CHECKING:  # only a type here; importing the proxy would load aiohttp for every CLI
    from gateway.proxy import ForwardResult


def timestamp(now: float) -> str:
    """RFC 3339 UTC with microseconds, as every record's `time`."""
    second = int(now // 1)
    micro = round((now - second) * 1e6)
    if micro == 1_000_000:
        second, micro = second + 1, 0
    return f"{_second(second)}.{micro:06d}Z"


@functools.lru_cache(maxsize=8)
def _second(second: int) -> str:
    # Formatting the date is most of the cost, and it changes once a second.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class PrincipalRecords:
    """The recorded form of principals, kept for repeat callers under the same policy.

    Bounded: when full it starts again, so a flood of distinct callers costs memory
    once, not forever.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._cache: dict[tuple[Principal, str, frozenset[str]], dict[str, Any]] = {}

    def get(self, principal: Principal, policy: Policy, roles: frozenset[str]) -> dict[str, Any]:
        key = (principal, policy.version, roles)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= self.size:
                self._cache.clear()
            found = self._cache[key] = principal_json(principal, policy, roles)
        return found


def principal_json(principal: Principal, policy: Policy, roles: frozenset[str]) -> dict[str, Any]:
    """The principal as recorded: every attribute with its source and whether it was trusted."""

    def attributes(name: str) -> list[dict[str, Any]]:
        return [
            {"value": a.value, "source": a.source, "trusted": policy.is_trusted(a)}
            for a in sorted(principal.attributes)
            if a.name == name
        ]

    organisations = [a["value"] for a in attributes("organisation") if a["trusted"]]
    return {
        "subject": principal.subject,
        "issuer": principal.issuer,
        "organisation": organisations[0] if len(organisations) == 1 else None,
        "organisations": attributes("organisation"),
        "roles": sorted(roles),
        # The asserted `role` attributes, as the others: what `policy replay` needs to
        # derive the roles again under another policy.
        "role_attributes": attributes("role"),
        "nationalities": attributes("nationality"),
        "residences": attributes("residence"),
        "auth_methods": sorted(principal.auth_methods),
        "certificate_fingerprint": principal.certificate_fingerprint,
        "credentials": [
            {"source": c.source, "subject": c.subject} for c in sorted(principal.credentials)
        ],
    }


def request_record(
    *,
    now: float,
    request_id: str,
    route: str,
    client_address: str | None,
    principal: dict[str, Any] | None,
    model: str | None,
    decision: Decision | None,
    reason: str,
    status: int | None,
    request_digest: str | None,
    upstream_request_digest: str | None = None,
    request_bytes: int = 0,
    policy_version: str | None = None,
    kind: str = "request",
    query: str | None = None,
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A request (or auth_failure) record, written before anything is forwarded.

    `status` is the status the gateway answers with when it refuses the request itself;
    for an allowed request it is null and the completion record carries the outcome.
    `shadow` is the shadow policy's differing outcome, if any (docs/audit.md).
    """
    return {
        "kind": kind,
        "time": timestamp(now),
        "request_id": request_id,
        "route": route,
        "query": query,
        "client_address": client_address,
        "principal": principal,
        "model": model,
        "decision": "allow" if decision is not None and decision.allowed else "deny",
        "reason": reason,
        "rules": list(decision.rules) if decision is not None else [],
        "grant_id": decision.grant_id if decision is not None else None,
        "grant_digest": decision.grant_digest if decision is not None else None,
        "grant_approvers": list(decision.grant_approvers) if decision is not None else [],
        "obligations": list(decision.obligations) if decision is not None else [],
        "policy_version": decision.policy_version if decision is not None else policy_version,
        "request_digest": request_digest,
        "upstream_request_digest": upstream_request_digest,
        "request_bytes": request_bytes,
        "status": status,
        "shadow": shadow,
    }


def completion_record(
    *,
    now: float,
    request_id: str,
    request_index: int,
    route: str,
    model: str,
    result: ForwardResult,
    latency_us: int,
) -> dict[str, Any]:
    """The outcome of a forwarded request, written after the response ended."""
    return {
        "kind": "completion",
        "time": timestamp(now),
        "request_id": request_id,
        "request_index": request_index,
        "route": route,
        "model": model,
        "status": result.status,
        "upstream_status": result.upstream_status,
        "error": result.error,
        "usage": result.usage.to_json() if result.usage is not None else None,
        "latency_us": latency_us,
        "upstream_latency_us": result.upstream_latency_us,
        "response_bytes": result.response_bytes,
        "response_digest": result.response_digest,
        "stream": result.stream,
    }


def event_record(now: float, kind: str, **fields: Any) -> dict[str, Any]:
    """A record of an operator or auditor action, or of a policy reload."""
    return {"kind": kind, "time": timestamp(now), **fields}
