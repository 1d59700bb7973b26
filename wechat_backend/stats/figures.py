"""The assessment's figures as rows: one per institution, one total per county, one for the city.

Stock figures (``stock``) are as of the period's last day; flow figures (``flows``) are within the
period. The rates are the notice's: 开放率 = opened ÷ archives, 绑定率 = bound ÷ opened (the
notice, 聊卫基层〔2018〕14号, names no formula; these are the ones the 工作台 shows and explains).
:func:`rows_from` and :func:`rates` are pure; :class:`StatsService` reads and audits.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..clock import Clock
from ..db.models import County, Institution
from ..errors import NotFound
from ..staff.scope import StaffMember
from .flows import Flows, read_flows
from .period import Period
from .stock import Stock, StockFigures, stock_as_of

# The JSON row, in this order and nothing else (``stats --format json``).
JSON_KEYS = (
    "county_code",
    "institution_code",
    "archives",
    "key_group_archives",
    "opened",
    "bound",
    "readers",
    "pushes_sent",
    "pushes_skipped",
    "pushes_dead",
    "questions",
    "answered",
    "median_reply_hours",
    "qr_follows",
)
STOCK = ("archives", "key_group_archives", "opened", "bound")
SUMMED = ("pushes_sent", "pushes_skipped", "pushes_dead", "questions", "answered", "qr_follows")


@dataclass(frozen=True)
class Row:
    """One line of figures. A county's total has ``institution_code`` None; the city's has both None."""

    county_code: str | None
    institution_code: str | None
    name: str  # the institution's name, or 莘县合计 / 全市合计
    # Stock figures; None when no snapshot is as old as the period's end (nothing to say).
    archives: int | None = 0
    key_group_archives: int | None = 0
    opened: int | None = 0
    bound: int | None = 0
    readers: int = 0
    pushes_sent: int = 0
    pushes_skipped: int = 0
    pushes_dead: int = 0
    questions: int = 0
    answered: int = 0
    median_reply_hours: float | None = None
    qr_follows: int = 0

    @property
    def level(self) -> str:
        if self.institution_code is not None:
            return "institution"
        return "county" if self.county_code is not None else "city"

    @property
    def open_rate(self) -> float | None:
        return rates(self.archives, self.opened, self.bound)[0]

    @property
    def bind_rate(self) -> float | None:
        return rates(self.archives, self.opened, self.bound)[1]

    def as_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in JSON_KEYS}


def rates(archives: int | None, opened: int | None, bound: int | None) -> tuple[float | None, float | None]:
    """(开放率 = opened ÷ archives, 绑定率 = bound ÷ opened); None where the divisor is 0 or unknown."""
    open_rate = opened / archives if archives and opened is not None else None
    return open_rate, (bound / opened if opened and bound is not None else None)


def median_hours(hours: Iterable[float]) -> float | None:
    found = list(hours)
    return round(statistics.median(found), 1) if found else None


@dataclass(frozen=True)
class Scope:
    """Which rows: every county (``county`` None), one county, or one institution. Totals: a
    county's when the scope is a county or more, the city's only when it is the whole city."""

    county: str | None = None
    institution: str | None = None

    @property
    def county_totals(self) -> bool:
        return self.institution is None

    @property
    def city_total(self) -> bool:
        return self.county is None and self.institution is None


def scope_for(member: StaffMember, county: str | None) -> Scope:
    """The figures a staff member may see, narrowed to ``county`` if asked: city staff any county,
    county staff their own, institution staff their institution alone. Anything else is the same
    404 as a county that does not exist."""
    county = county or None
    if member.role == "city":
        return Scope(county=county)
    if county is not None and county != member.county_code:
        raise NotFound("未找到这个县（市、区）的统计")
    if member.role == "county":
        return Scope(county=member.county_code)
    return Scope(county=member.county_code, institution=member.institution_code)


@dataclass(frozen=True)
class Figures:
    period: Period
    scope: Scope
    today: dt.date
    stock_day: dt.date | None  # the day the stock figures are of; None when no snapshot is that old
    rows: tuple[Row, ...]
    county_names: dict[str, str]  # every county (code -> name), for the page's choice of county

    @property
    def stock_missing(self) -> bool:
        return self.stock_day is None

    @property
    def stock_from_earlier_day(self) -> bool:
        """The period ends on a day with no snapshot: the stock figures are of an earlier day."""
        return self.stock_day is not None and self.stock_day < min(self.period.end, self.today)

    def counties(self) -> list[Row]:
        return [r for r in self.rows if r.level == "county"]

    def institutions(self) -> list[Row]:
        return [r for r in self.rows if r.level == "institution"]


def _stock_row(stocks: Iterable[Stock]) -> dict[str, int]:
    total = dict.fromkeys(STOCK, 0)
    for s in stocks:
        for key, n in zip(STOCK, (s.archives, s.key_group, s.opened, s.bound), strict=True):
            total[key] += n
    return total


def rows_from(
    scope: Scope,
    institutions: list[tuple[str, str, str]],
    county_names: dict[str, str],
    stock: StockFigures,
    flows: Flows,
) -> tuple[Row, ...]:
    """Pure: the rows, per county (its institutions, then its total), then the city's total.
    ``institutions``: (county code, institution code, name) in scope, in order."""
    stock_of: dict[str, list[Stock]] = {}
    for (_, code), figures in stock.by_institution.items():
        stock_of.setdefault(code, []).append(figures)
    waits: dict[str | None, list[float]] = {}
    for code, hours in flows.waits:
        waits.setdefault(code, []).append(hours)

    def institution_row(county: str, code: str, name: str) -> Row:
        flow = flows.by_institution.get(code, Counter())
        return Row(
            county,
            code,
            name,
            **(dict.fromkeys(STOCK) if stock.missing else _stock_row(stock_of.get(code, ()))),
            readers=flow["readers"],
            **{key: flow[key] for key in SUMMED},
            median_reply_hours=median_hours(waits.get(code, ())),
        )

    def total(county: str | None, name: str, parts: list[Row], readers: int, hours: Iterable[float]) -> Row:
        sums = {key: sum(getattr(r, key) for r in parts) for key in SUMMED}
        sums |= {key: None if stock.missing else sum(getattr(r, key) for r in parts) for key in STOCK}
        return Row(county, None, name, **sums, readers=readers, median_reply_hours=median_hours(hours))

    out: list[Row] = []
    county_rows: list[Row] = []
    by_county: dict[str, list[tuple[str, str]]] = {}
    for county, code, name in institutions:
        by_county.setdefault(county, []).append((code, name))
    for county, members in by_county.items():
        rows = [institution_row(county, code, name) for code, name in members]
        out.extend(rows)
        if scope.county_totals:
            hours = [h for code, _ in members for h in waits.get(code, ())]
            name = f"{county_names.get(county, county)}合计"
            row = total(county, name, rows, flows.readers_by_county.get(county, 0), hours)
            out.append(row)
            county_rows.append(row)
    if scope.city_total:
        # Pushes about no archive and questions to the city's inbox count here only.
        city = total(None, "全市合计", county_rows, flows.readers_city, (h for hs in waits.values() for h in hs))
        out.append(replace(city, **{key: getattr(city, key) + flows.city_only[key] for key in SUMMED}))
    return tuple(out)


@dataclass(frozen=True)
class Viewer:
    """Who reads the figures, for the audit row: a staff member on a page, or the CLI."""

    actor_type: str  # staff, system
    actor_id: str
    request_id: str | None = None
    client_ip: str | None = None


class StatsService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    @property
    def today(self) -> dt.date:
        return self._clock.today()

    async def figures(self, scope: Scope, period: Period, viewer: Viewer, *, export: str | None = None) -> Figures:
        """The rows of ``scope`` for ``period``; audited as ``stats_view`` (or ``stats_export`` in
        format ``export``). The audit row says which figures, never anything about a person."""
        today = self._clock.today()
        start, end = period.utc_bounds()
        async with self._sessions() as s:
            institutions, county_names = await _places(s, scope)
            codes = None if scope.city_total else [code for _, code, _ in institutions]
            stock = await stock_as_of(s, period.end, today, codes)
        # Its own sessions (none held here while it waits for them: no pool deadlock).
        flows = await read_flows(self._sessions, start, end, codes, whole_counties=scope.institution is None)
        async with self._sessions.begin() as s:
            audit.record(
                s,
                actor_type=viewer.actor_type,
                actor_id=viewer.actor_id,
                action="stats_export" if export else "stats_view",
                request_id=viewer.request_id,
                client_ip=viewer.client_ip,
                detail={
                    "from": period.start.isoformat(),
                    "to": period.end.isoformat(),
                    "county": scope.county,
                    "institution": scope.institution,
                    **({"format": export} if export else {}),
                },
            )
        rows = rows_from(scope, institutions, county_names, stock, flows)
        return Figures(period, scope, today, stock.day, rows, county_names)


async def _places(s: AsyncSession, scope: Scope) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """The institutions in scope (county, code, name) in code order, and every county's name."""
    counties = select(County.code, County.name).order_by(County.code)
    query = select(Institution.county_code, Institution.code, Institution.name).order_by(
        Institution.county_code, Institution.code
    )
    if scope.institution is not None:
        query = query.where(Institution.code == scope.institution)
    elif scope.county is not None:
        query = query.where(Institution.county_code == scope.county)
    names = dict((await s.execute(counties)).all())
    if scope.county is not None and scope.county not in names:
        raise NotFound(f"未找到县（市、区）{scope.county}，请检查行政区划代码")
    return [tuple(r) for r in (await s.execute(query)).all()], names
