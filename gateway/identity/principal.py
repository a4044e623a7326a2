"""The caller as the gateway sees it: one immutable `Principal` per request.

Every attribute keeps the source that asserted it (`oidc:<issuer id>` or `ca:<CA id>`),
so that the policy can use an attribute only when its source is trusted for it (and
only within the values it is trusted for). Every verified credential of the request
is kept too, with the subject it names, so that the policy can refuse two credentials
that disagree about who is calling.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

AttributeName = Literal["organisation", "role", "nationality", "residence"]


@dataclass(frozen=True, slots=True, order=True)
class Attribute:
    """One asserted attribute value and the source that asserted it."""

    name: AttributeName
    value: str
    source: str


@dataclass(frozen=True, slots=True, order=True)
class Credential:
    """One verified credential of the request: its source and the subject it names."""

    source: str
    subject: str


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    `subject` and `issuer` come from the credential that authenticated the caller
    (the token's `sub`/`iss`, or the certificate's subject and CA id).
    `attributes` holds everything asserted about the caller, trusted or not; the
    policy decides which sources it trusts for which attribute. `credentials` holds one
    entry per verified credential (a token, a certificate, or both).
    """

    subject: str
    issuer: str
    attributes: frozenset[Attribute] = field(default_factory=frozenset)
    auth_methods: frozenset[str] = field(default_factory=frozenset)
    certificate_fingerprint: str | None = None
    token_id: str | None = None
    credentials: frozenset[Credential] = field(default_factory=frozenset)

    def values(
        self, name: AttributeName, trusted_sources: Iterable[str] | None = None
    ) -> frozenset[str]:
        """The values of attribute `name`, optionally only those from `trusted_sources`."""
        if trusted_sources is None:
            return frozenset(a.value for a in self.attributes if a.name == name)
        trusted = frozenset(trusted_sources)
        return frozenset(a.value for a in self.attributes if a.name == name and a.source in trusted)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view with nothing secret in it (used by /v1/whoami and audit)."""
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "attributes": [
                {"name": a.name, "value": a.value, "source": a.source}
                for a in sorted(self.attributes)
            ],
            "auth_methods": sorted(self.auth_methods),
            "certificate_fingerprint": self.certificate_fingerprint,
            "credentials": [
                {"source": c.source, "subject": c.subject} for c in sorted(self.credentials)
            ],
        }
