"""The immutable parts a policy is made of, and the `Decision` it produces."""

from __future__ import annotations

from dataclasses import dataclass
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
class Grant:
    """A time-boxed grant of access to models for an organisation (and optionally subjects).

    The window is `not_before` inclusive to `not_after` exclusive.
    `nationality_exception` holds the exception's reason when the grant carries one.
    """

    id: str
    organisation: str
    subjects: frozenset[str]
    models: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    purpose: str
    approvers: tuple[str, ...]
    nationality_exception: str | None = None
    origin: str = "file"


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


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of `decide()`: allow or deny, why, and what the caller is told."""

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
