"""The outbox: pushes are written in the transaction that causes them and sent until they go out.

A security alert is first tried right after its commit (``deliver``); everything else is sent by
``wechat-backend worker`` (``run``). Rows are claimed with a lease — their ``due_at`` moved past
the time a send can take, in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) — so any
number of workers, and the request that wrote the row, never send the same push twice at once. A
worker that dies mid-batch leaves its claimed rows to the next after the lease: those few may go
twice, which the platform's ``client_msg_id`` catches within 10 minutes.

Inside one worker ``[notify] concurrency`` sends are in flight at once; a batch's outcomes are
recorded in one transaction. What a push says is sealed in the row (SM4-GCM, associated data
``notification:<dedup_key>``); the archive is checked again before a push about it goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..archives import decide, open_fields, place_from, with_place
from ..clock import Clock
from ..config import NotifySettings
from ..crypto import KeyRing
from ..db.models import Archive, Identity, Notification
from ..wechat.api import WeChatApiError, WeChatError
from .kinds import URGENT
from .message import client_msg_id
from .policy import QUOTA, UNFOLLOWED, Outcome, after_failure, judge, retry_delay
from .queue import MUTED, RECIPIENTS, recipients_from
from .quiet import quiet_end_after
from .quota import QuotaFlag

log = logging.getLogger("wechat_backend.notify")

Send = Callable[[str, Mapping[str, Any], str], Awaitable[int | None]]
"""Sends one push of a kind: (openid, sealed payload, client_msg_id) → the platform's msgid; raises
``WeChatError``."""

LEASE = dt.timedelta(seconds=NotifySettings.lease_seconds)  # the default lease

NOTES = Notification.__table__
IDENTITIES = Identity.__table__
ARCHIVES = Archive.__table__

_RECIPIENTS = select(IDENTITIES.c.id, IDENTITIES.c.openid, IDENTITIES.c.subscribed).where(
    IDENTITIES.c.id.in_(bindparam("ids", expanding=True))
)
_ARCHIVES = with_place().where(ARCHIVES.c.id.in_(bindparam("ids", expanding=True)))
# Guarded by the claim: if the batch outlived its lease and another worker claimed the row since,
# this late outcome must not overwrite that worker's.
_RECORD = (
    update(NOTES)
    .where(NOTES.c.id == bindparam("note"), NOTES.c.status == "pending", NOTES.c.due_at == bindparam("leased"))
    .values(
        status=bindparam("new_status"),
        attempts=bindparam("tries"),
        due_at=bindparam("next_due"),
        sent_at=bindparam("sent"),
        last_errcode=bindparam("errcode"),
        msgid=bindparam("msg"),
    )
)
_UNFOLLOW = (
    update(IDENTITIES)
    .where(IDENTITIES.c.id.in_(bindparam("ids", expanding=True)), IDENTITIES.c.subscribed)
    .values(subscribed=False, unsubscribed_at=bindparam("now"))
)
_SKIP_PENDING_OF = (
    update(NOTES)
    .where(NOTES.c.identity_id == bindparam("identity"), NOTES.c.status == "pending")
    .values(status="skipped", last_errcode=UNFOLLOWED)
)


# --------------------------------------------------------------------------- the outbox


@dataclass(frozen=True)
class Push:
    """A claimed outbox row, with where it goes and what it says."""

    id: int
    kind: str
    attempts: int  # tries before this one
    openid: str | None  # None: the identity no longer follows the account
    payload: Mapping[str, Any] | None  # None: sealed with a key no longer in the ring
    dedup_key: str = ""
    identity_id: int | None = None
    # No longer wanted: the archive is hidden from its residents, the person unbound it, or muted the kind.
    hidden: bool = False
    lease_until: dt.datetime | None = None  # the claim's lease: an outcome is recorded only while it holds


@dataclass
class Pass:
    """What one worker pass did."""

    sent: int = 0
    retry: int = 0
    dead: int = 0
    skipped: int = 0

    @property
    def claimed(self) -> int:
        return self.sent + self.retry + self.dead + self.skipped

    def count(self, status: str) -> None:
        name = {"sent": "sent", "dead": "dead", "skipped": "skipped"}.get(status, "retry")
        setattr(self, name, getattr(self, name) + 1)


@dataclass(frozen=True)
class _Tried:
    push: Push
    outcome: Outcome
    errcode: int | None = None
    msgid: int | None = None


class Outbox:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        settings: NotifySettings,
        clock: Clock,
        senders: Mapping[str, Send],
        *,
        template_kinds: Collection[str] = (),
        quota_flag: QuotaFlag | None = None,
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._settings = settings
        self._clock = clock
        self._senders = senders
        self._template_kinds = frozenset(template_kinds)  # what the daily quota stops
        self._quota = quota_flag or QuotaFlag()
        self._lease = dt.timedelta(seconds=settings.lease_seconds)
        self._gate: asyncio.Semaphore | None = None  # the sends in flight in this worker, all lanes
        self._zone = ZoneInfo(settings.timezone)

    @property
    def quota(self) -> QuotaFlag:
        return self._quota

    # ------------------------------------------------------------------ entry points

    async def deliver(self, push: Push) -> str:
        """Send one push now and record how it went: ``sent``, ``pending`` (tried again later),
        ``skipped`` or ``dead``."""
        tried = await self._try(push)
        await self._record([tried])
        return tried.outcome.status

    async def run_once(self) -> Pass:
        """Claim the due rows (at most ``[notify] batch_size``), send them ``concurrency`` at a
        time, and record the outcomes together."""
        done = Pass()
        pushes = await self._claim()
        if not pushes:
            return done
        if self._gate is None:  # made here, inside the running loop
            self._gate = asyncio.Semaphore(self._settings.concurrency)
        gate = self._gate

        async def one(push: Push) -> _Tried:
            async with gate:
                return await self._try(push)

        tried = await asyncio.gather(*(one(p) for p in pushes))
        await self._record(tried)
        for t in tried:
            done.count(t.outcome.status)
        return done

    async def run(self, stop: asyncio.Event, *, every: float = 5.0, lanes: int = 2) -> None:
        """Pass after pass until ``stop`` is set; a full batch goes straight on to the next. Two
        lanes take turns so that the next batch is claimed and started while the last sends of the
        previous one are still out; they share one gate, so ``concurrency`` holds for the worker."""
        await asyncio.gather(*(self._lane(stop, every) for _ in range(lanes)))

    async def _lane(self, stop: asyncio.Event, every: float) -> None:
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:  # the database or Redis is down: say so, try again next time
                log.exception("outbox pass failed; next try in %.0f s", every)
                done = Pass()
            if done.claimed:
                log.info(
                    "outbox: %d sent, %d to retry, %d skipped, %d given up",
                    done.sent,
                    done.retry,
                    done.skipped,
                    done.dead,
                )
            if done.claimed < self._settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)

    async def retry_dead(self, kinds: Iterable[str] | None = None) -> int:
        """``notify retry --dead``: every dead push pending again, its tries reset."""
        stmt = update(NOTES).where(NOTES.c.status == "dead")
        if kinds:
            stmt = stmt.where(NOTES.c.kind.in_(list(kinds)))
        async with self._sessions.begin() as s:
            result = await s.execute(stmt.values(status="pending", attempts=0, due_at=self._clock.now()))
        return result.rowcount or 0

    async def depth(self) -> tuple[int, float]:
        """(pending rows, age in seconds of the oldest one that could go now) for /metrics: what
        quiet hours hold back is not late, so it does not count then."""
        now = self._clock.now()
        sendable = select(func.min(NOTES.c.due_at)).where(NOTES.c.status == "pending", NOTES.c.due_at <= now)
        if quiet_end_after(now, self._settings) is not None:
            sendable = sendable.where(NOTES.c.priority == 0)
        async with self._sessions() as s:
            pending = await s.scalar(select(func.count()).select_from(NOTES).where(NOTES.c.status == "pending"))
            oldest = await s.scalar(sendable)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=dt.UTC)
        return int(pending or 0), (now - oldest).total_seconds() if oldest else 0.0

    # ------------------------------------------------------------------ claiming

    async def _claim(self) -> list[Push]:
        now = self._clock.now()
        urgent_only = quiet_end_after(now, self._settings) is not None
        paused = await self._quota.paused(now)
        inner = select(NOTES.c.id).where(NOTES.c.status == "pending", NOTES.c.due_at <= now)
        if urgent_only:  # quiet hours: only security alerts go
            inner = inner.where(NOTES.c.priority == 0)
        if paused and self._template_kinds:  # the day's template quota is used up
            inner = inner.where(NOTES.c.kind.not_in(sorted(self._template_kinds)))
        inner = inner.order_by(NOTES.c.priority, NOTES.c.due_at).limit(self._settings.batch_size)
        claim = (
            update(NOTES)
            .where(NOTES.c.id.in_(inner.with_for_update(skip_locked=True).scalar_subquery()))
            .values(due_at=bindparam("lease_until"))
            .returning(
                NOTES.c.id,
                NOTES.c.identity_id,
                NOTES.c.archive_id,
                NOTES.c.kind,
                NOTES.c.dedup_key,
                NOTES.c.sealed,
                NOTES.c.attempts,
            )
        )
        lease_until = now + self._lease
        async with self._sessions.begin() as s:
            rows = (await s.execute(claim, {"lease_until": lease_until})).all()
            if not rows:
                return []
            ids = sorted({r.identity_id for r in rows})
            people = {p.id: p for p in (await s.execute(_RECIPIENTS, {"ids": ids})).all()}
            about = sorted({r.archive_id for r in rows if r.archive_id is not None and r.kind not in URGENT})
            allowed = await self._still_wanted(s, about, {r.kind for r in rows}, now) if about else set()
        out = []
        for r in sorted(rows, key=lambda r: r.id):
            who = people.get(r.identity_id)
            out.append(
                Push(
                    id=r.id,
                    kind=r.kind,
                    attempts=r.attempts,
                    openid=who.openid if who is not None and who.subscribed else None,
                    payload=self._payload(r.id, r.sealed, r.dedup_key),
                    dedup_key=r.dedup_key,
                    identity_id=r.identity_id,
                    hidden=r.archive_id in about and (r.archive_id, r.identity_id, r.kind) not in allowed,
                    lease_until=lease_until,
                )
            )
        return out

    async def _still_wanted(
        self, s: AsyncSession, archive_ids: list[int], kinds: set[str], now: dt.datetime
    ) -> set[tuple[int, int, str]]:
        """(archive, identity, kind) that may still be pushed: the archive visible today, the
        identity still bound to it (itself or through its unionid) and following, the kind not
        muted since the push was queued. An unbinding or a mute stops what is already queued."""
        visible = await self._visible(s, archive_ids, now)
        if not visible:
            return set()
        ids = sorted(visible)
        bound = (await s.execute(RECIPIENTS, {"ids": ids})).all()
        muted = {(m.identity_id, m.archive_id, m.kind) for m in (await s.execute(MUTED, {"ids": ids})).all()}
        return {
            (who.archive_id, who.identity_id, kind) for kind in kinds for who in recipients_from(bound, muted, kind)
        }

    async def _visible(self, s: AsyncSession, archive_ids: list[int], now: dt.datetime) -> set[int]:
        """The archives still visible to their residents today."""
        today = now.astimezone(self._zone).date()
        out = set()
        for row in (await s.execute(_ARCHIVES, {"ids": archive_ids})).all():
            try:
                if decide(row, open_fields(self._keys, row), place_from(row), today).visible:
                    out.add(row.id)
            except Exception as exc:  # unreadable: treat as hidden, never as visible
                log.error("archive %s cannot be read for a push (%s)", row.id, type(exc).__name__)
        return out

    def _payload(self, note_id: int, sealed: bytes | None, dedup_key: str) -> Mapping[str, Any] | None:
        """What the push says; None when it cannot be read (its key is no longer in the ring): that
        row is given up, the others still go out."""
        if not sealed:
            return {}
        try:
            return self._keys.open(sealed, f"notification:{dedup_key}")
        except Exception as exc:
            log.error("push %s cannot be read (%s): giving it up", note_id, type(exc).__name__)
            return None

    # ------------------------------------------------------------------ sending

    async def _try(self, push: Push) -> _Tried:
        now = self._clock.now()
        max_attempts = self._settings.max_attempts
        if push.payload is None:
            return _Tried(push, Outcome("dead", push.attempts + 1, now))
        if push.hidden or not push.openid:  # archive hidden since, or no longer following
            return _Tried(push, Outcome("skipped", push.attempts, now), UNFOLLOWED if not push.openid else None)
        send = self._senders.get(push.kind)
        if send is None:
            log.error("no sender for push kind %s (outbox row %s)", push.kind, push.id)
            return _Tried(push, Outcome("dead", push.attempts + 1, now))
        if push.kind in self._template_kinds and await self._quota.paused(now):
            return _Tried(push, judge(QUOTA, False, push.attempts, max_attempts, now), QUOTA)
        errcode = None
        try:
            msgid = await send(push.openid, push.payload, client_msg_id(push.dedup_key or str(push.id)))
            return _Tried(push, judge(None, True, push.attempts, max_attempts, now), msgid=msgid)
        except WeChatApiError as exc:
            errcode = exc.errcode
        except WeChatError as exc:  # timeout, connection, token store: try again later
            log.warning("push %s not sent now (%s)", push.id, type(exc).__name__)
        outcome = judge(errcode, False, push.attempts, max_attempts, now, random.uniform(0.8, 1.0))
        if outcome.quota and push.kind in self._template_kinds:
            await self._quota.stop_until(outcome.due_at, now)
        elif outcome.quota:  # a quota on another API (customer-service text): retry as usual
            tries = push.attempts + 1
            due = now + retry_delay(tries)
            outcome = Outcome("dead", tries, now) if tries >= max_attempts else Outcome("pending", tries, due)
        return _Tried(push, outcome, errcode)

    async def _record(self, tried: list[_Tried]) -> None:
        now = self._clock.now()
        params = [
            {
                "note": t.push.id,
                "new_status": t.outcome.status,
                "tries": t.outcome.attempts,
                "next_due": t.outcome.due_at,
                "sent": now if t.outcome.status == "sent" else None,
                "errcode": t.errcode,
                "msg": t.msgid,
                "leased": t.push.lease_until,
            }
            for t in tried
        ]
        gone = sorted({t.push.identity_id for t in tried if t.outcome.unfollowed and t.push.identity_id})
        async with self._sessions.begin() as s:
            await s.execute(_RECORD, params)
            if gone:  # 43004: no more pushes until the next follow (the subscribe event)
                await s.execute(_UNFOLLOW, {"ids": gone, "now": now})
        for t in tried:
            if t.outcome.status == "dead":
                log.warning("push %s given up after %d tries (errcode %s)", t.push.id, t.outcome.attempts, t.errcode)


async def skip_pending_of(s: AsyncSession, identity_id: int) -> int:
    """An unfollow stops every push to that identity at once: its pending rows become ``skipped``."""
    result = await s.execute(_SKIP_PENDING_OF, {"identity": identity_id})
    return result.rowcount or 0


__all__ = [
    "LEASE",
    "Outbox",
    "Outcome",
    "Pass",
    "Push",
    "QuotaFlag",
    "Send",
    "after_failure",
    "judge",
    "retry_delay",
    "skip_pending_of",
]
