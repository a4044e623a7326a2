"""Grant approvals: a grant loads only with a threshold of approver signatures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.jcs import canonicalize, parse_canonical
from gateway.policy import (
    Approver,
    Grant,
    GrantApprovalError,
    GrantSignature,
    Policy,
    PolicyLoadError,
    Settings,
    approve_grant,
    decide,
    grant_digest,
    grant_signing_form,
    load_policy,
    sign_grant,
    verify_grant_approvals,
)
from gateway.policy._approvals import SIGNED_FIELDS, VerifiedSignatures
from gateway.policy._approvers import encode_signature
from gateway.policy._loader import load_policy_pausing
from gateway.policy._model import Quota

from .conftest import EXAMPLE, LAB, TEST_APPROVERS, at, person, sign_file

GRANT_ID = "caisi-muse-spark-2-eval"
INSIDE = at("2026-12-20T00:00:00Z")


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture(scope="module")
def approvers(approver_keys: dict[str, Ed25519PrivateKey]) -> dict[str, Approver]:
    return {
        key_id: Approver(key_id, TEST_APPROVERS[key_id], raw(key))
        for key_id, key in approver_keys.items()
    }


def base_grant() -> Grant:
    return Grant(
        id="g-1",
        organisation="US CAISI",
        subjects=frozenset({"evaluator-1", "evaluator-2"}),
        models=("muse-spark-2",),
        not_before=datetime(2026, 12, 20, tzinfo=UTC),
        not_after=datetime(2026, 12, 24, tzinfo=UTC),
        purpose="evaluation",
    )


def signed(grant: Grant, keys: dict[str, Ed25519PrivateKey], *key_ids: str) -> Grant:
    return dataclasses.replace(
        grant, signatures=tuple(sign_grant(grant, key_id, keys[key_id]) for key_id in key_ids)
    )


# -- the signing form ---------------------------------------------------------------------


def test_the_signing_form_is_rfc_8785_of_the_grant_object() -> None:
    grant = dataclasses.replace(base_grant(), nationality_exception="licence on file")
    form = grant_signing_form(grant)
    assert form == (
        b'{"grantee":{"organisation":"US CAISI","subjects":["evaluator-1","evaluator-2"]},'
        b'"id":"g-1","models":["muse-spark-2"],'
        b'"nationality_exception":{"reason":"licence on file"},'
        b'"not_after":"2026-12-24T00:00:00Z","not_before":"2026-12-20T00:00:00Z",'
        b'"purpose":"evaluation"}'
    )
    assert canonicalize(parse_canonical(form)) == form
    assert grant_digest(grant) == hashlib.sha256(form).hexdigest()


def test_the_example_grant_digest_is_that_of_its_signing_form(example: Policy) -> None:
    (grant,) = example.grants
    assert json.loads(grant_signing_form(grant)) == {
        "grantee": {"organisation": "US CAISI"},
        "id": GRANT_ID,
        "models": ["muse-spark-2"],
        "not_after": "2027-01-08T00:00:00Z",
        "not_before": "2026-12-16T16:00:00Z",
        "purpose": "pre-release national security evaluation",
    }
    assert grant.digest == grant_digest(grant)
    assert grant.approvals == ("chief-scientist", "general-counsel")


def test_every_grant_field_is_signed_or_is_the_approval_itself() -> None:
    # A field added to Grant must be added to the signing form, or named here on purpose.
    approval = {"signatures", "digest", "approvals"}
    # Where the grant came from (a file or the admin API) is not part of what was approved.
    approval.add("origin")
    assert {f.name for f in dataclasses.fields(Grant)} == set(SIGNED_FIELDS) | approval


# -- what counts ---------------------------------------------------------------------------


def test_signatures_of_two_distinct_approvers_approve(
    approver_keys: dict[str, Ed25519PrivateKey], approvers: dict[str, Approver]
) -> None:
    grant = signed(base_grant(), approver_keys, "lab-approver-1", "lab-approver-2")
    result = verify_grant_approvals(grant, approvers, Settings())
    assert result.approved
    assert result.approved_by == ("lab-approver-1", "lab-approver-2")
    approved = approve_grant(grant, approvers, Settings())
    assert (approved.digest, approved.approvals) == (grant_digest(grant), result.approved_by)


def test_two_signatures_by_one_key_count_once(
    approver_keys: dict[str, Ed25519PrivateKey], approvers: dict[str, Approver]
) -> None:
    grant = signed(base_grant(), approver_keys, "lab-approver-1", "lab-approver-1")
    result = verify_grant_approvals(grant, approvers, Settings())
    assert [check.reason for check in result.checks] == ["counted", "duplicate_key"]
    assert not result.approved
    with pytest.raises(GrantApprovalError) as caught:
        approve_grant(grant, approvers, Settings())
    assert caught.value.result == result


def test_one_key_under_two_ids_counts_once(
    approver_keys: dict[str, Ed25519PrivateKey], approvers: dict[str, Approver]
) -> None:
    # The loader refuses such a list; the function does not rely on it.
    alias = Approver("alias", LAB, approvers["lab-approver-1"].public_key)
    grant = base_grant()
    grant = dataclasses.replace(
        grant,
        signatures=(
            sign_grant(grant, "lab-approver-1", approver_keys["lab-approver-1"]),
            sign_grant(grant, "alias", approver_keys["lab-approver-1"]),
        ),
    )
    result = verify_grant_approvals(grant, {**approvers, "alias": alias}, Settings())
    assert [check.reason for check in result.checks] == ["counted", "duplicate_key"]


def test_a_signature_by_a_key_that_is_not_an_approver_does_not_count(
    approver_keys: dict[str, Ed25519PrivateKey], approvers: dict[str, Approver]
) -> None:
    stranger = Ed25519PrivateKey.generate()
    grant = base_grant()
    grant = dataclasses.replace(
        grant,
        signatures=(
            sign_grant(grant, "lab-approver-1", approver_keys["lab-approver-1"]),
            sign_grant(grant, "stranger", stranger),
            # A stranger's signature claiming an approver's key id does not verify.
            sign_grant(grant, "lab-approver-2", stranger),
        ),
    )
    result = verify_grant_approvals(grant, approvers, Settings())
    assert [check.reason for check in result.checks] == [
        "counted",
        "unknown_key",
        "invalid_signature",
    ]
    assert not result.approved


@pytest.mark.parametrize("spelling", ["US CAISI", "us caisi", "  US   CAISI "])
def test_an_approver_of_the_grantee_organisation_does_not_count(
    approver_keys: dict[str, Ed25519PrivateKey], approvers: dict[str, Approver], spelling: str
) -> None:
    caisi = Approver("caisi-approver", spelling, approvers["caisi-approver"].public_key)
    own = {**approvers, "caisi-approver": caisi}
    grant = signed(base_grant(), approver_keys, "caisi-approver", "lab-approver-1")
    result = verify_grant_approvals(grant, own, Settings())
    assert [check.reason for check in result.checks] == ["grantee_organisation", "counted"]
    assert not result.approved


def test_the_threshold_is_min_approvers(
    approver_keys: dict[str, Ed25519PrivateKey], approvers: dict[str, Approver]
) -> None:
    grant = signed(base_grant(), approver_keys, "lab-approver-1", "other-approver")
    assert verify_grant_approvals(grant, approvers, Settings(min_approvers=2)).approved
    three = verify_grant_approvals(grant, approvers, Settings(min_approvers=3))
    assert not three.approved
    assert "1 more signature is needed, from distinct approver keys" in three.describe()


def test_a_certified_approver_counts_only_while_its_certificate_is_valid(
    approver_keys: dict[str, Ed25519PrivateKey],
) -> None:
    key = approver_keys["lab-approver-1"]
    window = base_grant()
    certified = Approver(
        "lab-approver-1",
        LAB,
        raw(key),
        authority="lab-approvers",
        not_valid_before=window.not_before - timedelta(days=1),
        not_valid_after=window.not_after - timedelta(seconds=1),
    )
    grant = signed(window, approver_keys, "lab-approver-1")
    result = verify_grant_approvals(grant, {"lab-approver-1": certified}, Settings())
    assert [check.reason for check in result.checks] == ["outside_validity"]
    longer = dataclasses.replace(certified, not_valid_after=window.not_after)
    result = verify_grant_approvals(grant, {"lab-approver-1": longer}, Settings(min_approvers=1))
    assert result.approved


# -- edits of signed fields (property) -------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)
_instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
)


@st.composite
def _edits(draw: st.DrawFn) -> dict[str, object]:
    """A change of one signed field to a different value."""
    name = draw(st.sampled_from(SIGNED_FIELDS))
    grant = base_grant()
    current = getattr(grant, name)
    if name == "subjects":
        value: object = draw(st.frozensets(_text, max_size=3).filter(lambda v: v != current))
    elif name == "models":
        value = draw(
            st.lists(_text, min_size=1, max_size=3).filter(lambda v: set(v) != set(current))
        )
        value = tuple(value)  # type: ignore[arg-type]
    elif name in ("not_before", "not_after"):
        value = draw(_instants.filter(lambda v: v != current))
    elif name == "nationality_exception":
        value = draw(st.none() | _text)
        if value is None:
            return {name: "licence"}  # from none to one
    elif name == "quota":
        requests = draw(st.none() | st.integers(1, 10**9))
        tokens = draw(
            st.integers(1, 10**9) if requests is None else st.none() | st.integers(1, 10**9)
        )
        value = Quota(requests=requests, tokens=tokens)
    else:
        value = draw(_text.filter(lambda v: v != current))
    return {name: value}


@settings(max_examples=200, deadline=None)
@given(edit=_edits())
def test_any_edit_of_a_signed_field_voids_every_signature(
    approver_keys: dict[str, Ed25519PrivateKey],
    approvers: dict[str, Approver],
    edit: dict[str, object],
) -> None:
    keys = {key_id: approver_keys[key_id] for key_id in ("lab-approver-1", "lab-approver-2")}
    original = signed(base_grant(), keys, *keys)
    assert verify_grant_approvals(original, approvers, Settings()).approved
    edited = dataclasses.replace(original, **edit)  # type: ignore[arg-type]
    result = verify_grant_approvals(edited, approvers, Settings())
    assert result.approved_by == ()
    assert {check.reason for check in result.checks} == {"invalid_signature"}
    assert grant_digest(edited) != grant_digest(original)


@settings(max_examples=50, deadline=None)
@given(models=st.permutations(["muse-spark-2", "muse-1"]), hours=st.integers(-12, 12))
def test_a_change_of_spelling_but_not_of_meaning_keeps_the_signatures(
    approver_keys: dict[str, Ed25519PrivateKey],
    approvers: dict[str, Approver],
    models: list[str],
    hours: int,
) -> None:
    keys = {key_id: approver_keys[key_id] for key_id in ("lab-approver-1", "lab-approver-2")}
    grant = dataclasses.replace(base_grant(), models=("muse-1", "muse-spark-2"))
    original = signed(grant, keys, *keys)
    zone = timezone(timedelta(hours=hours))
    respelled = dataclasses.replace(
        original,
        models=tuple(models),
        not_before=original.not_before.astimezone(zone),
        not_after=original.not_after.astimezone(zone),
    )
    assert verify_grant_approvals(respelled, approvers, Settings()).approved


# -- loading -------------------------------------------------------------------------------


def test_a_grant_edited_after_signing_does_not_load(policy_dir: Path) -> None:
    grants = policy_dir / "grants.yaml"
    text = grants.read_text()
    grants.write_text(text.replace("pre-release national security", "pre-release general"))
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    error = caught.value
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines, 1) if "key_id: chief-scientist" in line)
    assert (error.file, error.key, error.line) == (str(grants), "grants[0].signatures[0]", first)
    assert f"grant {GRANT_ID} has 0 of the 2 approvals it needs" in error.message
    assert f"signatures[1] (line {first + 2}) key general-counsel: does not verify" in (
        error.message
    )


def test_an_edit_that_keeps_the_meaning_keeps_the_grant(policy_dir: Path) -> None:
    grants = policy_dir / "grants.yaml"
    text = grants.read_text()
    respelled = text.replace("2027-01-08T00:00:00Z", '"2027-01-08T01:00:00+01:00"  # an hour on')
    grants.write_text("# reviewed again\n" + respelled)
    (grant,) = load_policy(policy_dir).grants
    assert grant.approvals == ("chief-scientist", "general-counsel")


def test_a_grant_signed_by_its_own_organisation_does_not_load(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> None:
    grants = policy_dir / "grants.yaml"
    text = grants.read_text()
    grants.write_text(text[: text.index("    signatures:")])
    sign_file(grants, approver_keys, ("caisi-approver", "lab-approver-1"))
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert "key caisi-approver: belongs to the grantee organisation US CAISI" in (
        caught.value.message
    )
    assert caught.value.key == "grants[0].signatures[0]"


def test_an_approver_listed_twice_under_two_ids_is_refused(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> None:
    text = (policy_dir / "approvers-test.yaml").read_text()
    first = text.splitlines()[1:4]
    alias = "\n".join(first).replace("lab-approver-1", "lab-approver-1-again")
    (policy_dir / "approvers-test.yaml").write_text(text + alias + "\n")
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    # Keys are numbered per file, as every list item is.
    assert caught.value.key == f"approvers[{len(approver_keys)}].public_key"
    assert caught.value.file == str(policy_dir / "approvers-test.yaml")
    assert "already listed as approver 'lab-approver-1'" in caught.value.message


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("{id: x, organisation: O, public_key: ed25519:AAAA}", "public_key", "decodes to 3"),
        ("{id: x, organisation: O, public_key: AAAA}", "public_key", "must start with"),
        ("{id: x, organisation: O}", None, "exactly one of public_key or certificate"),
        ("{id: 'x/../y', organisation: O, public_key: k}", "id", "ids are letters"),
        ("{id: x, organisation: O, certificate: nope}", "certificate", "not a PEM"),
    ],
)
def test_a_malformed_approver_names_its_line(
    policy_dir: Path, entry: str, key: str | None, message: str
) -> None:
    (policy_dir / "more-approvers.yaml").write_text(f"approvers:\n  - {entry}\n")
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert caught.value.file == str(policy_dir / "more-approvers.yaml")
    assert caught.value.line == 2
    assert caught.value.key == "approvers[0]" + (f".{key}" if key else "")
    assert message in caught.value.message


def test_a_decision_under_a_grant_cites_its_digest_and_approvers(example: Policy) -> None:
    decision = decide(example, person("US CAISI", ("US",)), "model.invoke", "muse-spark-2", INSIDE)
    (grant,) = example.grants
    assert (decision.reason, decision.grant_id) == ("allow.grant", GRANT_ID)
    assert decision.grant_digest == grant_digest(grant)
    assert decision.grant_approvers == ("chief-scientist", "general-counsel")
    released = decide(example, person("US CAISI", ("US",)), "model.invoke", "muse-1", INSIDE)
    assert (released.grant_digest, released.grant_approvers) == (None, ())


def test_adding_a_signature_changes_the_policy_version(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> None:
    before = load_policy(policy_dir).version
    sign_file(policy_dir / "grants.yaml", approver_keys, ("other-approver",))
    after = load_policy(policy_dir)
    assert after.version != before
    assert after.grants[0].approvals == ("chief-scientist", "general-counsel", "other-approver")


def test_the_committed_example_loads_with_its_own_signatures() -> None:
    (grant,) = load_policy(EXAMPLE).grants
    assert [s.key_id for s in grant.signatures] == ["chief-scientist", "general-counsel"]
    assert isinstance(grant.signatures[0], GrantSignature)
    assert encode_signature(grant.signatures[0].signature) in (EXAMPLE / "grants.yaml").read_text()


# -- signatures verified by an earlier load ----------------------------------------------


def test_a_remembered_signature_is_trusted_only_for_the_same_key_and_message(
    approver_keys: dict[str, Ed25519PrivateKey],
) -> None:
    key = approver_keys["lab-approver-1"]
    message = grant_signing_form(base_grant())
    signature = key.sign(message)
    verified = VerifiedSignatures()
    assert verified.verifies(raw(key), signature, message)
    assert not verified.verifies(raw(key), signature, message + b" ")
    assert not verified.verifies(raw(approver_keys["lab-approver-2"]), signature, message)
    assert not verified.verifies(raw(key), signature[:-1], signature[-1:] + message)
    assert len(verified) == 1


def test_a_reload_keeps_only_the_signatures_in_use(
    policy_dir: Path, approver_keys: dict[str, Ed25519PrivateKey]
) -> None:
    verified = VerifiedSignatures()
    first = load_policy_pausing(policy_dir, lambda: None, verified)
    assert len(verified) == 2
    assert load_policy_pausing(policy_dir, lambda: None, verified).version == first.version
    grants = policy_dir / "grants.yaml"
    text = grants.read_text().replace("2027-01-08T00:00:00Z", "2027-01-07T00:00:00Z")
    grants.write_text(text[: text.index("    signatures:")])
    sign_file(grants, approver_keys, ("lab-approver-1", "lab-approver-2"))
    load_policy_pausing(policy_dir, lambda: None, verified)
    assert len(verified) == 2  # the two old entries are gone


def test_remembered_signatures_never_approve_an_edited_grant(policy_dir: Path) -> None:
    verified = VerifiedSignatures()
    load_policy_pausing(policy_dir, lambda: None, verified)
    grants = policy_dir / "grants.yaml"
    grants.write_text(grants.read_text().replace("purpose: pre-release", "purpose: early"))
    with pytest.raises(PolicyLoadError):
        load_policy_pausing(policy_dir, lambda: None, verified)


@pytest.mark.parametrize(
    ("key_ids", "problem"),
    [
        (
            ("lab-approver-1", "lab-approver-1"),
            "signatures[1] (line 12) key lab-approver-1: this key already counted once",
        ),
        (
            ("lab-approver-1", "stranger"),
            "signatures[1] (line 12) key stranger: is not an approver key of this policy",
        ),
        (
            ("caisi-approver", "lab-approver-1"),
            "signatures[0] (line 10) key caisi-approver: "
            "belongs to the grantee organisation US CAISI",
        ),
    ],
)
def test_a_grant_without_two_approvals_that_count_does_not_load(
    policy_dir: Path,
    approver_keys: dict[str, Ed25519PrivateKey],
    key_ids: tuple[str, str],
    problem: str,
) -> None:
    keys = {**approver_keys, "stranger": Ed25519PrivateKey.generate()}
    grant = base_grant()
    lines = [
        "grants:",
        "  - id: g-1",
        "    grantee: {organisation: US CAISI, subjects: [evaluator-1, evaluator-2]}",
        "    models: [muse-spark-2]",
        "    not_before: 2026-12-20T00:00:00Z",
        "    not_after: 2026-12-24T00:00:00Z",
        "    purpose: evaluation",
        "    # written by hand: `gateway grant sign` refuses signatures that do not count",
        "    signatures:",
    ]
    for key_id in key_ids:
        signature = encode_signature(sign_grant(grant, key_id, keys[key_id]).signature)
        lines += [f"      - key_id: {key_id}", f"        signature: {signature}"]
    (policy_dir / "more-grants.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(PolicyLoadError) as caught:
        load_policy(policy_dir)
    assert caught.value.file == str(policy_dir / "more-grants.yaml")
    assert "grant g-1 has 1 of the 2 approvals it needs" in caught.value.message
    assert problem in caught.value.message
