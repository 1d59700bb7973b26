"""The one seam for time: services take a clock, tests pass a fixed one."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Asia/Shanghai")


class Clock:
    """Wall clock. Timestamps are stored in UTC; dates and ages are taken in Asia/Shanghai."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def today(self) -> dt.date:
        return self.now().astimezone(LOCAL_ZONE).date()

    def time(self) -> float:
        return self.now().timestamp()


class FixedClock(Clock):
    """A clock that stands still until moved (tests, replays of WeChat's sample messages)."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)
