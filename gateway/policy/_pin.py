"""The approver set, pinned outside the policy folder.

Approver keys are listed in the policy, beside the grants they approve, so whoever can
write the policy could add keys of their own and sign any grant. A settings file kept
by another party (`policy.approvers_sha256`) can pin the set: a policy whose approvers
hash otherwise does not load, at start or on reload. The digest covers each approver's
key id, organisation, public key and issuing authority, and `min_approvers`, so neither
a new key, nor a key moved to another organisation (to dodge the grantee's-own-approver
rule), nor a lowered threshold goes unseen.
"""

from __future__ import annotations

import base64
import hashlib

from ._errors import PolicyLoadError
from ._policy import Policy


def approver_set_digest(policy: Policy) -> str:
    """SHA-256 (hex) of the approver keys `policy` lists (in an order-free form) and of
    the number of them a grant needs."""
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
        for approver in policy.approvers.values()
    )
    lines.append(f"min_approvers\t{policy.settings.min_approvers}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def check_approver_pin(policy: Policy, pinned: str | None, where: str) -> None:
    """Refuse a policy whose approver set is not the pinned one (no pin: any set)."""
    if pinned is None:
        return
    actual = approver_set_digest(policy)
    if actual != pinned:
        raise PolicyLoadError(
            where,
            "approvers",
            None,
            f"the approver keys or min_approvers have changed: they hash to {actual}, while the"
            f" settings pin policy.approvers_sha256 {pinned}; a new approver set must be"
            " pinned in the settings before the policy that lists it can load",
        )
