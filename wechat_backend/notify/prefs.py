"""What a resident chooses to be told: per bound archive, which kinds of push may come.

A row of ``notify_mutes`` mutes one kind for one archive for one identity, and the queue counts a
mute by any identity of the person (``queue.py``). So a choice is written for every identity of
the person — the official-account pages and the mini-program show the same — and a kind reads as
off when any of them muted it. Only :data:`kinds.CHOOSABLE` can be chosen: ``binding_added`` is a
security alert and always goes. The archives listed are those of the home page, in its order
(``binding.bound.LIST``); any other archive id is not found, the same as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import decide, open_fields, place_from
from ..binding.bound import LIST
from ..binding.person import PERSON_IDS, person_identity_ids
from ..binding.rules import RELATION_LABELS
from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..db.models import Archive, Binding, NotifyMute
from ..errors import BadInput, NotFound
from ..privacy import mask_name
from .kinds import BINDING_ADDED, CHOOSABLE, LABELS

ARCHIVES, BINDINGS, MUTES = Archive.__table__, Binding.__table__, NotifyMute.__table__

# ``me``: the caller's identity id (see binding/person.py).
MUTED = select(MUTES.c.archive_id, MUTES.c.kind).where(MUTES.c.identity_id.in_(PERSON_IDS))
BOUND_BY_PUBLIC_ID = (
    select(ARCHIVES.c.public_id, ARCHIVES.c.id)
    .join(BINDINGS, BINDINGS.c.archive_id == ARCHIVES.c.id)
    .where(BINDINGS.c.identity_id.in_(PERSON_IDS), ARCHIVES.c.public_id.in_(bindparam("archives", expanding=True)))
)
UNMUTE = delete(MUTES).where(
    MUTES.c.identity_id.in_(bindparam("ids", expanding=True)),
    MUTES.c.archive_id == bindparam("archive"),
    MUTES.c.kind == bindparam("kind"),
)

Choices = dict[str, dict[str, bool]]
"""archive public id -> {kind: pushed?} (only the kinds the caller named)."""


class NotifyPrefs:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, settings: Settings, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._settings = settings
        self._clock = clock

    def available(self) -> dict[str, bool]:
        """Per choosable kind: whether it is sent at all (its template is configured)."""
        return {k: bool(self._settings.templates.spec(k).template_id) for k in CHOOSABLE}

    def kinds(self) -> list[dict[str, Any]]:
        """The choosable kinds in order, with the words the settings page shows."""
        available = self.available()
        return [{"key": k, "label": LABELS[k], "available": available[k]} for k in CHOOSABLE]

    async def get(self, caller: audit.Caller) -> dict[str, Any]:
        """Every archive the caller's person has bound, with which kinds will be pushed for it."""
        async with self._sessions.begin() as s:
            return await self._state(s, caller)

    async def put(self, caller: audit.Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        """Apply ``{"archives": [{"id", "kinds": {kind: bool}}]}`` (kinds left out stay as they
        are) for every identity of the person; returns the new state. Idempotent."""
        choices = parse_choices(body)
        async with self._sessions.begin() as s:
            found = dict(
                (await s.execute(BOUND_BY_PUBLIC_ID, {"me": caller.identity_id, "archives": list(choices)})).all()
            )
            if set(found) != set(choices):
                audit.by_identity(s, caller, "notify_settings", result="denied", reason="not_bound")
                await s.commit()
                raise NotFound("未找到这份档案，请从“我的档案”进入")
            ids = await person_identity_ids(s, caller.identity_id)
            for public_id, kinds in choices.items():
                await self._write(s, ids, found[public_id], kinds)
                audit.by_identity(s, caller, "notify_settings", found[public_id])
            return await self._state(s, caller)

    def form_body(self, archive_ids: Iterable[str], checked: Iterable[str]) -> dict[str, Any]:
        """The settings form as a ``put`` body: one hidden ``archive`` per archive shown, one ``on``
        (``<archive id>:<kind>``) per ticked box. Kinds not sent at all are shown disabled, so
        they are never posted: they are left as they are."""
        ticked = set(checked)
        shown = [k for k, ok in self.available().items() if ok]
        return {
            "archives": [
                {"id": a, "kinds": {k: f"{a}:{k}" in ticked for k in shown}} for a in dict.fromkeys(archive_ids)
            ]
        }

    async def _state(self, s: AsyncSession, caller: audit.Caller) -> dict[str, Any]:
        today = self._clock.today()
        muted = {(m.archive_id, m.kind) for m in (await s.execute(MUTED, {"me": caller.identity_id})).all()}
        out: list[dict[str, Any]] = []
        seen: set[int] = set()
        for row in (await s.execute(LIST, {"me": caller.identity_id})).all():
            if row.id in seen:
                continue
            seen.add(row.id)
            fields = open_fields(self._keys, row)
            out.append(
                {
                    "id": row.public_id,
                    "name": mask_name(fields.get("name"), self._settings.privacy),
                    "relation": row.relation,
                    "relation_label": RELATION_LABELS.get(row.relation, "家人"),
                    "kinds": {k: (row.id, k) not in muted for k in CHOOSABLE},
                }
            )
            # The masked name is read from the archive: audited as the home page's list is.
            reason = decide(row, fields, place_from(row), today).reason
            audit.by_identity(s, caller, "archive_list", row.id, reason=None if reason == "ok" else reason)
        return {"archives": out, "available": self.available()}

    async def _write(
        self, s: AsyncSession, identity_ids: list[int], archive_id: int, kinds: Mapping[str, bool]
    ) -> None:
        off = [
            {"identity_id": i, "archive_id": archive_id, "kind": k}
            for k, on in kinds.items()
            if not on
            for i in identity_ids
        ]
        if off:
            insert = pg_insert if s.bind.dialect.name == "postgresql" else sqlite_insert
            stmt = insert(MUTES).on_conflict_do_nothing(index_elements=["identity_id", "archive_id", "kind"])
            await s.execute(stmt, off)
        for kind in (k for k, on in kinds.items() if on):
            await s.execute(UNMUTE, {"ids": identity_ids, "archive": archive_id, "kind": kind})


def parse_choices(body: Mapping[str, Any]) -> Choices:
    """The ``put`` body checked: 400 ``bad_input`` for anything but known kinds set to true/false."""
    archives = body.get("archives")
    if not isinstance(archives, list):
        raise BadInput("archives", "请提交要设置的档案列表（archives）")
    out: Choices = {}
    for item in archives:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("kinds"), dict):
            raise BadInput("archives", "每份档案须写明档案（id）和提醒设置（kinds）")
        for kind, on in item["kinds"].items():
            if kind == BINDING_ADDED:
                raise BadInput("kinds", "“档案被绑定”是安全提醒，不能关闭")
            if kind not in CHOOSABLE:
                raise BadInput("kinds", "提醒类型不正确，请刷新页面后重试")
            if not isinstance(on, bool):
                raise BadInput("kinds", "每种提醒只能选择打开（true）或关闭（false）")
        out.setdefault(item["id"], {}).update(item["kinds"])
    return out
