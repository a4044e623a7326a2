"""The caller of a recorded request, rebuilt from its record for deciding again.

A request record's `principal` keeps every asserted attribute with its source
(`organisations`, `nationalities`, `residences`, `role_attributes`: lists of `{value,
source, trusted}`), so a policy can decide again from the same assertions, trusting the
sources it trusts. `trusted` is what the recording policy thought and is not used.
Records written before `role_attributes` existed lack the asserted roles; the rebuilt
caller says so (`roles_known`), and replay does not guess them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.identity.principal import Attribute, AttributeName, Principal

__all__ = ["RecordedCaller", "ReplayError", "caller_from_record"]

_ATTRIBUTES: tuple[tuple[str, AttributeName], ...] = (
    ("organisations", "organisation"),
    ("nationalities", "nationality"),
    ("residences", "residence"),
    ("role_attributes", "role"),
)


class ReplayError(Exception):
    """A record cannot be replayed as written; `reason` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class RecordedCaller:
    """The rebuilt `principal`; `roles_known` is False for a record without its asserted
    `role` attributes."""

    principal: Principal
    roles_known: bool


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ReplayError(f"the recorded {what} is not a string")
    return value


def caller_from_record(recorded: Mapping[str, Any]) -> RecordedCaller:
    """The caller a request record's `principal` describes; ReplayError if malformed."""
    attributes: set[Attribute] = set()
    roles_known = True
    for key, name in _ATTRIBUTES:
        items = recorded.get(key)
        if items is None and key == "role_attributes":
            roles_known = False
            continue
        if not isinstance(items, list):
            raise ReplayError(f"the recorded principal has no list {key}")
        for item in items:
            if not isinstance(item, Mapping):
                raise ReplayError(f"an entry of {key} is not an object")
            attributes.add(
                Attribute(name, _text(item.get("value"), key), _text(item.get("source"), key))
            )
    methods = recorded.get("auth_methods") or []
    fingerprint = recorded.get("certificate_fingerprint")
    principal = Principal(
        subject=_text(recorded.get("subject"), "subject"),
        issuer=_text(recorded.get("issuer"), "issuer"),
        attributes=frozenset(attributes),
        auth_methods=frozenset(_text(method, "auth method") for method in methods),
        certificate_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
    )
    return RecordedCaller(principal, roles_known)
