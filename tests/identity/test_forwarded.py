"""Forwarded client certificates: the strict XFCC grammar and the URL-encoded PEM format.

The named tests are the inputs found in review and their relatives; the properties
cover the grammar: what is accepted round-trips to the same certificate, no accepted
value carries two certificates, every duplicated key is refused, and no fragment
slipped into an Envoy-written header makes it name another certificate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.identity import AuthenticationError
from gateway.identity._forwarded import (
    parse_forwarded_certificate,
    parse_xfcc,
    quote_value,
)
from tests.identity.conftest import Pki


def _der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(Encoding.DER)


def _encoded(path: Path) -> str:
    return quote(path.read_text(), safe="")


def _hash(path: Path) -> str:
    return hashlib.sha256(_der(path)).hexdigest()


def _refused(value: str | bytes, header_format: str = "xfcc") -> bool:
    raw = value.encode("latin-1") if isinstance(value, str) else value
    try:
        parse_forwarded_certificate(raw, header_format)
    except AuthenticationError as exc:
        reason = exc.reason
    else:
        return False
    assert reason == "cert.malformed"
    return True


def _leaf(value: str) -> bytes:
    return parse_forwarded_certificate(value.encode("latin-1"), "xfcc")[0]


def _envoy(pki: Pki, who: Path, *, uri: str = "spiffe://client", chain: bool = False) -> str:
    """A header as Envoy writes it with SANITIZE_SET (By, Hash, Cert, [Chain], Subject, URI)."""
    parts = [f"By=spiffe://proxy;Hash={_hash(who)}", f'Cert="{_encoded(who)}"']
    if chain:
        parts.append(f'Chain="{quote(who.read_text() + pki.agency.read_text(), safe="")}"')
    parts += ['Subject="CN=someone,O=US CAISI"', f"URI={uri}"]
    return ";".join(parts)


# -- what Envoy writes is accepted ----------------------------------------------------------


def test_an_envoy_header_gives_its_certificate(pki: Pki) -> None:
    assert _leaf(_envoy(pki, pki.alice)) == _der(pki.alice)


def test_chain_starting_with_the_cert_gives_the_whole_chain(pki: Pki) -> None:
    chain = parse_forwarded_certificate(_envoy(pki, pki.alice, chain=True).encode(), "xfcc")

    assert chain == (_der(pki.alice), _der(pki.agency))


def test_chain_alone_gives_its_first_certificate_as_the_leaf(pki: Pki) -> None:
    value = f'Chain="{quote(pki.alice.read_text() + pki.agency.read_text(), safe="")}"'

    assert _leaf(value) == _der(pki.alice)


@pytest.mark.parametrize(
    "extra",
    [
        "DNS=a.example;DNS=b.example",  # one DNS pair per DNS SAN, as Envoy writes them
        "URI=",  # Envoy writes an empty URI when the certificate has none
        'Subject=""',
        "X-Custom=anything-unquoted",
        'x-note="quoted; with, delimiters = inside \\"and escapes\\""',
    ],
)
def test_well_formed_extra_pairs_are_ignored(pki: Pki, extra: str) -> None:
    assert _leaf(f'Cert="{_encoded(pki.alice)}";{extra}') == _der(pki.alice)


def test_an_unquoted_cert_value_is_read_by_the_same_grammar(pki: Pki) -> None:
    assert _leaf(f"Cert={_encoded(pki.alice)}") == _der(pki.alice)


def test_whitespace_around_the_whole_field_value_is_optional_whitespace(pki: Pki) -> None:
    assert _leaf(f" \t{_envoy(pki, pki.alice)}\t ") == _der(pki.alice)


# -- the review's findings and their family ------------------------------------------------


def test_a_second_cert_after_the_first_is_refused(pki: Pki) -> None:
    # The finding: pat's own element with alice's certificate appended was served as alice.
    value = (
        f'Hash={_hash(pki.bob)};Cert="{_encoded(pki.bob)}";Subject="CN=bob";'
        f'Cert="{_encoded(pki.alice)}"'
    )

    assert _refused(value)


@pytest.mark.parametrize("second", ["Cert", "CERT", "cert", "cErT", "Chain", "CHAIN", "Hash"])
def test_a_key_repeated_in_any_letter_case_is_refused(pki: Pki, second: str) -> None:
    bob = _encoded(pki.bob)
    value = f'Cert="{bob}";Chain="{bob}";{second}="{_encoded(pki.alice)}"'

    assert _refused(value)


@pytest.mark.parametrize("key", ["By", "Hash", "Subject", "URI", "X-Unknown"])
def test_no_other_key_may_repeat_either(pki: Pki, key: str) -> None:
    value = f'Cert="{_encoded(pki.alice)}";{key}=one;{key.lower()}=two'

    assert _refused(value)


def test_a_cert_hidden_after_an_unquoted_uri_is_a_duplicate(pki: Pki) -> None:
    # Envoy writes URI SANs unquoted; a URI may itself hold ';' and '='.
    uri = f'https://evil.example/?a=b;Cert="{_encoded(pki.alice)}"'

    assert _refused(_envoy(pki, pki.bob, uri=uri))


def test_a_cert_hidden_after_a_uri_in_an_element_without_cert_is_caught_by_hash(
    pki: Pki,
) -> None:
    value = f'Hash={_hash(pki.bob)};Subject="CN=bob";URI=x;Cert="{_encoded(pki.alice)}"'

    assert _refused(value)


def test_a_chain_that_does_not_begin_with_the_cert_is_refused(pki: Pki) -> None:
    chain = quote(pki.alice.read_text() + pki.agency.read_text(), safe="")

    assert _refused(f'Cert="{_encoded(pki.bob)}";Chain="{chain}"')


def test_a_chain_with_the_cert_in_second_place_is_refused(pki: Pki) -> None:
    chain = quote(pki.alice.read_text() + pki.bob.read_text(), safe="")

    assert _refused(f'Cert="{_encoded(pki.bob)}";Chain="{chain}"')


def test_a_hash_of_another_certificate_is_refused(pki: Pki) -> None:
    assert _refused(f'Hash={_hash(pki.bob)};Cert="{_encoded(pki.alice)}"')


@pytest.mark.parametrize(
    "template",
    [
        'Cert = "{c}"',
        'Cert= "{c}"',
        'Cert ="{c}"',
        'Hash={h}; Cert="{c}"',
        'Hash={h} ;Cert="{c}"',
        ' Cert="{c}";;Hash={h}',
        'Cert="{c}";',
        ';Cert="{c}"',
        'Cert="{c}"Hash={h}',
        'Cert="{c}",Hash={h}',
        'Cert="{c}",Cert="{c}"',  # two elements: two hops
        'Cert="{c}";"Hash"={h}',
        'Cert="{c}";Hash',
        'Cert="{c}";=x',
        'Cert="{c}";Subject="CN=x',  # unterminated quote
        'Cert="{c}',
        'Cert="{c}";URI=a"b',  # a quote inside an unquoted value
        'Cert="{c}";URI=a b',  # whitespace inside an unquoted value
        'Cert="{c}";Subject="tab\there"',  # a control character
        'Cert="{c}";Subject="trailing backslash\\"',
        "Cert=",
        'Cert=""',
        "Hash={h}",  # no certificate at all
        "",
        'Cert="{c}";Hash=',
        'Cert="{c}";Hash=zz',
        'Cert="%ZZ{c}"',  # a stray percent sign
        'Cert="{c}%"',
    ],
)
def test_the_grammar_refuses_anything_but_one_exact_element(pki: Pki, template: str) -> None:
    assert _refused(template.format(c=_encoded(pki.alice), h=_hash(pki.alice)))


@pytest.mark.parametrize(
    "value",
    [
        "{pem}{pem}",  # two certificates
        "{pem}\n{other}",
        "junk {pem}",
        "{pem} junk",
        "{pem}\x00",
        "{pem}-----BEGIN CERTIFICATE-----",
        "-----BEGIN CERTIFICATE-----\n{body}",  # no END
        "-----BEGIN CERTIFICATE-----\n{body}\n-----BEGIN CERTIFICATE-----\n"
        "{body}\n-----END CERTIFICATE-----",  # a second BEGIN inside the first
        "-----BEGIN CERTIFICATE-----\n{body}AAAA\n-----END CERTIFICATE-----",  # bytes after the DER
        "-----BEGIN CERTIFICATE-----\n{body}=\n-----END CERTIFICATE-----",  # excess padding
        "-----BEGIN CERTIFICATE-----\n{body}====\n-----END CERTIFICATE-----",
        "-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----",
        "-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----é",
    ],
)
def test_cert_holds_exactly_one_certificate_and_nothing_else(pki: Pki, value: str) -> None:
    pem = pki.alice.read_text()
    body = "".join(pem.splitlines()[1:-1])
    text = value.format(pem=pem, other=pki.bob.read_text(), body=body)

    assert _refused(f'Cert="{quote(text, safe="")}"')
    assert _refused(quote(text, safe=""), "pem-urlencoded")


@pytest.mark.parametrize("delimiter", ["%22", "%3B", "%2C", "%3D", "%5C"])
def test_encoded_delimiters_are_decoded_only_after_the_split(pki: Pki, delimiter: str) -> None:
    # The encoded delimiter stays part of the value it was in: harmless in an ignored
    # value, fatal to a certificate.
    assert _leaf(f'Cert="{_encoded(pki.alice)}";URI=a{delimiter}Cert=x') == _der(pki.alice)
    assert _refused(f'Cert="{_encoded(pki.alice)}{delimiter}Cert={_encoded(pki.bob)}"')


def test_non_ascii_bytes_are_refused(pki: Pki) -> None:
    value = f'Cert="{_encoded(pki.alice)}";Subject="CN=Zoë"'.encode()

    assert _refused(value)
    assert _refused(quote(pki.alice.read_text()).encode() + "é".encode(), "pem-urlencoded")


def test_a_header_over_64_kib_is_refused(pki: Pki) -> None:
    assert _refused(f'Cert="{_encoded(pki.alice)}";X="{"a" * 65536}"')


def test_nginx_format_accepts_one_certificate_with_whitespace_around(pki: Pki) -> None:
    value = quote("\n" + pki.alice.read_text() + "\n\n", safe="")

    assert parse_forwarded_certificate(value.encode(), "pem-urlencoded") == (_der(pki.alice),)


# -- properties over the grammar -----------------------------------------------------------

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_KNOWN = ("cert", "chain", "hash", "subject", "uri", "by", "dns")
_tokens = st.text(alphabet=_TCHARS, min_size=1, max_size=8).filter(
    lambda key: key.lower() not in _KNOWN
)
_quoted_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=24)
_unquoted_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='",;'),
    max_size=24,
)


def _in_some_case(key: str) -> st.SearchStrategy[str]:
    def spell(upper: list[bool]) -> str:
        return "".join(c.upper() if u else c.lower() for c, u in zip(key, upper, strict=True))

    return st.lists(st.booleans(), min_size=len(key), max_size=len(key)).map(spell)


@st.composite
def _pair_value(draw: st.DrawFn, text: str | None = None) -> str:
    """A value written quoted or, when it can be, unquoted."""
    if text is None:
        text = draw(st.one_of(_quoted_text, _unquoted_text))
    can_be_bare = all(0x21 <= ord(c) <= 0x7E and c not in '",;' for c in text)
    if can_be_bare and draw(st.booleans()):
        return text
    return quote_value(text)


@st.composite
def _elements(draw: st.DrawFn, pki: Pki) -> tuple[list[str], bytes]:
    """The pairs of a well-formed element (keys in any case, in any order) and its leaf."""
    who = draw(st.sampled_from([pki.alice, pki.bob, pki.expired]))
    encoded = _encoded(who)
    pairs: list[str] = []
    with_cert = draw(st.booleans())
    with_chain = not with_cert or draw(st.booleans())
    if with_cert:
        pairs.append(f"{draw(_in_some_case('Cert'))}={draw(_pair_value(encoded))}")
    if with_chain:
        chain = quote(who.read_text() + pki.agency.read_text(), safe="")
        pairs.append(f"{draw(_in_some_case('Chain'))}={draw(_pair_value(chain))}")
    if draw(st.booleans()):
        pairs.append(f"{draw(_in_some_case('Hash'))}={_hash(who)}")
    for key in ("By", "Subject", "URI"):
        if draw(st.booleans()):
            pairs.append(f"{draw(_in_some_case(key))}={draw(_pair_value())}")
    for _ in range(draw(st.integers(0, 3))):
        pairs.append(f"{draw(_in_some_case('DNS'))}={draw(_pair_value())}")
    unknown = draw(st.lists(_tokens, max_size=3, unique_by=str.lower))
    pairs += [f"{key}={draw(_pair_value())}" for key in unknown]
    return draw(st.permutations(pairs)), _der(who)


_property = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_property
@given(data=st.data())
def test_every_accepted_element_round_trips_to_the_same_certificate(
    pki: Pki, data: st.DataObject
) -> None:
    pairs, leaf = data.draw(_elements(pki))

    parsed = parse_xfcc(";".join(pairs))
    again = parse_xfcc(parsed.serialise())

    assert (leaf, parsed.chain) == (parsed.certificate, again.chain)


@_property
@given(data=st.data())
def test_every_duplicated_key_is_refused(pki: Pki, data: st.DataObject) -> None:
    pairs, _ = data.draw(_elements(pki))
    keys = [pair.partition("=")[0] for pair in pairs]
    repeated = data.draw(st.sampled_from([key for key in keys if key.lower() != "dns"]))
    copy = f"{data.draw(_in_some_case(repeated))}={data.draw(_pair_value())}"
    position = data.draw(st.integers(0, len(pairs)))

    assert _refused(";".join([*pairs[:position], copy, *pairs[position:]]))


@_property
@given(data=st.data())
def test_no_accepted_cert_value_holds_two_certificates(pki: Pki, data: st.DataObject) -> None:
    first, second = data.draw(
        st.lists(st.sampled_from([pki.alice, pki.bob, pki.agency]), min_size=2, max_size=2)
    )
    between = data.draw(st.sampled_from(["", "\n", " ", "\r\n", "junk", "\n\n"]))
    two = quote(first.read_text() + between + second.read_text(), safe="")

    assert _refused(f"Cert={quote_value(two)}")
    assert _refused(two, "pem-urlencoded")


_FRAGMENTS = (
    ';Cert="{alice}"',
    ";CERT={alice}",
    ";cert={alice}",
    ',Cert="{alice}"',
    ';Chain="{alice}"',
    ";Hash={alice_hash}",
    '"',
    '\\"',
    ";",
    "=",
    ",",
    " ",
    "%22",
    "%3B",
    '";Cert="{alice}',
    "\\",
)


@_property
@given(data=st.data())
def test_no_fragment_slipped_into_an_envoy_header_names_another_certificate(
    pki: Pki, data: st.DataObject
) -> None:
    header = _envoy(pki, pki.bob, chain=data.draw(st.booleans()))
    fragments = data.draw(st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=3))
    text = header
    for fragment in fragments:
        position = data.draw(st.integers(0, len(text)))
        piece = fragment.format(alice=_encoded(pki.alice), alice_hash=_hash(pki.alice))
        text = text[:position] + piece + text[position:]
    assume(text != header)

    if not _refused(text):
        assert _leaf(text) == _der(pki.bob)
