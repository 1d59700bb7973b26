"""When a push may go: quiet hours and the daily quota. Pure functions of the time.

Quiet hours are local (``[notify] timezone``); a reminder or record notice queued or due inside
them waits for their end and is spread over the following hour (by a hash of its key, so every
worker computes the same moment), lest every phone buzz at 08:00:00. Equal start and end turn quiet
hours off. The account's template quota (45009) resets at 00:00 Beijing time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from zoneinfo import ZoneInfo

from ..config import NotifySettings

BEIJING = ZoneInfo("Asia/Shanghai")
SPREAD = dt.timedelta(hours=1)


def _hm(text: str) -> dt.time:
    hour, minute = text.split(":")
    return dt.time(int(hour), int(minute))


def is_quiet(local: dt.time, start: str, end: str) -> bool:
    s, e = _hm(start), _hm(end)
    if s == e:
        return False
    return s <= local < e if s < e else (local >= s or local < e)


def spread(key: str) -> dt.timedelta:
    """A stable offset in [0, 1 h) for this push."""
    n = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big")
    return dt.timedelta(seconds=n % int(SPREAD.total_seconds()))


def quiet_end_after(now: dt.datetime, settings: NotifySettings) -> dt.datetime | None:
    """The end of the quiet period ``now`` is in (UTC), or None when ``now`` is not quiet."""
    zone = ZoneInfo(settings.timezone)
    local = now.astimezone(zone)
    if not is_quiet(local.time(), settings.quiet_start, settings.quiet_end):
        return None
    end = dt.datetime.combine(local.date(), _hm(settings.quiet_end), zone)
    if end <= local:
        end = dt.datetime.combine(local.date() + dt.timedelta(days=1), _hm(settings.quiet_end), zone)
    return end.astimezone(dt.UTC)


def send_at(now: dt.datetime, settings: NotifySettings, key: str, *, urgent: bool = False) -> dt.datetime:
    """When a push queued at ``now`` may first go out."""
    if urgent:
        return now
    end = quiet_end_after(now, settings)
    return now if end is None else end + spread(key)


def next_beijing_midnight(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(BEIJING)
    midnight = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0, 0), BEIJING)
    return midnight.astimezone(dt.UTC)
