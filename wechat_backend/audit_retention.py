"""Deleting audit rows older than ``[audit] retention_days`` through the chain's checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .services import Services


async def purge_expired(services: Services) -> int:
    """Filled in by the audit retention work."""
    return 0
