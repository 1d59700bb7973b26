"""The account's daily template quota (45009): whether template sends are stopped, and until when."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger("wechat_backend.notify")


class QuotaFlag:
    """Whether the account's template quota stopped template sends, and until when. Shared through
    Redis when there is one (every worker stops), else in this process."""

    def __init__(self, redis: Any = None, key: str = "notify:quota_until") -> None:
        self._redis = redis
        self._key = key
        self._until: dt.datetime | None = None

    @property
    def until(self) -> dt.datetime | None:
        """The last known end of a stop (for /metrics), or None."""
        return self._until

    async def paused(self, now: dt.datetime) -> bool:
        if self._redis is not None:
            try:
                raw = await self._redis.get(self._key)
            except Exception as exc:  # Redis down: go by what this process knows
                log.warning("quota flag unreadable (%s)", type(exc).__name__)
            else:
                self._until = dt.datetime.fromtimestamp(float(raw), dt.UTC) if raw else None
        return self._until is not None and now < self._until

    async def stop_until(self, until: dt.datetime, now: dt.datetime) -> None:
        first = not (self._until is not None and now < self._until)
        self._until = until
        if self._redis is not None:
            with contextlib.suppress(Exception):
                seconds = max(int((until - now).total_seconds()), 1)
                await self._redis.set(self._key, str(until.timestamp()), ex=seconds)
        if first:
            log.warning(
                "template messages stopped: the account's daily quota is used up (45009); they resume at %s",
                until.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M 北京时间"),
            )
