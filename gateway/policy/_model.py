"""The immutable parts a policy is made of, and the `Decision` it produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

SuspensionDimension = Literal["model", "organisation", "subject", "country", "access_class"]


@dataclass(frozen=True, slots=True)
class Model:
    """A model as the policy knows it; `release_at` None means released from the start."""

    id: str
    access_class: str
    release_at: datetime | None
    description: str
    upstream: str | None = None


@dataclass(frozen=True, slots=True)
class CountryGroup:
    """A named, dated set of ISO 3166-1 alpha-2 codes and the regulation it comes from."""

    name: str
    effective_from: date
    source: str
    codes: frozenset[str]
    description: str = ""


@dataclass(frozen=True, slots=True)
class NationalityRule:
    """Nationality rule of an access class.

    `allow` and `deny` keep the entries as written (codes and group names);
    `allow_codes` (None: every country) and `deny_codes` are the flattened sets.
    """

    allow: tuple[str, ...] | None
    deny: tuple[str, ...]
    combine: Literal["all", "any"]
    missing: Literal["deny", "allow"]
    allow_codes: frozenset[str] | None
    deny_codes: frozenset[str]


@dataclass(frozen=True, slots=True)
class AccessClass:
    """A class of models sharing one nationality rule."""

    name: str
    description: str
    nationality: NationalityRule


@dataclass(frozen=True, slots=True)
class RoleRule:
    """A role is held by whoever has trusted `attribute` with a value in `values`.

    `sources` None: any source trusted for the attribute; otherwise only those.
    """

    role: str
    attribute: str
    values: frozenset[str]
    sources: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Approver:
    """A key that holds the approver role: its signatures may approve grants.

    `public_key` is the raw 32-byte Ed25519 key. A key listed with a certificate has the
    `authority` (approver CA id) that issued it, and counts only for a grant whose whole
    window lies between `not_valid_before` and `not_valid_after`.
    """

    id: str
    organisation: str
    public_key: bytes = field(repr=False)
    authority: str | None = None
    not_valid_before: datetime | None = None
    not_valid_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class GrantSignature:
    """An approver's Ed25519 signature over a grant's signing form (see `_approvals`)."""

    key_id: str
    signature: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Grant:
    """A time-boxed grant of access to models for an organisation (and optionally subjects).

    The window is `not_before` inclusive to `not_after` exclusive.
    `nationality_exception` holds the exception's reason when the grant carries one.
    `signatures` are the approvers' signatures as written. `digest` (SHA-256 hex of the
    signing form) and `approvals` (the key ids whose signatures count, sorted) are set
    by `approve_grant()`; every grant of a loaded policy has at least `min_approvers`.
    """

    id: str
    organisation: str
    subjects: frozenset[str]
    models: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    purpose: str
    nationality_exception: str | None = None
    origin: str = "file"
    quota: Quota | None = None
    signatures: tuple[GrantSignature, ...] = ()
    digest: str = ""
    approvals: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Suspension:
    """A kill switch on one `dimension` value, active from `since` (inclusive) to `until`.

    `origin` says where it came from: "file" (the policy directory) or "api" (the admin
    API, then `id` names it).
    """

    dimension: SuspensionDimension
    value: str
    reason: str
    since: datetime
    until: datetime | None = None
    origin: str = "file"
    id: str | None = None


ConflictRule = Literal["refuse", "allow"]


@dataclass(frozen=True, slots=True)
class Quota:
    """What a grant allows over its whole window: requests and tokens (None: no limit)."""

    requests: int | None = None
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests per minute per principal and per organisation (None: no limit);
    `organisations` overrides the organisation limit for the organisations it names."""

    principal_per_minute: int | None = None
    organisation_per_minute: int | None = None
    organisations: tuple[tuple[str, int], ...] = ()

    def for_organisation(self, organisation: str) -> int | None:
        """The per-minute limit of `organisation`."""
        for name, limit in self.organisations:
            if name == organisation:
                return limit
        return self.organisation_per_minute


@dataclass(frozen=True, slots=True)
class Settings:
    """Policy-wide settings.

    `subject_conflict` and `organisation_conflict` say what happens when two credentials
    of one request name different subjects, or assert different trusted organisations:
    ``refuse`` (the default: a 401 ``identity.conflict``) or ``allow``.
    """

    max_prerelease_lead: timedelta = timedelta(days=30)
    min_approvers: int = 2
    subject_conflict: ConflictRule = "refuse"
    organisation_conflict: ConflictRule = "refuse"
    rate_limits: RateLimits = RateLimits()


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of `decide()`: allow or deny, why, and what the caller is told.

    With `grant_id` come the grant's `grant_digest` and `grant_approvers` (the key ids
    whose signatures approved it), so a record proves which approved text it relied on.
    """

    allowed: bool
    reason: str
    status: int
    error_code: str | None
    rules: tuple[str, ...]
    grant_id: str | None
    grant_not_after: datetime | None
    obligations: tuple[str, ...]
    policy_version: str
    roles: frozenset[str]
    grant_digest: str | None = None
    grant_approvers: tuple[str, ...] = ()
