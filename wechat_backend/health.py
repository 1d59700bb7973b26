"""Readiness: can this process reach what it needs to serve? (Liveness is just /healthz.)"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from .redis_client import RedisHandle

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 2.0


async def failing_parts(engine: AsyncEngine, redis: RedisHandle | None) -> list[str]:
    """Names of the parts that do not answer within the timeout: ``database``, ``redis``."""
    failing = []
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; the kind goes to the log
        log.warning("readiness: database %s", type(exc).__name__)
        failing.append("database")
    try:
        if redis is None:
            raise ConnectionError("no redis configured")
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await redis.client.ping()
    except Exception as exc:
        log.warning("readiness: redis %s", type(exc).__name__)
        failing.append("redis")
    return failing
