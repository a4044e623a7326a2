from pathlib import Path

import pytest

from gateway.audit import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    format_checkpoint,
    open_checkpoint,
    open_note,
    parse_checkpoint,
)
from gateway.audit.note import generate_signer, read_note_file

# The published example of golang.org/x/mod/sumdb/note (its documentation and tests).
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
    "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signing_reproduces_the_go_reference_note_byte_for_byte() -> None:
    assert NoteSigner.from_string(GO_SIGNER).sign(GO_TEXT) == GO_TEXT + "\n" + GO_SIGNATURE


def test_key_strings_round_trip_in_the_go_format() -> None:
    signer = NoteSigner.from_string(GO_SIGNER)
    assert signer.to_string() == GO_SIGNER
    assert signer.verifier.to_string() == GO_VERIFIER
    assert NoteVerifier.from_string(GO_VERIFIER).to_string() == GO_VERIFIER


def test_go_reference_note_opens_with_its_verifier_key() -> None:
    verifier = NoteVerifier.from_string(GO_VERIFIER)
    assert open_note(GO_TEXT + "\n" + GO_SIGNATURE, verifier) == GO_TEXT


def test_checkpoint_signed_here_verifies_with_the_verifier_key_string() -> None:
    signer = generate_signer("log.test/a")
    checkpoint = Checkpoint("log.test/a", 42, bytes(range(32)))
    note = signer.sign(format_checkpoint(checkpoint))
    verifier = NoteVerifier.from_string(signer.verifier.to_string())
    assert checkpoint == open_checkpoint(note, verifier)


def test_checkpoint_text_is_origin_size_and_base64_root() -> None:
    text = format_checkpoint(Checkpoint("log.test/a", 7, b"\x00" * 32))
    assert text == "log.test/a\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    assert Checkpoint("log.test/a", 7, b"\x00" * 32) == parse_checkpoint(text)


@pytest.fixture
def signed() -> tuple[NoteSigner, str]:
    signer = generate_signer("log.test/a")
    return signer, signer.sign(format_checkpoint(Checkpoint("log.test/a", 42, b"\x01" * 32)))


def test_altered_text_is_rejected(signed: tuple[NoteSigner, str]) -> None:
    signer, note = signed
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note.replace("\n42\n", "\n43\n"), signer.verifier)


def test_altered_signature_is_rejected(signed: tuple[NoteSigner, str]) -> None:
    signer, note = signed
    head, _, encoded = note.rstrip("\n").rpartition(" ")
    flipped = encoded[:10] + ("A" if encoded[10] != "A" else "B") + encoded[11:]
    with pytest.raises(NoteError):
        open_note(f"{head} {flipped}\n", signer.verifier)


def test_another_key_with_the_same_name_is_rejected(signed: tuple[NoteSigner, str]) -> None:
    _, note = signed
    with pytest.raises(NoteError, match="not signed by the given key"):
        open_note(note, generate_signer("log.test/a").verifier)


def test_checkpoint_whose_origin_differs_from_the_key_name_is_rejected() -> None:
    signer = generate_signer("log.test/a")
    note = signer.sign(format_checkpoint(Checkpoint("log.test/other", 1, b"\x01" * 32)))
    with pytest.raises(NoteError, match="origin"):
        open_checkpoint(note, signer.verifier)


@pytest.mark.parametrize(
    "key",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpjZHBzPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
    ],
)
def test_malformed_verifier_keys_are_rejected(key: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_string(key)


@pytest.mark.parametrize(
    "text",
    [
        "log\n",
        "log\n01\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "log\n1\nAAAA\n",
        "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(text)


def test_signer_repr_hides_the_key() -> None:
    signer = NoteSigner.from_string(GO_SIGNER)
    assert "AYEK" not in repr(signer)


def test_a_note_file_loses_only_what_no_signer_wrote(tmp_path: Path) -> None:
    signer = generate_signer("example.test/log")
    note = signer.sign("example.test/log\n3\n" + "A" * 43 + "=\n")
    path = tmp_path / "note"
    for saved in (note + "\n\n", note.replace("\n", "\r\n"), "\ufeff" + note, note[:-1] + " \t"):
        path.write_bytes(saved.encode())
        assert read_note_file(path) == note
        assert open_note(read_note_file(path), signer.verifier) == note[: note.index("\n\n") + 1]
    path.write_bytes(b"\xff\xfe not UTF-8")
    with pytest.raises(NoteError, match="not UTF-8"):
        read_note_file(path)
