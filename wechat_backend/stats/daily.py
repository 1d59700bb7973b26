"""The statistics' daily job: refresh key-group flags whose age boundary has come, then snapshot
the day's stock figures (see ``housekeeping``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..services import Services


async def daily_stats(services: Services) -> None:
    """Filled in by the statistics work."""
