"""``keys rotate``: re-encrypt every sealed row under the active key and rebuild stale blind indexes.

Archives name the blind-index key that made their indexes (``bidx_fp``). The staff table has no such
column; it is small, so after its rows are resealed every row's phone index is recomputed and
written where it differs (:meth:`KeyRotation._reindex`): a new ``blind_index_key`` alone is caught too.

Works in batches, one transaction each, walking ids upwards, so it can be interrupted at any moment
and simply run again: rows already done carry the active key id and fingerprint and are skipped.
Each write is guarded by the ciphertext it replaces, so a row that an import changed meanwhile is
left alone (it is already under the active key) rather than overwritten with older content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .blind_index import archive_indexes
from .crypto import DecryptError, KeyRing, key_id_of
from .db.models import Archive, Binding, Feedback, Notification, ServiceRecord, Staff


class RotationError(Exception):
    """Rotation cannot go on; the message says why in Chinese."""


@dataclass(frozen=True)
class Target:
    name: str
    table: Table
    aad_prefix: str
    aad_column: str
    blind_indexes: bool = False
    # Blind-index columns of a table without ``bidx_fp``, from the clear fields: checked row by row.
    indexes: Callable[[KeyRing, dict[str, Any]], dict[str, Any]] | None = None


def staff_indexes(keys: KeyRing, fields: dict[str, Any]) -> dict[str, Any]:
    """A staff row's blind index: its phone's (``phone`` purpose, as archives')."""
    return {"phone_bidx": keys.blind_index("phone", fields.get("phone") or "")}


TARGETS = (
    Target("archives", Archive.__table__, "archive", "upstream_id", blind_indexes=True),
    Target("service_records", ServiceRecord.__table__, "record", "upstream_id"),
    Target("notifications", Notification.__table__, "notification", "dedup_key"),
    Target("feedback", Feedback.__table__, "feedback", "public_id"),
    Target("bindings", Binding.__table__, "binding", "public_id"),
    Target("staff", Staff.__table__, "staff", "public_id", indexes=staff_indexes),
)


class KeyRotation:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing, *, batch_size: int = 500):
        self._sessions = sessions
        self._keys = keyring
        self._batch = batch_size

    def _stale(self, t: Target) -> Any:
        c = t.table.c
        cond = and_(c.key_id.is_not(None), c.key_id != self._keys.active_key)
        if t.blind_indexes:
            cond = or_(cond, c.bidx_fp != self._keys.blind_fingerprint)
        return cond

    async def pending(self) -> dict[str, int]:
        async with self._sessions() as s:
            counts = {
                t.name: await s.scalar(select(func.count()).select_from(t.table).where(self._stale(t))) or 0
                for t in TARGETS
            }
        for t in TARGETS:
            if t.indexes is not None:
                counts[t.name] += len(await self._misindexed(t))
        return counts

    async def run(self, progress: Callable[[int], None] | None = None) -> dict[str, int]:
        done: dict[str, int] = {}
        for t in TARGETS:
            done[t.name] = await self._rotate(t, progress)
            if t.indexes is not None:
                done[t.name] += await self._reindex(t, progress)
        return done

    def update_statement(self, t: Target) -> Any:
        """UPDATE by id, guarded by the ciphertext read: a row changed since is left alone."""
        c = t.table.c
        guard = update(t.table).where(c.id == bindparam("b_id"), c.sealed == bindparam("b_old"))
        values: dict[str, Any] = {"sealed": bindparam("b_sealed"), "key_id": bindparam("b_key_id")}
        if t.blind_indexes:
            values |= {k: bindparam(f"b_{k}") for k in archive_indexes(self._keys, {})}
        elif t.indexes is not None:
            values |= {k: bindparam(f"b_{k}") for k in t.indexes(self._keys, {})}
        return guard.values(**values)

    async def _rotate(self, t: Target, progress: Callable[[int], None] | None) -> int:
        c = t.table.c
        stmt = self.update_statement(t)
        last_id, total = 0, 0
        while True:
            async with self._sessions.begin() as s:
                rows = (
                    await s.execute(
                        select(c.id, c.sealed, c[t.aad_column])
                        .where(self._stale(t), c.id > last_id)
                        .order_by(c.id)
                        .limit(self._batch)
                    )
                ).all()
                if not rows:
                    return total
                params = [self.reseal(t, row_id, sealed, aad_value) for row_id, sealed, aad_value in rows]
                conn = await s.connection()
                await conn.execute(stmt, params)
            last_id = rows[-1][0]
            total += len(rows)
            if progress:
                progress(len(rows))

    def reseal(self, t: Target, row_id: int, sealed: bytes, aad_value: str) -> dict[str, Any]:
        aad = f"{t.aad_prefix}:{aad_value}"
        try:
            fields = self._keys.open(sealed, aad)
        except DecryptError:
            kid = _safe_key_id(sealed)
            raise RotationError(
                f"{t.name} 表第 {row_id} 行无法解密（密钥编号 {kid}）。请在 [security] keys 中保留该密钥后重试。"
            ) from None
        params = {
            "b_id": row_id,
            "b_old": sealed,
            "b_sealed": self._keys.seal(fields, aad),
            "b_key_id": self._keys.active_key,
        }
        if t.blind_indexes:
            params |= {f"b_{k}": v for k, v in archive_indexes(self._keys, fields).items()}
        elif t.indexes is not None:
            params |= {f"b_{k}": v for k, v in t.indexes(self._keys, fields).items()}
        return params

    async def _reindex(self, t: Target, progress: Callable[[int], None] | None) -> int:
        """Rows under the active key whose indexes another blind-index key made: rewritten in
        batches (same ciphertext, guarded by it as a reseal is)."""
        params = await self._misindexed(t)
        stmt = self.update_statement(t)
        for start in range(0, len(params), self._batch):
            batch = params[start : start + self._batch]
            async with self._sessions.begin() as s:
                await (await s.connection()).execute(stmt, batch)
            if progress:
                progress(len(batch))
        return len(params)

    async def _misindexed(self, t: Target) -> list[dict[str, Any]]:
        """Update parameters for each row under the active key whose blind indexes differ from what
        the current key makes. Read whole: only small tables (staff) are checked this way."""
        assert t.indexes is not None
        c = t.table.c
        names = list(t.indexes(self._keys, {}))
        query = select(c.id, c.sealed, c[t.aad_column], *(c[n] for n in names))
        async with self._sessions() as s:
            rows = (await s.execute(query.where(c.key_id == self._keys.active_key).order_by(c.id))).all()
        out = []
        for row_id, sealed, aad_value, *current in rows:
            try:
                fresh = t.indexes(self._keys, self._keys.open(sealed, f"{t.aad_prefix}:{aad_value}"))
            except DecryptError:
                raise RotationError(f"{t.name} 表第 {row_id} 行无法解密，请检查 [security] keys。") from None
            if [fresh[n] for n in names] != current:
                same = {"b_id": row_id, "b_old": sealed, "b_sealed": sealed, "b_key_id": self._keys.active_key}
                out.append(same | {f"b_{k}": v for k, v in fresh.items()})
        return out


def _safe_key_id(blob: bytes) -> str:
    try:
        return key_id_of(blob)
    except DecryptError:
        return "未知"
