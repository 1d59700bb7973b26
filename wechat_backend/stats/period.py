"""The statistics' period: ``--from``/``--to`` (or the page's ``from``/``to``) as local dates,
checked once for the CLI and the pages alike. Pure: no I/O."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..clock import LOCAL_ZONE
from ..errors import BadInput

DEFAULT_DAYS = 30  # the last 30 days, ``to`` included
MAX_DAYS = 366  # a year's assessment, leap years too


@dataclass(frozen=True)
class Period:
    """``start`` to ``end``, both included, in Asia/Shanghai."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def utc_bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[start 00:00, the day after end 00:00) local time, in UTC: what timestamps are compared to."""
        first = dt.datetime.combine(self.start, dt.time(), LOCAL_ZONE)
        after = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), LOCAL_ZONE)
        return first.astimezone(dt.UTC), after.astimezone(dt.UTC)


def _date(field: str, text: str) -> dt.date:
    try:
        if len(text) != 10:
            raise ValueError
        return dt.date.fromisoformat(text)
    except ValueError:
        raise BadInput(field, f"日期应写成 YYYY-MM-DD，例如 2026-11-01（收到的是“{text[:20]}”）") from None


def parse_period(date_from: str | None, date_to: str | None, today: dt.date) -> Period:
    """The period asked for; empty means the default (``to`` today, ``from`` 29 days before it).
    Raises ``BadInput`` with a Chinese message saying what to write instead."""
    date_from, date_to = (date_from or "").strip(), (date_to or "").strip()
    end = _date("to", date_to) if date_to else today
    if end > today:
        raise BadInput("to", f"截止日期不能晚于今天（{today.isoformat()}）")
    start = _date("from", date_from) if date_from else end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadInput("from", "起始日期不能晚于截止日期，请调换两个日期")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadInput("from", f"统计期间最长 {MAX_DAYS} 天，请缩短期间或分段统计")
    return Period(start, end)


def period_or_message(date_from: str | None, date_to: str | None, today: dt.date) -> tuple[Period | None, str]:
    """For a page that shows the mistake beside the form: (the period, "") or (None, the message)."""
    try:
        return parse_period(date_from, date_to, today), ""
    except BadInput as exc:
        return None, exc.message
