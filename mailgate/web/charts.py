"""Chart geometry for server-rendered SVG: numbers in, rectangles out.

The templates draw the rectangles (``_charts.html``); colours come from the
stylesheet, so a chart is plain markup under the page's Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

LABEL_WIDTH = 150
BAR_HEIGHT = 22
GAP = 6
WIDTH = 560
COLUMNS_WIDTH = 1100  # the day chart spans the page
COLUMN_HEIGHT = 160
COLUMN_TOP = 16  # room for the value over the tallest column
MAX_COLUMN_VALUES = 31  # beyond a month of days the values would overlap


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    shown: str  # the value as the chart prints it
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    label_width: int = LABEL_WIDTH
    values: bool = True  # each bar's value printed on the chart (else in its title)


def horizontal(
    rows: Sequence[tuple[str, float]],
    show: Callable[[float], str] = lambda v: f"{v:g}",
    shown: Sequence[str] = (),
    value_width: int = 70,
) -> Chart:
    """One bar per row, longest for the largest value, labels on the left.

    ``shown``, if given, is what each bar prints instead of ``show(value)``, in
    ``value_width`` after the longest bar."""
    top = max((value for _, value in rows), default=0) or 1
    room = WIDTH - LABEL_WIDTH - value_width
    texts = list(shown) or [show(value) for _, value in rows]
    bars = [
        Bar(label, value, texts[i], LABEL_WIDTH, i * (BAR_HEIGHT + GAP),
            max(room * value / top, 1 if value else 0), BAR_HEIGHT)
        for i, (label, value) in enumerate(rows)
    ]  # fmt: skip
    return Chart(bars, WIDTH, max(len(rows), 1) * (BAR_HEIGHT + GAP))


def columns(rows: Sequence[tuple[str, float]]) -> Chart:
    """One column per row (days, left to right), tallest for the largest value."""
    top = max((value for _, value in rows), default=0) or 1
    step = COLUMNS_WIDTH / max(len(rows), 1)
    bars = [
        Bar(label, value, f"{value:g}", i * step + step * 0.15,
            COLUMN_TOP + COLUMN_HEIGHT * (1 - value / top), step * 0.7, COLUMN_HEIGHT * value / top)
        for i, (label, value) in enumerate(rows)
    ]  # fmt: skip
    height = COLUMN_TOP + COLUMN_HEIGHT + 20
    return Chart(bars, COLUMNS_WIDTH, height, 0, len(rows) <= MAX_COLUMN_VALUES)
