"""Reading approver keys, approver CAs and grant signatures from the policy files.

Two list sections of the policy::

    approver_authorities:          # optional: CAs whose certificates name approvers
      - id: corp-approvers
        certificate: |             # the CA certificate, PEM
          -----BEGIN CERTIFICATE-----
          ...
    approvers:
      - id: chief-scientist        # the key id signatures name
        organisation: Example AI Labs
        public_key: ed25519:<base64 of the 32-byte public key>
      - id: general-counsel
        certificate: |             # or a certificate issued by an approver authority;
          -----BEGIN CERTIFICATE-----   # its subject O is the organisation
          ...

and in each grant::

    signatures:
      - key_id: chief-scientist
        signature: <base64 of the 64-byte Ed25519 signature>

A signature that cannot be read (not base64, wrong length) is an error naming its
line; one that is readable but does not count is judged by `verify_grant_approvals`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from ._approvals import ApprovalResult
from ._errors import PolicyLoadError
from ._model import Approver, Grant, GrantSignature
from ._yaml import Node

PUBLIC_KEY_PREFIX = "ed25519:"
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")


def encode_public_key(raw: bytes) -> str:
    """The text form of a raw Ed25519 public key: ``ed25519:<base64>``."""
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def _strict_base64(text: str, size: int) -> bytes:
    """Decode standard base64 of exactly `size` bytes, refusing any other spelling."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64") from exc
    if len(raw) != size:
        raise ValueError(f"decodes to {len(raw)} bytes, not {size}")
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("is not in canonical base64 form")
    return raw


def decode_public_key(text: str) -> bytes:
    """The raw 32 bytes of ``ed25519:<base64>``; ValueError if malformed."""
    if not text.startswith(PUBLIC_KEY_PREFIX):
        raise ValueError(f"must start with {PUBLIC_KEY_PREFIX}")
    return _strict_base64(text[len(PUBLIC_KEY_PREFIX) :], 32)


def encode_signature(raw: bytes) -> str:
    """The text form of a signature: standard base64."""
    return base64.b64encode(raw).decode("ascii")


def decode_signature(text: str) -> bytes:
    """The raw 64 bytes of a base64 Ed25519 signature; ValueError if malformed."""
    return _strict_base64(text, 64)


def load_authorities(nodes: list[Node]) -> dict[str, x509.Certificate]:
    """The approver CAs by id; each must be a CA certificate."""
    authorities: dict[str, x509.Certificate] = {}
    for node in nodes:
        node.reject_unknown("id", "certificate", "description")
        authority_id = _identifier(node, "id")
        if authority_id in authorities:
            node.fail("id", f"duplicate approver authority id {authority_id!r}")
        certificate = _certificate(node)
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        except x509.ExtensionNotFound:
            node.fail("certificate", "is not a CA certificate (no basicConstraints)")
        if not constraints.value.ca:
            node.fail("certificate", "is not a CA certificate (basicConstraints CA is false)")
        authorities[authority_id] = certificate
    return authorities


def load_approvers(
    nodes: list[Node], authorities: dict[str, x509.Certificate]
) -> dict[str, Approver]:
    """The approver keys by key id. A key id or a public key listed twice is an error:
    one person must never count twice under two names."""
    approvers: dict[str, Approver] = {}
    owners: dict[bytes, str] = {}
    for node in nodes:
        node.reject_unknown("id", "organisation", "public_key", "certificate", "description")
        key_id = _identifier(node, "id")
        if key_id in approvers:
            node.fail("id", f"duplicate approver key id {key_id!r}")
        if node.has("public_key") == node.has("certificate"):
            node.fail(None, "give exactly one of public_key or certificate")
        if node.has("public_key"):
            organisation: str = node.string("organisation")
            try:
                public_key = decode_public_key(node.string("public_key"))
                Ed25519PublicKey.from_public_bytes(public_key)
            except ValueError as exc:
                node.fail("public_key", f"not an Ed25519 public key: {exc}")
            approver = Approver(key_id, organisation, public_key)
        else:
            approver = _certified(node, key_id, authorities)
        if approver.public_key in owners:
            node.fail(
                "public_key" if node.has("public_key") else "certificate",
                f"the same key is already listed as approver {owners[approver.public_key]!r}",
            )
        owners[approver.public_key] = key_id
        approvers[key_id] = approver
    return approvers


def _identifier(node: Node, name: str) -> str:
    value: str = node.string(name)
    if not KEY_ID.fullmatch(value):
        node.fail(name, "ids are letters, digits, '.', '_', '@', '-' (at most 128)")
    return value


def _certificate(node: Node) -> x509.Certificate:
    text: str = node.string("certificate")
    try:
        return x509.load_pem_x509_certificate(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        node.fail("certificate", "is not a PEM certificate")


def _certified(node: Node, key_id: str, authorities: dict[str, x509.Certificate]) -> Approver:
    certificate = _certificate(node)
    key = certificate.public_key()
    if not isinstance(key, Ed25519PublicKey):
        node.fail("certificate", "must certify an Ed25519 key")
    issuer_id = next(
        (
            authority_id
            for authority_id, authority in authorities.items()
            if _issued_by(certificate, authority)
        ),
        None,
    )
    if issuer_id is None:
        node.fail("certificate", "is not issued by any of approver_authorities")
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        if constraints.value.ca:
            node.fail("certificate", "is a CA certificate, not an approver's")
    except x509.ExtensionNotFound:
        pass
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        if not usage.value.digital_signature:
            node.fail("certificate", "its key usage does not allow digital signatures")
    except x509.ExtensionNotFound:
        pass
    names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if len(names) != 1:
        node.fail("certificate", "its subject must name exactly one organisation (O)")
    organisation = str(names[0].value)
    if node.has("organisation") and node.string("organisation") != organisation:
        node.fail("organisation", f"differs from the certificate's organisation {organisation!r}")
    authority = authorities[issuer_id]
    return Approver(
        id=key_id,
        organisation=organisation,
        public_key=key.public_bytes(Encoding.Raw, PublicFormat.Raw),
        authority=issuer_id,
        not_valid_before=max(certificate.not_valid_before_utc, authority.not_valid_before_utc),
        not_valid_after=min(certificate.not_valid_after_utc, authority.not_valid_after_utc),
    )


def _issued_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    if certificate.issuer != authority.subject:
        return False
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def read_signatures(node: Node) -> tuple[GrantSignature, ...]:
    """The `signatures` of a grant node; a malformed one is an error naming its line."""
    signatures = []
    for item in node.nodes("signatures"):
        item.reject_unknown("key_id", "signature")
        key_id: str = item.string("key_id")
        try:
            raw = decode_signature(item.string("signature"))
        except ValueError as exc:
            item.fail("signature", f"not an Ed25519 signature: it {exc}")
        signatures.append(GrantSignature(key_id, raw))
    return tuple(signatures)


@dataclass(frozen=True, slots=True)
class GrantReport:
    """Where a grant is written (`file`, `line`, the line of each signature) and what
    `verify_grant_approvals` found: for `gateway grant verify` and `grant sign`."""

    grant: Grant
    file: str
    line: int
    signature_lines: tuple[int, ...]
    result: ApprovalResult


def signature_lines(node: Node) -> tuple[int, ...]:
    """The line of each signature of a grant node."""
    return tuple(item.line() for item in node.nodes("signatures"))


def approval_error(node: Node, result: ApprovalResult) -> PolicyLoadError:
    """The load error for a grant without enough approvals: at the first signature that
    does not count, else at `signatures`, else at the grant; the message lists every
    signature that does not count, with its line, and how many are missing."""
    lines = signature_lines(node)
    message = result.describe(lines)
    failing = [check for check in result.checks if not check.counts]
    if failing:
        index = failing[0].index
        key = f"{node.key('signatures')}[{index}]"
        return PolicyLoadError(node.file, key, lines[index], message)
    return PolicyLoadError(node.file, node.key("signatures"), node.line("signatures"), message)
