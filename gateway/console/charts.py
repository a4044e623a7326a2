"""Chart geometry for the pictures: plain shapes (rectangles, lines, text) that the
templates draw as inline SVG. No chart library: the data are small and the shapes few.

Colours come from CSS classes (`series-N`, `allow`, `deny`, ...) in console.css, never
from style attributes; every shape carries a title with its numbers, and every chart is
accompanied by a table, so nothing is said by colour alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

__all__ = ["Chart", "Line", "Rect", "Text", "grant_timeline", "horizontal_bars", "stacked_columns"]

WIDTH = 760
MAX_SERIES = 8
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 12, 12, 36
_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    kind: str
    title: str


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    kind: str


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"


@dataclass
class Chart:
    """One picture: its size, shapes, and a legend of (css class, label, total)."""

    title: str
    height: int
    width: int = WIDTH
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    legend: list[tuple[str, str, int]] = field(default_factory=list)


def _time_label(time_us: int, width_us: int) -> str:
    moment = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%d" if width_us >= _DAY_US else "%m-%d %H:%M")


def stacked_columns(
    title: str, start_us: int, width_us: int, count: int, series: dict[str, list[int]]
) -> Chart:
    """Columns per time bucket, stacked by series (largest series first; the ninth and
    later are summed as `other`)."""
    ranked = sorted(series.items(), key=lambda item: (-sum(item[1]), item[0]))
    if len(ranked) > MAX_SERIES:
        tail = [values for _, values in ranked[MAX_SERIES - 1 :]]
        rest = [sum(column) for column in zip(*tail, strict=True)]
        ranked = [*ranked[: MAX_SERIES - 1], ("other", rest)]
    height = 240
    chart = Chart(title, height)
    plot_width = WIDTH - _LEFT - _RIGHT
    plot_height = height - _TOP - _BOTTOM
    totals = [sum(values[i] for _, values in ranked) for i in range(count)]
    peak = max(totals, default=0) or 1
    column = plot_width / max(count, 1)
    base = _TOP + plot_height
    for position in range(count):
        y = float(base)
        x = _LEFT + position * column
        when = _time_label(start_us + position * width_us, width_us)
        for number, (name, values) in enumerate(ranked):
            value = values[position]
            if not value:
                continue
            size = value / peak * plot_height
            y -= size
            title = f"{when}: {value} refused, {name}"
            chart.rects.append(Rect(x + 1, y, max(column - 2, 1), size, f"series-{number}", title))
    for number, (name, values) in enumerate(ranked):
        chart.legend.append((f"series-{number}", name, sum(values)))
    _axes(chart, base, peak)
    step = max(1, count // 6)
    for position in range(0, count, step):
        label = _time_label(start_us + position * width_us, width_us)
        chart.texts.append(Text(_LEFT + position * column, base + 16, label))
    return chart


def horizontal_bars(title: str, rows: list[tuple[str, int, int]]) -> Chart:
    """One bar per row label: allowed then refused, with the counts written beside it."""
    row_height = 22
    label_width = 240
    height = _TOP + row_height * max(len(rows), 1) + 8
    chart = Chart(title, height)
    peak = max((allowed + refused for _, allowed, refused in rows), default=0) or 1
    plot_width = WIDTH - label_width - 150
    for number, (label, allowed, refused) in enumerate(rows):
        y = _TOP + number * row_height
        chart.texts.append(Text(label_width - 8, y + 15, label, "end"))
        x = float(label_width)
        for value, kind, word in ((allowed, "allow", "allowed"), (refused, "deny", "refused")):
            if value:
                size = value / peak * plot_width
                title = f"{label}: {value} {word}"
                chart.rects.append(Rect(x, y + 3, size, row_height - 6, kind, title))
                x += size
        chart.texts.append(Text(x + 6, y + 15, f"{allowed} allowed, {refused} refused"))
    chart.legend = [
        ("allow", "allowed", sum(r[1] for r in rows)),
        ("deny", "refused", sum(r[2] for r in rows)),
    ]
    return chart


def grant_timeline(
    title: str,
    start_us: int,
    width_us: int,
    served: list[int],
    refused: list[int],
    marks: list[tuple[str, int, str]],
    window: tuple[int, int],
) -> Chart:
    """A grant's time line: its window as a band, marks (release, now, earliest opening)
    as vertical lines, requests served under it above the axis and refused below."""
    count = len(served)
    height = 220
    chart = Chart(title, height)
    plot_width = WIDTH - _LEFT - _RIGHT
    end_us = start_us + count * width_us
    axis = _TOP + 110

    def x_of(time_us: int) -> float:
        clipped = min(max(time_us, start_us), end_us)
        return _LEFT + (clipped - start_us) / (end_us - start_us) * plot_width

    opens, closes = window
    chart.rects.append(
        Rect(
            x_of(opens),
            _TOP,
            max(x_of(closes) - x_of(opens), 1),
            axis + 50 - _TOP,
            "window",
            f"grant window {_time_label(opens, _DAY_US)} to {_time_label(closes, _DAY_US)}",
        )
    )
    peak = max([*served, *refused, 1])
    column = plot_width / max(count, 1)
    for position in range(count):
        x = _LEFT + position * column
        when = _time_label(start_us + position * width_us, width_us)
        if served[position]:
            size = served[position] / peak * 100
            chart.rects.append(
                Rect(x + 1, axis - size, max(column - 2, 1), size, "allow",
                     f"{when}: {served[position]} served under the grant")
            )  # fmt: skip
        if refused[position]:
            size = refused[position] / peak * 45
            chart.rects.append(
                Rect(x + 1, axis, max(column - 2, 1), size, "deny",
                     f"{when}: {refused[position]} refused (grant not open)")
            )  # fmt: skip
    chart.lines.append(Line(_LEFT, axis, WIDTH - _RIGHT, axis, "axis"))
    for number, (label, time_us, kind) in enumerate(marks):
        if not start_us <= time_us <= end_us:
            continue
        x = x_of(time_us)
        chart.lines.append(Line(x, _TOP, x, axis + 50, kind))
        if x > WIDTH - 160:  # near the right edge: write the label to the line's left
            chart.texts.append(Text(x - 3, _TOP + 10 + 12 * number, label, "end"))
        else:
            chart.texts.append(Text(x + 3, _TOP + 10 + 12 * number, label))
    chart.texts.append(Text(_LEFT, height - 8, _time_label(start_us, _DAY_US)))
    chart.texts.append(Text(WIDTH - _RIGHT, height - 8, _time_label(end_us, _DAY_US), "end"))
    chart.legend = [
        ("window", "grant window", 0),
        ("allow", "served under the grant", sum(served)),
        ("deny", "refused at its edges", sum(refused)),
    ]
    return chart


def _axes(chart: Chart, base: float, peak: int) -> None:
    chart.lines.append(Line(_LEFT, base, chart.width - _RIGHT, base, "axis"))
    chart.lines.append(Line(_LEFT, _TOP, _LEFT, base, "axis"))
    chart.texts.append(Text(_LEFT - 6, _TOP + 10, str(peak), "end"))
    chart.texts.append(Text(_LEFT - 6, base, "0", "end"))
