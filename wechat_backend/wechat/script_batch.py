"""A Redis Lua script called through one pipeline per event-loop turn.

The callback answers many pushes concurrently; each needs one atomic script call (claim the
dedupe key, splice in the cached contact line, store the reply). Sending the calls of one loop
turn together costs one round trip for all of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

_Call = tuple[list[str], list[Any], "asyncio.Future[Any]"]


class ScriptBatch:
    """Calls a Lua script, one pipeline for all the calls made in one event-loop turn: the messages
    being handled together share one round trip. Each call stays atomic in Redis. A batch not
    answered within ``timeout`` fails its callers with TimeoutError (one timer per batch); it is
    still made, its answers dropped."""

    def __init__(self, redis: aioredis.Redis, source: str, timeout: float) -> None:
        self._redis = redis
        self._script = redis.register_script(source)  # its sha, and the loader after a Redis restart
        self._timeout = timeout
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def call(self, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """The script's answer, once the batch this call joins has been sent and answered."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((keys, args, future))
        return future

    async def drain(self) -> None:
        while self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        loop = asyncio.get_running_loop()
        expiry = loop.call_later(self._timeout, _fail_waiting, batch)
        task = loop.create_task(self._send(batch, expiry))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call], expiry: asyncio.TimerHandle) -> None:
        try:
            results = await self._execute(batch)
        except Exception as exc:  # the callers log it and answer without Redis
            results = [exc] * len(batch)
        except asyncio.CancelledError:  # shutting down: no answer is coming, release the callers now
            _fail_waiting(batch)
            raise
        finally:
            expiry.cancel()
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        results = await self._pipeline(batch)
        if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted or flushed its scripts
            await self._redis.script_load(self._script.script)
            results = await self._pipeline(batch)
        return results

    async def _pipeline(self, batch: list[_Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            return await pipe.execute(raise_on_error=False)


def _fail_waiting(batch: list[_Call]) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(TimeoutError())
