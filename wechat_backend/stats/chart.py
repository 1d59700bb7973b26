"""The statistics page's chart: 开放率 and 绑定率 as horizontal bars, one pair per county (the city's
view) or per institution. Pure: rows in, a layout out; ``templates/staff/stats.html`` draws it as
inline SVG, so every text goes through the template's autoescape.

It follows ``records/chart.py``: 343 units wide (a 375 px screen less its margins, scaled by CSS on
wider ones), presentation attributes only (the CSP allows no ``<style>``), no script, no URL,
``role="img"`` with a Chinese ``aria-label`` that says every value, and each value written beside
its bar so colour is never the only signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records.chart import WIDTH
from .figures import Figures, Row

OPEN_FILL = "#07c160"  # 开放率, the 工作台's green
BIND_FILL = "#1565c0"  # 绑定率
_TOP = 48  # title and legend
_NAME = 18  # a group's name line
_BAR = 14
_GAP = 4  # between a group's two bars
_GROUP_GAP = 14
_LABEL = 56  # room right of the plot for "100.0%"
_AXIS = 22  # 0% 50% 100% under the plot
MAX_GROUPS = 60


def percent(rate: float | None) -> str:
    """0.9167 -> "91.7%"; None (nothing to divide by) -> "—"."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


@dataclass(frozen=True)
class Bar:
    y: float
    width: float
    fill: str
    text: str  # the value, written at ``text_x``
    text_x: float


@dataclass(frozen=True)
class Group:
    name: str
    name_y: float
    bars: tuple[Bar, Bar]


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_width: float
    aria: str
    groups: tuple[Group, ...]
    ticks: tuple[tuple[float, str], ...]  # (x, "50%")
    axis_y: float
    plot_top: float
    open_fill: str = OPEN_FILL
    bind_fill: str = BIND_FILL


def chart_rows(figures: Figures) -> list[Row]:
    """What the chart shows: the counties when there are several, else the institutions."""
    counties = figures.counties()
    rows = counties if len(counties) > 1 else figures.institutions()
    return rows[:MAX_GROUPS]


def _short(row: Row) -> str:
    return row.name.removesuffix("合计") if row.level == "county" else row.name


def layout(rows: list[Row]) -> Chart | None:
    """The bars of ``rows``; None when there is nothing to draw."""
    if not rows:
        return None
    plot = WIDTH - _LABEL
    groups, said = [], []
    y = float(_TOP)
    for row in rows:
        name_y = y + 13
        bars = []
        for n, (rate, fill) in enumerate(((row.open_rate, OPEN_FILL), (row.bind_rate, BIND_FILL))):
            top = y + _NAME + n * (_BAR + _GAP)
            width = max(0.0, min(1.0, rate or 0.0)) * plot
            bars.append(Bar(top, round(width, 1), fill, percent(rate), round(width + 4, 1)))
        groups.append(Group(_short(row), name_y, (bars[0], bars[1])))
        said.append(f"{_short(row)} 开放率 {percent(row.open_rate)}，绑定率 {percent(row.bind_rate)}")
        y += _NAME + 2 * _BAR + _GAP + _GROUP_GAP
    ticks = tuple((round(plot * f, 1), f"{int(f * 100)}%") for f in (0.0, 0.5, 1.0))
    return Chart(
        width=WIDTH,
        height=int(y + _AXIS),
        plot_width=plot,
        aria="开放率和绑定率：" + "；".join(said),
        groups=tuple(groups),
        ticks=ticks,
        axis_y=y + 14,
        plot_top=float(_TOP),
    )
