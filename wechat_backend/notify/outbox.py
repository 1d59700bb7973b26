"""The outbox: pushes are written in the transaction that causes them and sent until they go out.

A push is first tried right after its commit (``deliver``); whatever did not go out is sent by
``wechat-backend worker`` (``run``). Rows are claimed with a lease — their ``due_at`` moved past
the time a send can take, in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL) — so any
number of workers, and the request that wrote the row, never send the same push twice at once.
What a push says is sealed in the row (SM4-GCM, associated data ``notification:<dedup_key>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import Clock
from ..config import NotifySettings
from ..crypto import KeyRing
from ..db.models import Identity, Notification
from ..wechat.api import WeChatApiError, WeChatError

log = logging.getLogger("wechat_backend.notify")

Send = Callable[[str, Mapping[str, Any]], Awaitable[None]]
"""Sends one push of a kind to an openid, from its sealed payload; raises ``WeChatError``."""

LEASE = dt.timedelta(minutes=2)  # longer than a send can take (the WeChat client times out sooner)
FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 3600
# Errors no retry can fix: invalid openid, the person no longer follows the account, the person
# refused this account's template messages.
PERMANENT_ERRCODES = frozenset({40003, 43004, 43101})

NOTES = Notification.__table__
IDENTITIES = Identity.__table__

_CLAIM = (
    update(NOTES)
    .where(
        NOTES.c.id.in_(
            select(NOTES.c.id)
            .where(NOTES.c.status == "pending", NOTES.c.due_at <= bindparam("now"))
            .order_by(NOTES.c.due_at)
            .limit(bindparam("limit"))
            .with_for_update(skip_locked=True)
        )
    )
    .values(due_at=bindparam("lease_until"))
    .returning(NOTES.c.id, NOTES.c.identity_id, NOTES.c.kind, NOTES.c.dedup_key, NOTES.c.sealed, NOTES.c.attempts)
)
_RECIPIENTS = select(IDENTITIES.c.id, IDENTITIES.c.openid, IDENTITIES.c.subscribed).where(
    IDENTITIES.c.id.in_(bindparam("ids", expanding=True))
)
_RECORD = (
    update(NOTES)
    .where(NOTES.c.id == bindparam("note"))
    .values(
        status=bindparam("new_status"),
        attempts=NOTES.c.attempts + 1,
        due_at=bindparam("next_due"),
        sent_at=bindparam("sent"),
        last_errcode=bindparam("errcode"),
    )
)


# --------------------------------------------------------------------------- policy (pure)


def retry_delay(attempts: int) -> dt.timedelta:
    """After the ``attempts``-th failed try: 1, 2, 4 … minutes, at most an hour."""
    return dt.timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS))


def after_failure(errcode: int | None, attempts: int, max_attempts: int) -> str:
    """``dead`` when no retry can help or the tries are used up, else ``pending``."""
    if errcode in PERMANENT_ERRCODES or attempts >= max_attempts:
        return "dead"
    return "pending"


# --------------------------------------------------------------------------- the outbox


@dataclass(frozen=True)
class Push:
    """A claimed outbox row, with where it goes and what it says."""

    id: int
    kind: str
    attempts: int  # tries before this one
    openid: str | None
    payload: Mapping[str, Any] | None  # None: sealed with a key no longer in the ring


@dataclass
class Pass:
    """What one worker pass did."""

    sent: int = 0
    retry: int = 0
    dead: int = 0

    @property
    def claimed(self) -> int:
        return self.sent + self.retry + self.dead


class Outbox:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        settings: NotifySettings,
        clock: Clock,
        senders: Mapping[str, Send],
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._settings = settings
        self._clock = clock
        self._senders = senders

    async def deliver(self, push: Push) -> str:
        """Send one push and record how it went: ``sent``, ``pending`` (tried again later) or ``dead``."""
        sent, errcode = False, None
        send = self._senders.get(push.kind)
        if push.payload is None:
            return await self._record(push, False, None, give_up=True)
        if send is None:
            log.error("no sender for push kind %s (outbox row %s)", push.kind, push.id)
        elif not push.openid:
            errcode = 43004  # no longer follows the account: nothing can reach them
        else:
            try:
                await send(push.openid, push.payload)
                sent = True
            except WeChatApiError as exc:
                errcode = exc.errcode
            except WeChatError as exc:  # timeout, connection, token store: try again later
                log.warning("push %s not sent now (%s)", push.id, type(exc).__name__)
        return await self._record(push, sent, errcode)

    async def run_once(self) -> Pass:
        """Claim the due rows (at most ``[notify] batch_size``) and deliver each."""
        done = Pass()
        for push in await self._claim():
            outcome = await self.deliver(push)
            if outcome == "sent":
                done.sent += 1
            elif outcome == "dead":
                done.dead += 1
            else:
                done.retry += 1
        return done

    async def run(self, stop: asyncio.Event, *, every: float = 5.0) -> None:
        """Pass after pass until ``stop`` is set; a full batch goes straight on to the next."""
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:  # the database or Redis is down: say so, try again next time
                log.exception("outbox pass failed; next try in %.0f s", every)
                done = Pass()
            if done.claimed:
                log.info("outbox: %d sent, %d to retry, %d given up", done.sent, done.retry, done.dead)
            if done.claimed < self._settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=every)

    async def _claim(self) -> list[Push]:
        now = self._clock.now()
        params = {"now": now, "limit": self._settings.batch_size, "lease_until": now + LEASE}
        async with self._sessions.begin() as s:
            rows = (await s.execute(_CLAIM, params)).all()
            ids = sorted({r.identity_id for r in rows})
            people = {p.id: p for p in (await s.execute(_RECIPIENTS, {"ids": ids})).all()} if ids else {}
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
                )
            )
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

    async def _record(self, push: Push, sent: bool, errcode: int | None, *, give_up: bool = False) -> str:
        now = self._clock.now()
        attempts = push.attempts + 1
        status = "sent" if sent else after_failure(errcode, attempts, self._settings.max_attempts)
        if give_up:
            status = "dead"
        async with self._sessions.begin() as s:
            await s.execute(
                _RECORD,
                {
                    "note": push.id,
                    "new_status": status,
                    "next_due": now + retry_delay(attempts) if status == "pending" else now,
                    "sent": now if sent else None,
                    "errcode": errcode,
                },
            )
        if status == "dead":
            log.warning("push %s given up after %d tries (errcode %s)", push.id, attempts, errcode)
        return status
