"""RFC 3739 Subject Directory Attributes: citizenship and residence, in ASN.1 DER.

    SubjectDirectoryAttributes ::= SEQUENCE SIZE (1..MAX) OF Attribute
    Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET OF ANY }
    CountryOfCitizenship ::= PrintableString (SIZE (2))
    CountryOfResidence   ::= PrintableString (SIZE (2))

Decoding and encoding both go through pyasn1, never through byte slicing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyasn1.codec.der import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, constraint, namedtype, univ

SUBJECT_DIRECTORY_ATTRIBUTES = "2.5.29.9"
COUNTRY_OF_CITIZENSHIP = "1.3.6.1.5.5.7.9.4"
COUNTRY_OF_RESIDENCE = "1.3.6.1.5.5.7.9.5"


class _AttributeValues(univ.SetOf):  # type: ignore[misc]
    componentType = univ.Any()


class _Attribute(univ.Sequence):  # type: ignore[misc]
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("type", univ.ObjectIdentifier()),
        namedtype.NamedType("values", _AttributeValues()),
    )


class _SubjectDirectoryAttributes(univ.SequenceOf):  # type: ignore[misc]
    componentType = _Attribute()
    subtypeSpec = constraint.ValueSizeConstraint(1, 1024)


class _CountryCode(char.PrintableString):  # type: ignore[misc]
    subtypeSpec = constraint.ValueSizeConstraint(2, 2)


class DirectoryAttributesError(ValueError):
    """The extension is not valid DER of the RFC 3739 structure."""


@dataclass(frozen=True, slots=True)
class DirectoryAttributes:
    """The country values as written in the certificate (not yet normalised).

    A value that is not a two-letter PrintableString is kept as ``""`` so that it
    is noted and dropped as an invalid code rather than silently ignored.
    """

    citizenships: tuple[str, ...]
    residences: tuple[str, ...]


def decode_directory_attributes(der: bytes) -> DirectoryAttributes:
    """Read countryOfCitizenship and countryOfResidence values; other attributes are ignored."""
    try:
        sequence, rest = decoder.decode(der, asn1Spec=_SubjectDirectoryAttributes())
    except (PyAsn1Error, TypeError, ValueError) as exc:
        raise DirectoryAttributesError("subject directory attributes are not valid DER") from exc
    if rest:
        raise DirectoryAttributesError("trailing bytes after subject directory attributes")
    citizenships: list[str] = []
    residences: list[str] = []
    for attribute in sequence:
        kind = str(attribute["type"])
        if kind == COUNTRY_OF_CITIZENSHIP:
            target = citizenships
        elif kind == COUNTRY_OF_RESIDENCE:
            target = residences
        else:
            continue
        for value in attribute["values"]:
            target.append(_country(bytes(value)))
    return DirectoryAttributes(tuple(citizenships), tuple(residences))


def _country(der: bytes) -> str:
    try:
        value, rest = decoder.decode(der, asn1Spec=_CountryCode())
    except (PyAsn1Error, TypeError, ValueError):
        return ""
    return "" if rest else str(value)


def encode_directory_attributes(
    citizenships: Iterable[str] = (), residences: Iterable[str] = ()
) -> bytes:
    """DER of a SubjectDirectoryAttributes with one Attribute per country value."""
    sequence = _SubjectDirectoryAttributes()
    for kind, codes in ((COUNTRY_OF_CITIZENSHIP, citizenships), (COUNTRY_OF_RESIDENCE, residences)):
        for code in codes:
            attribute = _Attribute()
            attribute["type"] = univ.ObjectIdentifier(kind)
            values = _AttributeValues()
            values.append(univ.Any(encoder.encode(_CountryCode(code))))
            attribute["values"] = values
            sequence.append(attribute)
    if len(sequence) == 0:
        raise ValueError("at least one country is needed")
    return bytes(encoder.encode(sequence))
