"""The one grammar for times a user types: ISO 8601, dates, words and offsets from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.instants import InstantError, accepted_forms, format_instant, parse_instant

NOW = datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1),
         "m": timedelta(minutes=1), "s": timedelta(seconds=1)}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("today", datetime(2026, 12, 1, tzinfo=UTC)),
        ("yesterday", datetime(2026, 11, 30, tzinfo=UTC)),
        ("tomorrow", datetime(2026, 12, 2, tzinfo=UTC)),
        ("-30m", NOW - timedelta(minutes=30)),
        ("-2h", NOW - timedelta(hours=2)),
        ("-1d", NOW - timedelta(days=1)),
        ("+1w", NOW + timedelta(weeks=1)),
        ("-1d12h", NOW - timedelta(days=1, hours=12)),
        ("2027-01-05T12:00:00Z", datetime(2027, 1, 5, 12, tzinfo=UTC)),
        ("2027-01-05t12:00:00z", datetime(2027, 1, 5, 12, tzinfo=UTC)),
        ("2027-01-05T12:00:00+01:00", datetime(2027, 1, 5, 11, tzinfo=UTC)),
        ("2027-01-05T12:00:00.5Z", datetime(2027, 1, 5, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2027-01-05T12:00", datetime(2027, 1, 5, 12, tzinfo=UTC)),
        ("2027-01-05", datetime(2027, 1, 5, tzinfo=UTC)),
        (" 2027-01-05 ", datetime(2027, 1, 5, tzinfo=UTC)),
    ],
)
def test_accepted_forms_name_the_expected_instant(text: str, expected: datetime) -> None:
    assert expected == parse_instant(text, NOW)


@pytest.mark.parametrize(
    "text", ["", "soon", "last tuesday", "-1y", "1d", "--1d", "-d", "2027-13-01", "12:00", "-1.5h"]
)
def test_other_text_is_refused_with_every_accepted_form(text: str) -> None:
    with pytest.raises(InstantError) as caught:
        parse_instant(text, NOW)
    assert caught.value.text == text
    assert str(caught.value) == f"{text!r} is not a time: give {accepted_forms()}"


def test_a_zone_can_be_required() -> None:
    with pytest.raises(InstantError) as caught:
        parse_instant("2027-01-05T12:00:00", NOW, zone_required=True)
    assert str(caught.value) == (
        "'2027-01-05T12:00:00' has no time zone: add one, e.g. 2027-01-05T12:00:00Z for UTC"
    )
    assert datetime(2027, 1, 5, tzinfo=UTC) == parse_instant("2027-01-05", NOW, zone_required=True)
    assert NOW - timedelta(days=1) == parse_instant("-1d", NOW, zone_required=True)


@pytest.mark.parametrize("text", ["-99999999w", "+999999999d", "0001-01-01T00:00:00+01:00"])
def test_instants_beyond_the_calendar_are_refused_as_out_of_range(text: str) -> None:
    with pytest.raises(InstantError, match="out of range"):
        parse_instant(text, NOW)


@given(
    parts=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNITS))), min_size=1, max_size=4
    ),
    sign=st.sampled_from("+-"),
)
def test_an_offset_is_the_sum_of_its_parts(parts: list[tuple[int, str]], sign: str) -> None:
    text = sign + "".join(f"{amount}{unit}" for amount, unit in parts)
    delta = sum((amount * UNITS[unit] for amount, unit in parts), timedelta())
    assert (NOW + delta if sign == "+" else NOW - delta) == parse_instant(text, NOW)


@given(moment=st.datetimes(timezones=st.just(UTC), min_value=datetime(1970, 1, 1)))
def test_a_formatted_instant_reads_back_as_itself(moment: datetime) -> None:
    assert moment == parse_instant(format_instant(moment), NOW, zone_required=True)


@given(text=st.text(max_size=40))
def test_any_text_is_an_instant_or_an_instant_error(text: str) -> None:
    try:
        moment = parse_instant(text, NOW)
    except InstantError:
        return
    assert moment.utcoffset() == timedelta(0)
