from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateway.records import timestamp


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_timestamps_are_rfc3339_utc_with_microseconds(now: float) -> None:
    assert timestamp(now) == datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
