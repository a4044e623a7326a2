"""The approver set, pinned outside the policy folder.

Approver keys are listed in the policy, beside the grants they approve, so whoever can
write the policy could add keys of their own and sign any grant. A settings file kept
by another party (`policy.approvers_sha256`) can pin the set: a policy whose approvers
hash otherwise does not load, at start or on reload. The digest covers each approver's
key id, organisation, public key and issuing authority, so neither a new key nor a key
moved to another organisation (to dodge the grantee's-own-approver rule) goes unseen.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from ._errors import PolicyLoadError
from ._model import Approver


def approver_set_digest(approvers: Iterable[Approver]) -> str:
    """SHA-256 (hex) of the approver keys a policy lists, in an order-free form."""
    lines = sorted(
        "\t".join(
            (
                approver.id,
                approver.organisation,
                base64.b64encode(approver.public_key).decode(),
                approver.authority or "",
            )
        )
        + "\n"
        for approver in approvers
    )
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_approver_pin(approvers: Iterable[Approver], pinned: str | None, where: str) -> None:
    """Refuse a policy whose approver set is not the pinned one (no pin: any set)."""
    if pinned is None:
        return
    actual = approver_set_digest(approvers)
    if actual != pinned:
        raise PolicyLoadError(
            where,
            "approvers",
            None,
            f"the approver keys have changed: their set hashes to {actual}, while the"
            f" settings pin policy.approvers_sha256 {pinned}; a new approver set must be"
            " pinned in the settings before the policy that lists it can load",
        )
