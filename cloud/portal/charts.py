"""Bar charts as data for server-rendered SVG: each bar's box, the axis ticks, and the rows of
the table twin that is the chart's text alternative (``templates/charts.html`` draws both)."""

from __future__ import annotations

import math
from dataclasses import dataclass

WIDTH = 640
HEIGHT = 220
LEFT = 56  # room for the value axis' labels
BOTTOM = 28  # room for the day labels
TOP = 10


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Tick:
    value: float
    y: float


@dataclass(frozen=True)
class BarChart:
    id: str
    title: str
    unit: str
    bars: list[Bar]
    ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM
    every_nth_label: int = 1

    @property
    def empty(self) -> bool:
        return all(not b.value for b in self.bars)


def nice_ceiling(value: float) -> float:
    """Return the smallest of 1, 2, 2.5 or 5 times 10^n that is at least ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def bar_chart(
    chart_id: str, title: str, unit: str, points: list[tuple[str, float | None]]
) -> BarChart:
    """Return the chart of ``points`` (label, value; None draws no bar and reads "no data"),
    scaled from 0 to a round maximum with 4 ticks."""
    top = nice_ceiling(max((v for _, v in points if v is not None), default=0.0))
    plot_h = HEIGHT - BOTTOM - TOP
    slot = (WIDTH - LEFT) / max(len(points), 1)
    bars = []
    for n, (label, value) in enumerate(points):
        h = 0.0 if value is None else plot_h * max(value, 0.0) / top
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(LEFT + n * slot + slot * 0.15, 2),
                y=round(TOP + plot_h - h, 2),
                width=round(slot * 0.7, 2),
                height=round(h, 2),
            )
        )
    ticks = [Tick(top * k / 4, round(TOP + plot_h - plot_h * k / 4, 2)) for k in range(5)]
    return BarChart(
        id=chart_id,
        title=title,
        unit=unit,
        bars=bars,
        ticks=ticks,
        every_nth_label=max(1, math.ceil(len(points) / 7)),
    )
