"""Grant approvals: a grant counts only with a threshold of approver signatures.

The model is TUF's role metadata: the policy lists the keys that hold the approver
role (`Approver`), and a grant is valid only with signatures from at least
`min_approvers` distinct approver keys. Pure: no I/O, no clock.

**What is signed.** The grant's signing form: the RFC 8785 canonical JSON
(`gateway.jcs`) of the grant object built from its validated fields, every field of
the grant except its signatures::

    {"grantee": {"organisation": "US CAISI", "subjects": ["evaluator-1"]},
     "id": "caisi-muse-spark-2-eval",
     "models": ["muse-spark-2"],
     "nationality_exception": {"reason": "export licence on file"},
     "not_after": "2027-01-08T00:00:00Z",
     "not_before": "2026-12-16T16:00:00Z",
     "purpose": "pre-release national security evaluation"}

`subjects` and `models` are sets, written sorted and without repeats; `subjects` and
`nationality_exception` appear only when the grant has them; instants are UTC, written
``YYYY-MM-DDTHH:MM:SSZ`` (with ``.ffffff`` when they have fractions of a second).
YAML comments, layout, key order, quoting and the time zone an instant is written in
change nothing; any change of meaning changes the form and invalidates every
signature. The grant's digest is the SHA-256 of its signing form.

**What counts.** A signature counts when its key is a listed approver, the approver
does not belong to the grantee organisation (compared ignoring case and runs of
spaces), a certificate-backed approver's certificate is valid over the whole grant
window, the Ed25519 signature verifies over the signing form, and no earlier
counting signature came from the same public key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.jcs import canonicalize

from ._errors import GrantApprovalError
from ._model import Approver, Grant, GrantSignature, Settings

# The Grant fields the signing form carries; every other field is about the approval.
SIGNED_FIELDS = (
    "id",
    "organisation",
    "subjects",
    "models",
    "not_before",
    "not_after",
    "purpose",
    "nationality_exception",
    "quota",
)

COUNTED = "counted"
UNKNOWN_KEY = "unknown_key"
GRANTEE_ORGANISATION = "grantee_organisation"
OUTSIDE_VALIDITY = "outside_validity"
INVALID_SIGNATURE = "invalid_signature"
DUPLICATE_KEY = "duplicate_key"


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def grant_object(grant: Grant) -> dict[str, Any]:
    """The grant as the JSON object its approvers sign (without signatures)."""
    grantee: dict[str, Any] = {"organisation": grant.organisation}
    if grant.subjects:
        grantee["subjects"] = sorted(grant.subjects)
    value: dict[str, Any] = {
        "id": grant.id,
        "grantee": grantee,
        "models": sorted(set(grant.models)),
        "not_before": _instant(grant.not_before),
        "not_after": _instant(grant.not_after),
        "purpose": grant.purpose,
    }
    if grant.nationality_exception is not None:
        value["nationality_exception"] = {"reason": grant.nationality_exception}
    if grant.quota is not None:
        quota = {"requests": grant.quota.requests, "tokens": grant.quota.tokens}
        value["quota"] = {name: limit for name, limit in quota.items() if limit is not None}
    return value


def grant_signing_form(grant: Grant) -> bytes:
    """The bytes an approver signs: RFC 8785 canonical JSON of `grant_object(grant)`."""
    return canonicalize(grant_object(grant))


def grant_digest(grant: Grant) -> str:
    """SHA-256 (hex) of the grant's signing form: what decisions and records cite."""
    return hashlib.sha256(grant_signing_form(grant)).hexdigest()


def sign_grant(grant: Grant, key_id: str, private_key: Ed25519PrivateKey) -> GrantSignature:
    """Approver `key_id`'s signature over the grant's signing form."""
    return GrantSignature(key_id, private_key.sign(grant_signing_form(grant)))


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """What became of signature number `index` of a grant: whether it `counts`, and
    `reason`: counted, unknown_key, grantee_organisation, outside_validity,
    invalid_signature or duplicate_key."""

    index: int
    key_id: str
    counts: bool
    reason: str
    organisation: str | None = None

    def describe(self) -> str:
        """One phrase for people, e.g. ``key general-counsel: does not verify ...``."""
        return f"key {self.key_id}: {_REASONS[self.reason].format(self)}"


_REASONS = {
    COUNTED: "counts (approver of {0.organisation})",
    UNKNOWN_KEY: "is not an approver key of this policy",
    GRANTEE_ORGANISATION: "belongs to the grantee organisation {0.organisation}",
    OUTSIDE_VALIDITY: "its certificate is not valid for the whole grant window",
    INVALID_SIGNATURE: "does not verify (the grant changed after it was signed, or the "
    "signature is not over this grant)",
    DUPLICATE_KEY: "this key already counted once",
}


@dataclass(frozen=True, slots=True)
class ApprovalResult:
    """The outcome of `verify_grant_approvals`: the grant's `digest`, the approvals it
    needs (`required`), the key ids that count (`approved_by`, sorted) and one
    `SignatureCheck` per signature, in order."""

    grant_id: str
    digest: str
    required: int
    approved_by: tuple[str, ...]
    checks: tuple[SignatureCheck, ...]

    @property
    def approved(self) -> bool:
        """Whether enough distinct approver keys signed."""
        return len(self.approved_by) >= self.required

    def describe(self, lines: tuple[int, ...] = ()) -> str:
        """One sentence: the approvals the grant has, what is wrong with each signature
        that does not count (with its line, when `lines` gives them), how many are missing."""
        head = (
            f"grant {self.grant_id} has {len(self.approved_by)} of the {self.required} "
            "approvals it needs"
        )
        problems = []
        for check in self.checks:
            if not check.counts:
                where = f" (line {lines[check.index]})" if check.index < len(lines) else ""
                problems.append(f"signatures[{check.index}]{where} {check.describe()}")
        missing = self.required - len(self.approved_by)
        if not self.checks:
            problems.append("it has no signatures (sign it with `gateway grant sign`)")
        elif missing > 0:
            problems.append(
                f"{missing} more signature{'s are' if missing > 1 else ' is'} needed, from "
                "distinct approver keys outside the grantee organisation"
            )
        return f"{head}: {'; '.join(problems)}" if problems else head


def _organisation(name: str) -> str:
    return " ".join(name.casefold().split())


def _verifies(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


class VerifiedSignatures:
    """Signatures already found valid, so that reloading an unchanged policy does not
    verify them all again (an Ed25519 verification costs about 100 us; a policy with
    10,000 grants holds 20,000 signatures or more).

    Entries are SHA-256 of (public key, signature, signed bytes): only the very same
    key, signature and message are taken on trust. `verifies` records what it sees;
    `keep_seen()` after a successful load forgets everything that load did not use,
    so the memory follows the policy in force. Not thread-safe: one load at a time.
    """

    __slots__ = ("_known", "_seen")

    def __init__(self) -> None:
        self._known: set[bytes] = set()
        self._seen: set[bytes] = set()

    def verifies(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        """Whether `signature` by `public_key` verifies over `message`."""
        framed = (len(public_key).to_bytes(4, "big"), public_key, len(signature).to_bytes(4, "big"))
        entry = hashlib.sha256(b"".join((*framed, signature, message))).digest()
        if entry in self._known or entry in self._seen:
            self._seen.add(entry)
            return True
        if not _verifies(public_key, signature, message):
            return False
        self._seen.add(entry)
        return True

    def keep_seen(self) -> None:
        """Keep only the entries the last load used."""
        self._known, self._seen = self._seen, set()

    def __len__(self) -> int:
        return len(self._known | self._seen)


def verify_grant_approvals(
    grant: Grant,
    approvers: Mapping[str, Approver],
    settings: Settings,
    verified: VerifiedSignatures | None = None,
) -> ApprovalResult:
    """Check every signature of `grant` against the approver keys (by key id) and the
    threshold `settings.min_approvers`. Pure; never raises for a bad signature.
    `verified`, if given, remembers valid signatures across loads."""
    verifies = verified.verifies if verified is not None else _verifies
    message = grant_signing_form(grant)
    grantee = _organisation(grant.organisation)
    counted_keys: set[bytes] = set()
    approved_by: list[str] = []
    checks: list[SignatureCheck] = []
    for index, signature in enumerate(grant.signatures):
        approver = approvers.get(signature.key_id)
        if approver is None:
            reason = UNKNOWN_KEY
        elif _organisation(approver.organisation) == grantee:
            reason = GRANTEE_ORGANISATION
        elif (
            approver.not_valid_before is not None and grant.not_before < approver.not_valid_before
        ) or (approver.not_valid_after is not None and grant.not_after > approver.not_valid_after):
            reason = OUTSIDE_VALIDITY
        elif not verifies(approver.public_key, signature.signature, message):
            reason = INVALID_SIGNATURE
        elif approver.public_key in counted_keys:
            reason = DUPLICATE_KEY
        else:
            reason = COUNTED
            counted_keys.add(approver.public_key)
            approved_by.append(approver.id)
        checks.append(
            SignatureCheck(
                index=index,
                key_id=signature.key_id,
                counts=reason == COUNTED,
                reason=reason,
                organisation=approver.organisation if approver is not None else None,
            )
        )
    return ApprovalResult(
        grant_id=grant.id,
        digest=hashlib.sha256(message).hexdigest(),
        required=settings.min_approvers,
        approved_by=tuple(sorted(approved_by)),
        checks=tuple(checks),
    )


def approve_grant(grant: Grant, approvers: Mapping[str, Approver], settings: Settings) -> Grant:
    """`grant` with its `digest` and `approvals` set, if enough approvers signed it;
    otherwise GrantApprovalError carrying the `ApprovalResult`."""
    result = verify_grant_approvals(grant, approvers, settings)
    if not result.approved:
        raise GrantApprovalError(result)
    return replace(grant, digest=result.digest, approvals=result.approved_by)
