"""Nationality codes normalised to ISO 3166-1 alpha-2."""

import pytest

from gateway.identity import normalise_country
from gateway.identity.countries import COUNTRIES


def test_table_holds_all_249_iso_codes_once() -> None:
    assert (
        len(COUNTRIES),
        len({row[0] for row in COUNTRIES}),
        len({row[1] for row in COUNTRIES}),
    ) == (249, 249, 249)


def test_every_alpha3_code_maps_to_its_alpha2() -> None:
    assert [row for row in COUNTRIES if normalise_country(row[1]) != row[0]] == []


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("DE", "DE"),
        ("de", "DE"),
        ("DEU", "DE"),
        ("D", "DE"),
        ("D<<", "DE"),
        (" fra ", "FR"),
        ("GBR", "GB"),
        ("GBD", "GB"),
        ("GBN", "GB"),
        ("GBO", "GB"),
        ("GBS", "GB"),
        ("GBP", "GB"),
        ("UNK", "XK"),
        ("RKS", "XK"),
        ("XKX", "XK"),
        ("XK", "XK"),
    ],
)
def test_iso_and_icao_codes_are_normalised(code: str, expected: str) -> None:
    assert expected == normalise_country(code)


@pytest.mark.parametrize(
    "code", ["XXA", "XXB", "XXC", "XXX", "EUE", "UNO", "UNA", "XOM", "UK", "ZZ", "", "ABCD", "D1"]
)
def test_codes_naming_no_country_are_invalid(code: str) -> None:
    assert normalise_country(code) is None
