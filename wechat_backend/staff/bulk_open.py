"""Bulk opening (批量开放): every archive in the member's scope whose status is 正常, whose 档案完整率
is at least ``[staff] open_min_completeness`` and which is closed because the upstream says so and
no one here decided otherwise, gets the local decision 开放.

What it does not look at, on purpose:

* sensitive programmes. Leaving those archives out would make the set of archives opened (and so
  the statistics, and the next preview) tell who is in one. They are opened like any other and the
  read-time policy (``privacy.visibility``) keeps hiding them from their residents.
* archives a member closed one by one (``open_override`` False): that was somebody's decision, and
  a bulk action does not silently undo it. The preview says how many there are.

The run is one transaction (all or nothing: a crash half-way opens nothing, and running it again is
safe), updated 1000 ids per statement, with one audit row (``archive_bulk_open``) and the recount of
the institutions it touched. It runs as a background task of the serving process so that 50,000
archives never time out a request; its progress lives in Redis under a job id that only its
starter may read, and the page polls it (``static/js/staff-bulk.js``). A second run in the same
scope while one is going is refused (a Redis lock; the database re-checks every row anyway).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import Clock
from ..config import StaffSettings
from ..db.models import Archive
from ..errors import Conflict, NotFound, Unavailable
from ..stats import tally
from .opening import StaffCall, in_scope, record, require_opener
from .scope import StaffMember

log = logging.getLogger("wechat_backend.staff.bulk_open")

BATCH = 1000  # ids per UPDATE
JOB_TTL = 3600  # seconds a finished (or lost) job's progress stays readable
LOCK_TTL = 900  # a run holds its scope's lock at most this long (a crashed process frees it)
RELEASE_IF_OURS = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def candidates(min_completeness: int) -> ColumnElement[bool]:
    """正常, complete enough, and closed only because the upstream's flag says so."""
    return and_(
        Archive.status == "normal",
        Archive.completeness >= min_completeness,
        Archive.open_override.is_(None),
        Archive.open_to_resident.is_(False),
    )


def closed_here(min_completeness: int) -> ColumnElement[bool]:
    """Archives that would qualify but a member closed them one by one (left alone)."""
    return and_(Archive.status == "normal", Archive.completeness >= min_completeness, Archive.open_override.is_(False))


def scope_name(member: StaffMember) -> str:
    """The scope as the audit row names it: ``institution:<code>`` or ``county:<code>``."""
    if member.role == "institution":
        return f"institution:{member.institution_code}"
    return f"{member.role}:{member.county_code}"


@dataclass(frozen=True)
class Preview:
    count: int  # would be opened
    closed_here: int  # qualify, but closed one by one: left alone
    min_completeness: int


@dataclass(frozen=True)
class Progress:
    """``state``: running, done or failed. ``done`` of ``total`` rows processed so far; ``opened``
    once the run has committed."""

    job_id: str
    state: str
    total: int
    done: int
    opened: int

    def as_json(self) -> dict[str, Any]:
        return {"job": self.job_id, "state": self.state, "total": self.total, "done": self.done, "opened": self.opened}


class BulkOpen:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis | None,
        key_prefix: str,
        clock: Clock,
        settings: StaffSettings,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._prefix = key_prefix
        self._clock = clock
        self._min = settings.open_min_completeness
        self._tasks: set[asyncio.Task[None]] = set()

    def job_key(self, job_id: str) -> str:
        return f"{self._prefix}:bulk_open:job:{job_id}"

    def lock_key(self, scope: str) -> str:
        return f"{self._prefix}:bulk_open:lock:{scope}"

    async def preview(self, member: StaffMember) -> Preview:
        require_opener(member)
        async with self._sessions() as s:
            count = await s.scalar(select(func.count()).where(in_scope(member), candidates(self._min)))
            kept = await s.scalar(select(func.count()).where(in_scope(member), closed_here(self._min)))
        return Preview(count or 0, kept or 0, self._min)

    async def start(self, call: StaffCall) -> str:
        """Start a run in the background; returns its job id (for :meth:`progress`)."""
        require_opener(call.member)
        redis = self._need_redis()
        scope = scope_name(call.member)
        job_id = secrets.token_urlsafe(12)
        if not await redis.set(self.lock_key(scope), job_id, nx=True, ex=LOCK_TTL):
            raise Conflict("本范围正在批量开放，请等待完成后再试")
        await self._save(job_id, call.member, "running", 0, 0, 0)
        task = asyncio.create_task(self._run(call, job_id, scope))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job_id

    async def progress(self, member: StaffMember, job_id: str) -> Progress:
        """A job's progress; a job that is not the member's, or long gone, is not found."""
        raw = await self._need_redis().get(self.job_key(job_id))
        job = json.loads(raw) if raw else None
        if job is None or job.get("owner") != member.public_id:
            raise NotFound("未找到这次批量开放的进度（超过一小时或不是您发起的）。请回到批量开放页面查看")
        return Progress(job_id, job["state"], job["total"], job["done"], job["opened"])

    async def drain(self) -> None:
        """Wait for the runs in progress (before the process closes its database)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, call: StaffCall, job_id: str, scope: str) -> None:
        member = call.member
        try:
            opened, total = 0, 0
            async with self._sessions.begin() as s:
                rows = (
                    await s.execute(
                        select(Archive.id, Archive.institution_code)
                        .where(in_scope(member), candidates(self._min))
                        .order_by(Archive.id)
                    )
                ).all()
                total = len(rows)
                await self._note(job_id, member, "running", total, 0, 0)
                for start in range(0, total, BATCH):
                    opened += await self._open(s, member, [r.id for r in rows[start : start + BATCH]])
                    await self._note(job_id, member, "running", total, min(start + BATCH, total), 0)
                await tally.recount(s, {r.institution_code for r in rows})
                detail = {"count": opened, "scope": scope, "min_completeness": self._min}
                record(call, s, "archive_bulk_open", detail=detail)
            await self._note(job_id, member, "done", total, total, opened)
        except Exception:
            log.exception("bulk open %s failed", job_id)
            await self._note(job_id, member, "failed", 0, 0, 0)
        finally:
            try:
                # Only our own lock: one that expired and was taken by a later run stays theirs.
                await self._need_redis().eval(RELEASE_IF_OURS, 1, self.lock_key(scope), job_id)
            except RedisError:
                log.warning("bulk open %s: the scope lock was not released (it expires)", job_id)

    async def _open(self, s: AsyncSession, member: StaffMember, ids: Sequence[int]) -> int:
        # The conditions again: a row changed since it was listed (an import, a member) is skipped.
        result = await s.execute(
            update(Archive)
            .where(Archive.id.in_(ids), in_scope(member), candidates(self._min))
            .values(open_override=True, open_override_at=self._clock.now(), open_override_by=member.id)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0

    async def _save(self, job_id: str, member: StaffMember, state: str, total: int, done: int, opened: int) -> None:
        job = {"owner": member.public_id, "state": state, "total": total, "done": done, "opened": opened}
        await self._need_redis().set(self.job_key(job_id), json.dumps(job), ex=JOB_TTL)

    async def _note(self, job_id: str, member: StaffMember, state: str, total: int, done: int, opened: int) -> None:
        """Progress while running: best effort (Redis may lose it; the database work goes on)."""
        try:
            await self._save(job_id, member, state, total, done, opened)
        except RedisError:
            log.warning("bulk open %s: progress not saved", job_id)

    def _need_redis(self) -> Redis:
        if self._redis is None:
            raise Unavailable()
        return self._redis
