"""C2SP tlog-cosignature: the gateway's cosignatures against the spec written out in the
test (tests/witness/spec.py), and the quorum check of `witnessed_by`."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit import NoteError, NoteSigner
from gateway.audit.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    attach_cosignatures,
    generate_cosigner,
    note_parts,
    witnessed_by,
)
from gateway.audit.note import open_checkpoint
from tests.witness import spec

TEXT = "gateway.test/audit\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@given(
    timestamp=st.integers(min_value=0, max_value=(1 << 63) - 1),
    size=st.integers(min_value=0, max_value=(1 << 63) - 1),
)
def test_a_cosignature_verifies_under_the_spec(timestamp: int, size: int) -> None:
    signer = generate_cosigner("witness.test/w1")
    text = f"gateway.test/audit\n{size}\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    line = signer.cosign(text, timestamp)
    name, public = spec.public_key_of(signer.verifier.to_string())
    assert spec.cosignature_timestamp(text, line, name, public) == timestamp


def test_the_key_id_uses_signature_type_4_not_the_log_key_type_1() -> None:
    signer = generate_cosigner("witness.test/w1")
    public = signer.verifier.public_key
    assert signer.verifier.key_id == spec.key_id("witness.test/w1", 0x04, public)
    assert signer.verifier.key_id != spec.key_id("witness.test/w1", 0x01, public)


def test_a_cosignature_made_by_the_spec_verifies_in_the_gateway() -> None:
    key = Ed25519PrivateKey.generate()
    line = spec.cosign(TEXT, "witness.test/w2", key, 1679315147)
    verifier = CosignatureVerifier("witness.test/w2", _raw(key))
    assert verifier.verify(TEXT, line).timestamp == 1679315147


@pytest.mark.parametrize(
    "change",
    [
        lambda text, line: (text.replace("20852163", "20852164"), line),
        lambda text, line: (text + "extension line\n", line),
        lambda text, line: (text, _retimed(line, +1)),
        lambda text, line: (text, line[:-10] + ("A" if line[-10] != "A" else "B") + line[-9:]),
    ],
    ids=["another size", "an extension line", "another timestamp", "a changed signature"],
)
def test_a_cosignature_over_anything_else_fails(change: object) -> None:
    signer = generate_cosigner("witness.test/w1")
    text, line = change(TEXT, signer.cosign(TEXT, 1700000000))  # type: ignore[operator]
    with pytest.raises(NoteError):
        signer.verifier.verify(text, line)
    name, public = spec.public_key_of(signer.verifier.to_string())
    assert spec.cosignature_timestamp(text, line, name, public) is None


def _retimed(line: str, delta: int) -> str:
    dash, name, encoded = line[:-1].split(" ")
    blob = bytearray(base64.b64decode(encoded))
    stamp = int.from_bytes(blob[4:12], "big") + delta
    blob[4:12] = stamp.to_bytes(8, "big")
    return f"{dash} {name} {base64.b64encode(bytes(blob)).decode()}\n"


def test_keys_round_trip_and_refuse_the_log_key_type() -> None:
    signer = generate_cosigner("witness.test/w1")
    assert CosignatureSigner.from_string(signer.to_string()).verifier.to_string() == (
        signer.verifier.to_string()
    )
    assert CosignatureVerifier.from_string(signer.verifier.to_string()).key_id == (
        signer.verifier.key_id
    )
    log_key = NoteSigner("witness.test/w1", b"\x01" * 32)
    with pytest.raises(NoteError, match="type 0x04"):
        CosignatureVerifier.from_string(log_key.verifier.to_string())
    with pytest.raises(NoteError, match="type 0x04"):
        CosignatureSigner.from_string(log_key.to_string())


def test_a_timestamp_beyond_2_to_the_63_is_never_signed() -> None:
    with pytest.raises(NoteError):
        generate_cosigner("witness.test/w1").cosign(TEXT, 1 << 63)


def test_a_cosigned_checkpoint_still_opens_with_the_log_key() -> None:
    log = NoteSigner("gateway.test/audit", b"\x02" * 32)
    text = "gateway.test/audit\n5\n" + base64.b64encode(b"\x00" * 32).decode() + "\n"
    note = log.sign(text)
    witness = generate_cosigner("witness.test/w1")
    cosigned = attach_cosignatures(note, [witness.cosign(text, 1700000000)])
    assert open_checkpoint(cosigned, log.verifier).tree_size == 5
    assert note_parts(cosigned) == (text, [*note_parts(note)[1], witness.cosign(text, 1700000000)])
    assert attach_cosignatures(cosigned, [witness.cosign(text, 1700000000)]) == cosigned


def test_a_quorum_counts_distinct_witness_keys_and_ignores_unknown_ones() -> None:
    first, second, stranger = (generate_cosigner(f"witness.test/w{i}") for i in (1, 2, 3))
    lines = [first.cosign(TEXT, 1), first.cosign(TEXT, 2), stranger.cosign(TEXT, 3)]
    found = witnessed_by(TEXT, lines, [first.verifier, second.verifier])
    assert [w.name for w in found] == ["witness.test/w1"]
    lines.append(second.cosign(TEXT, 4))
    assert len(witnessed_by(TEXT, lines, [first.verifier, second.verifier])) == 2


def test_one_key_under_two_names_is_one_witness() -> None:
    seed = b"\x07" * 32
    alias_a, alias_b = CosignatureSigner("a.test/w", seed), CosignatureSigner("b.test/w", seed)
    lines = [alias_a.cosign(TEXT, 1), alias_b.cosign(TEXT, 1)]
    assert len(witnessed_by(TEXT, lines, [alias_a.verifier, alias_b.verifier])) == 1


def test_a_bad_cosignature_by_a_listed_witness_fails_the_whole_check() -> None:
    witness = generate_cosigner("witness.test/w1")
    forged = witness.cosign(TEXT.replace("20852163", "1"), 5)
    with pytest.raises(NoteError, match="does not verify"):
        witnessed_by(TEXT, [witness.cosign(TEXT, 5), forged], [witness.verifier])


def test_a_cosignature_from_the_future_can_be_refused() -> None:
    witness = generate_cosigner("witness.test/w1")
    with pytest.raises(NoteError, match="future"):
        witnessed_by(TEXT, [witness.cosign(TEXT, 2000)], [witness.verifier], not_after=1999)
