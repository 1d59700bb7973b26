"""Writing pushes into the outbox, in the caller's transaction: who gets one, and whether they may.

A push for an archive goes to every official-account identity bound to it — a mini-program
identity through the official-account identity its unionid links — that follows the account and
did not mute that kind for that archive (a mute by either identity of the person counts), and only
while the archive is visible to its residents. One row per (kind, what it is about, identity): the
``dedup_key`` is unique, so queueing the same thing again adds nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..archives import decide, open_fields, place_from, with_place
from ..config import Settings
from ..crypto import KeyRing
from ..db.models import Archive, Binding, Identity, Notification, NotifyMute
from ..privacy import mask_name
from . import schedule
from .kinds import RECORD_ADDED, URGENT
from .quiet import send_at

BINDINGS = Binding.__table__
IDENTITIES = Identity.__table__
MUTES = NotifyMute.__table__
NOTES = Notification.__table__
INSERT_CHUNK = 500

_via = IDENTITIES.alias("via")
_oa = IDENTITIES.alias("oa")
_DIRECT = (
    select(
        BINDINGS.c.archive_id, BINDINGS.c.relation, BINDINGS.c.identity_id.label("bound_id"), _oa.c.id.label("oa_id")
    )
    .select_from(BINDINGS.join(_oa, _oa.c.id == BINDINGS.c.identity_id))
    .where(BINDINGS.c.archive_id.in_(bindparam("ids", expanding=True)), _oa.c.channel == "oa", _oa.c.subscribed)
)
_THROUGH_UNIONID = (
    select(
        BINDINGS.c.archive_id, BINDINGS.c.relation, BINDINGS.c.identity_id.label("bound_id"), _oa.c.id.label("oa_id")
    )
    .select_from(
        BINDINGS.join(_via, _via.c.id == BINDINGS.c.identity_id).join(
            _oa, and_(_oa.c.unionid == _via.c.unionid, _oa.c.channel == "oa")
        )
    )
    .where(
        BINDINGS.c.archive_id.in_(bindparam("ids", expanding=True)),
        _via.c.channel == "mp",
        _via.c.unionid.is_not(None),
        _oa.c.subscribed,
    )
)
RECIPIENTS = union_all(_DIRECT, _THROUGH_UNIONID)
MUTED = select(MUTES.c.identity_id, MUTES.c.archive_id, MUTES.c.kind).where(
    MUTES.c.archive_id.in_(bindparam("ids", expanding=True))
)
ARCHIVES_WITH_PLACE = with_place().where(Archive.__table__.c.id.in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class Event:
    """Something to tell an archive's people: a record arrived, or a reminder is due on ``date``."""

    kind: str
    archive_id: int
    date: dt.date
    ref: str  # what makes it one event for the archive: the record's upstream id, or the due date
    record: str | None = None  # the record's public id (record_added)


@dataclass(frozen=True)
class Recipient:
    archive_id: int
    identity_id: int  # the official-account identity the push goes to
    bound_ids: frozenset[int]  # the identities that bound the archive for this person (oa and/or mp)
    own: bool  # bound as "self" (no name in the push)


def dedup_key(event: Event, identity_id: int) -> str:
    if event.kind == RECORD_ADDED:
        return f"{event.kind}:{event.ref}:{identity_id}"
    return f"{event.kind}:{event.archive_id}:{event.ref}:{identity_id}"


def recipients_from(rows: Iterable[Any], muted: set[tuple[int, int, str]], kind: str) -> list[Recipient]:
    """One recipient per (archive, official-account identity), without those who muted ``kind``."""
    found: dict[tuple[int, int], tuple[set[int], bool]] = {}
    for r in rows:
        ids, own = found.get((r.archive_id, r.oa_id), (set(), False))
        ids.update({r.bound_id, r.oa_id})
        found[(r.archive_id, r.oa_id)] = (ids, own or r.relation == "self")
    return [
        Recipient(archive, oa, frozenset(ids), own)
        for (archive, oa), (ids, own) in sorted(found.items())
        if not any((i, archive, kind) in muted for i in ids)
    ]


class Queuer:
    """Writes the pushes for a list of events in the caller's session (and transaction)."""

    def __init__(self, keyring: KeyRing, settings: Settings) -> None:
        self._keys = keyring
        self._settings = settings

    def enabled(self, kind: str) -> bool:
        """A kind with no template configured cannot be sent: nothing is queued for it."""
        return bool(self._settings.templates.spec(kind).template_id)

    async def queue(self, s: AsyncSession, events: Sequence[Event], now: dt.datetime, today: dt.date) -> int:
        """Queue what ``events`` call for; returns the rows written (not those already there)."""
        events = [e for e in events if self.enabled(e.kind)]
        if not events:
            return 0
        ids = sorted({e.archive_id for e in events})
        rows = (await s.execute(RECIPIENTS, {"ids": ids})).all()
        if not rows:
            return 0
        bound = sorted({r.archive_id for r in rows})
        muted = {(m.identity_id, m.archive_id, m.kind) for m in (await s.execute(MUTED, {"ids": bound})).all()}
        readers = self._visible(await s.execute(ARCHIVES_WITH_PLACE, {"ids": bound}), today)
        by_kind: dict[str, list[Recipient]] = {}
        out: list[dict[str, Any]] = []
        for event in events:
            archive = readers.get(event.archive_id)
            if archive is None:
                continue
            public_id, fields, institution = archive
            birth = dt.date.fromisoformat(fields["birth_date"])
            if not schedule.applies(event.kind, birth, event.date):
                continue
            if event.kind not in by_kind:
                by_kind[event.kind] = recipients_from(rows, muted, event.kind)
            for who in by_kind[event.kind]:
                if who.archive_id != event.archive_id:
                    continue
                name = None if who.own else mask_name(fields.get("name"), self._settings.privacy)
                payload = {
                    "archive": public_id,
                    "record": event.record,
                    "date": event.date.isoformat(),
                    "institution": institution,
                    "name": name,
                }
                out.append(
                    self.row(
                        event.kind, dedup_key(event, who.identity_id), who.identity_id, event.archive_id, payload, now
                    )
                )
        return await insert_pushes(s, out)

    def row(
        self, kind: str, key: str, identity_id: int, archive_id: int | None, payload: dict[str, Any], now: dt.datetime
    ) -> dict[str, Any]:
        """An outbox row, its payload sealed, due when quiet hours allow."""
        urgent = kind in URGENT
        return {
            "identity_id": identity_id,
            "archive_id": archive_id,
            "kind": kind,
            "dedup_key": key,
            "status": "pending",
            "priority": 0 if urgent else 1,
            "attempts": 0,
            "due_at": send_at(now, self._settings.notify, key, urgent=urgent),
            "sealed": self._keys.seal(payload, f"notification:{key}"),
            "key_id": self._keys.active_key,
            "created_at": now,
            "updated_at": now,
        }

    def _visible(self, rows: Iterable[Any], today: dt.date) -> dict[int, tuple[str, dict[str, Any], str]]:
        """archive id → (public id, decrypted fields, institution name), visible archives only."""
        out = {}
        for row in rows:
            fields = open_fields(self._keys, row)
            place = place_from(row)
            if decide(row, fields, place, today).visible:
                out[row.id] = (row.public_id, fields, place.institution)
        return out


async def insert_pushes(s: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """INSERT … ON CONFLICT (dedup_key) DO NOTHING; returns the rows actually written."""
    written = 0
    dialect_insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        stmt = dialect_insert(NOTES).values(chunk).on_conflict_do_nothing(index_elements=["dedup_key"])
        written += len((await s.execute(stmt.returning(NOTES.c.id))).all())
    return written
