"""The add-checkpoint wire format (c2sp.org/tlog-witness): what is written parses back,
and every size line that is not ASCII decimal without leading zeros is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.witness import ProtocolError, format_add_checkpoint, parse_add_checkpoint
from gateway.witness.protocol import parse_size

NOTE = (
    "gateway.test/audit\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    "\n\u2014 gateway.test/audit AAAA\n"
)


@given(
    old=st.integers(min_value=0, max_value=(1 << 63) - 1),
    proof=st.lists(st.binary(min_size=32, max_size=32), max_size=63),
)
def test_a_request_parses_back_to_what_was_written(old: int, proof: list[bytes]) -> None:
    parsed = parse_add_checkpoint(format_add_checkpoint(old, proof, NOTE))
    assert (parsed.old_size, list(parsed.proof), parsed.note) == (old, proof, NOTE)


def test_the_example_request_of_the_spec_parses() -> None:
    body = (
        "old 20852014\n"
        "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
        "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
        "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
        "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
        "\n"
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URY"
        "N7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    ).encode()
    parsed = parse_add_checkpoint(body)
    assert parsed.old_size == 20852014
    assert len(parsed.proof) == 4
    assert parsed.note.startswith("example.com/behind-the-sofa\n20852163\n")


def test_more_than_63_proof_lines_are_never_written() -> None:
    with pytest.raises(ProtocolError):
        format_add_checkpoint(1, [b"\x00" * 32] * 64, NOTE)


_NOT_DECIMAL = st.one_of(
    st.text(min_size=1).filter(lambda t: not (t.isascii() and t.isdigit()) and "\n" not in t),
    st.integers(min_value=0, max_value=999).map(lambda n: "0" + str(n)),
    st.just(""),
)


@given(size=_NOT_DECIMAL)
def test_an_old_size_that_is_not_plain_decimal_is_refused(size: str) -> None:
    with pytest.raises(ProtocolError):
        parse_add_checkpoint(f"old {size}\n\n{NOTE}".encode())


@given(size=_NOT_DECIMAL)
def test_a_409_size_that_is_not_plain_decimal_is_refused(size: str) -> None:
    with pytest.raises(ProtocolError):
        parse_size(f"{size}\n".encode())


@pytest.mark.parametrize("body", [b"8", b"8\n\n", b"8\r\n", b" 8\n", b"\xff\n"])
def test_a_409_body_must_be_one_newline_terminated_size(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_size(body)
