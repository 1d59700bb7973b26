"""Once-a-day jobs of the worker, after the due scan: the statistics' daily snapshot and key-group
refresh (``stats.daily``), and the audit log's retention (``audit_retention``). Each job is
idempotent, so two workers running it the same day do no harm."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from typing import TYPE_CHECKING

from .clock import LOCAL_ZONE

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("wechat_backend.housekeeping")

CHECK_EVERY_SECONDS = 300.0


async def run_daily(services: Services) -> None:
    """Every daily job once, now."""
    from .audit_retention import purge_expired
    from .stats.daily import daily_stats

    await daily_stats(services)
    await purge_expired(services)


async def run(services: Services, stop: asyncio.Event) -> None:
    """Run the daily jobs once per local day (at start, then after each midnight)."""
    last: dt.date | None = None
    while not stop.is_set():
        today = services.clock.now().astimezone(LOCAL_ZONE).date()
        if today != last:
            try:
                await run_daily(services)
                last = today
            except Exception:  # a failed day is retried at the next check, the worker goes on
                log.exception("daily housekeeping failed; retrying in %.0f s", CHECK_EVERY_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHECK_EVERY_SECONDS)
