"""Counting for the pictures: bucket widths, bounded scans, and the chart shapes."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.audit import AuditLog, AuditSettings, RecordFilter, generate_keys
from gateway.console.activity import RefusalsOverTime, bucket_width, scan
from gateway.console.charts import MAX_SERIES, horizontal_bars, stacked_columns
from tests.audit.conftest import make_record

MINUTE = 60_000_000
DAY = 1440 * MINUTE


def test_buckets_take_the_narrowest_named_width_that_fits() -> None:
    assert bucket_width(0, 30 * MINUTE, 48) == MINUTE
    assert bucket_width(0, 7 * DAY, 48) == 360 * MINUTE  # 3 h would make 56
    assert bucket_width(0, 30 * DAY, 48) == DAY
    assert bucket_width(0, 3000 * DAY, 48) > 7 * DAY


def test_refusals_fall_in_their_bucket_and_allowed_records_do_not_count() -> None:
    tally = RefusalsOverTime(0, 60 * MINUTE)
    deny = {"decision": "deny", "reason": "grant.expired", "time": "1970-01-01T00:30:00Z"}
    tally.add(deny)
    tally.add({**deny, "decision": "allow"})
    tally.add({**deny, "time": "1970-01-02T00:00:00Z"})  # outside the window
    assert sum(tally.by_reason["grant.expired"]) == 1
    assert tally.buckets.width_us == 5 * MINUTE
    assert tally.by_reason["grant.expired"][6] == 1


async def test_a_scan_stops_at_its_bound_and_says_it_was_cut_short(tmp_path: Path) -> None:
    generate_keys(tmp_path / "keys", "log.example/audit")
    log = AuditLog(
        AuditSettings(
            store=tmp_path / "audit.db",
            origin="log.example/audit",
            signing_key=tmp_path / "keys" / "audit-signing.key",
            hmac_key=tmp_path / "keys" / "audit-hmac.key",
        )
    )
    await log.start()
    try:
        for number in range(25):
            await log.append(make_record(number))
        seen: list[int] = []
        full = await scan(log, RecordFilter(), lambda record: seen.append(record["index"]), 25)
        assert (full.counted, full.truncated, seen) == (25, False, list(range(25)))
        part = await scan(log, RecordFilter(), lambda record: None, 10)
        assert (part.counted, part.truncated) == (10, True)
    finally:
        await log.stop()


def test_more_reasons_than_colours_are_summed_as_other() -> None:
    series = {f"reason.{n}": [n + 1, 0] for n in range(MAX_SERIES + 3)}
    chart = stacked_columns("refusals", 0, MINUTE, 2, series)
    assert len(chart.legend) == MAX_SERIES
    assert chart.legend[-1][1] == "other"
    assert sum(total for _, _, total in chart.legend) == sum(sum(v) for v in series.values())


def test_bars_carry_their_numbers_in_words() -> None:
    chart = horizontal_bars("requests", [("<b>org</b> · m", 3, 1)])
    titles = [rect.title for rect in chart.rects]
    assert titles == ["<b>org</b> · m: 3 allowed", "<b>org</b> · m: 1 refused"]
    assert json.dumps([t.text for t in chart.texts]) == json.dumps(
        ["<b>org</b> · m", "3 allowed, 1 refused"]
    )
