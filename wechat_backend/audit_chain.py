"""The audit log's tamper-evident chain: HMAC-SM3 over every row, in the order a sealer took them.

Rows are committed by many processes, out of id order, and a rollback leaves a gap in the ids; so
rows are not chained when written but by a **sealer** afterwards (the worker, every few seconds;
``wechat-backend audit seal``). A sealing run takes the unsealed rows (``seq IS NULL``) in id order,
in batches, each batch in one transaction that starts by locking the chain's head row
(``UPDATE audit_chain SET seq = seq WHERE id = 1 RETURNING …``: a row lock on PostgreSQL, the
write lock on SQLite), so two sealers never interleave. Each row gets the next ``seq`` (1, 2, 3 …
with no gaps) and ``mac = HMAC-SM3(k, prev mac || canonical(row))``, where ``canonical`` covers
every column of the row (:func:`canonical`) and ``k`` is derived from ``[security] audit_hmac_key``.
A row that commits after a run is simply taken by the next one. Rows written before revision 0004
get their clear reason sealed on the way (audit.py says which reasons stay in clear).

Deleting rows leaves a gap in ``seq``; editing one breaks its mac. Deleting the *newest* rows
leaves no gap, so the head (last seq and mac) is also kept outside the table: in a log line
(``audit chain head seq=N mac=<16 hex>``) and in ``<data_dir>/audit-chain-head.json`` (written
atomically, and only forwards). A sealer that finds that file ahead of the table, or disagreeing
with it, stops sealing rather than chain new rows over the evidence.

Retention: :meth:`AuditChain.checkpoint` records the head's (seq, mac), tagged with the key, and
:meth:`AuditChain.checkpoint_at` a chosen row's, after recomputing the macs up to it; rows with
``seq`` up to a checkpoint may then be deleted and :meth:`AuditChain.verify` starts from the newest
checkpoint below the first remaining row, and steps over a gap that ends at a checkpoint (a
retention run deletes from the checkpoint downwards, so one cut short leaves just such a gap).
The window this does not cover: a row is unprotected between its commit and its sealing
(seconds), and whoever holds the audit key can rewrite the chain.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .audit import must_seal, reason_columns, utc_text
from .clock import Clock
from .config import SecuritySettings
from .crypto import KeyRing, hmac_sm3
from .db.models import AuditChainHead, AuditCheckpoint, AuditEvent

log = logging.getLogger("wechat_backend.audit")

HEAD_FILE = "audit-chain-head.json"
GENESIS = bytes(32)  # the "previous mac" of seq 1
CANONICAL_VERSION = 1
# Every column of an audit row, in the canonical form's (sorted) keys.
COLUMNS = (
    "id",
    "seq",
    "at",
    "actor_type",
    "actor_id",
    "action",
    "archive_id",
    "record_id",
    "result",
    "reason",
    "reason_sealed",
    "key_id",
    "request_id",
    "client_ip",
    "detail",
)
MAX_PROBLEMS = 100  # a wrong key fails every row: name the first ones, count the rest

LOG = AuditEvent.__table__
HEAD = AuditChainHead.__table__
CHECKPOINTS = AuditCheckpoint.__table__


# --------------------------------------------------------------------------- canonical form and macs (pure)


def chain_keys(secret: bytes) -> tuple[bytes, bytes]:
    """The row key and the checkpoint key, derived apart from the configured secret."""
    return hmac_sm3(secret, b"wb-audit-chain:row"), hmac_sm3(secret, b"wb-audit-chain:checkpoint")


def canonical(row: Mapping[str, Any]) -> bytes:
    """The bytes a row's mac covers: every column, as compact JSON with sorted keys (``at`` as
    fixed UTC text with microseconds, ``reason_sealed`` as hex, ``detail`` as canonical JSON)."""
    doc = {name: row[name] for name in COLUMNS}
    doc["v"] = CANONICAL_VERSION
    doc["at"] = utc_text(row["at"])
    sealed = row["reason_sealed"]
    doc["reason_sealed"] = bytes(sealed).hex() if sealed is not None else None
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def row_mac(key: bytes, prev: bytes, row: Mapping[str, Any]) -> bytes:
    """HMAC-SM3(key, prev mac || canonical(row)); ``row`` carries its ``seq``."""
    return hmac_sm3(key, prev + canonical(row))


def checkpoint_tag(key: bytes, seq: int, mac: bytes, at: dt.datetime) -> bytes:
    return hmac_sm3(key, f"{seq}:{mac.hex()}:{utc_text(at)}".encode())


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the chain, by code:

    * ``edited`` — the row ``seq`` (id ``row_id``) does not match its mac: it was changed;
    * ``deleted`` — seq ``seq`` … ``until`` are missing (``row_id``: the row after the gap, if any);
    * ``newest_deleted`` — the ``witness`` (``file``: the head file; ``head_row``: the
      ``audit_chain`` row) records up to ``until`` but the table ends before ``seq``;
    * ``head_mismatch`` — the ``witness`` records a mac for ``seq`` that is not that row's;
    * ``head_missing`` — the ``audit_chain`` row is gone;
    * ``head_file_unreadable`` — the head file exists but is not one this program wrote;
    * ``checkpoint_forged`` — checkpoint ``seq`` does not carry a valid tag;
    * ``checkpoint_mismatch`` — checkpoint ``seq`` records a mac that is not that row's.
    """

    code: str
    seq: int | None = None
    row_id: int | None = None
    until: int | None = None
    witness: str | None = None


@dataclass(frozen=True)
class VerifyResult:
    checked: int  # sealed rows whose mac was recomputed
    problems: tuple[Problem, ...] = ()
    bad: int = 0  # problems found (only the first MAX_PROBLEMS are kept)
    last_seq: int = 0  # the newest sealed seq in the table (or the checkpoint verified from)
    start_seq: int = 0  # the checkpoint the check started from (0: the beginning)
    pending: int = 0  # rows not sealed yet, not covered
    head_file: str = "checked"  # checked | missing | retired (its rows were deleted by retention)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        return self.problems[0].seq if self.problems else None

    @property
    def problem(self) -> str:
        return self.problems[0].code if self.problems else ""


@dataclass(frozen=True)
class Head:
    seq: int
    mac: bytes


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    mac: bytes
    at: dt.datetime


class ChainError(Exception):
    """The chain cannot be sealed or checked: not configured, or no schema. Carries no data."""


class ChainBroken(ChainError):
    """Sealing stopped: the chain's evidence says it was tampered with (``problem`` says how)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.code)
        self.problem = problem


# --------------------------------------------------------------------------- the head file


def read_head_file(path: Path) -> Head | None:
    """The head recorded outside the database; None when there is none yet."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Head(int(doc["seq"]), bytes.fromhex(doc["mac"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise ChainBroken(Problem("head_file_unreadable")) from None


def write_head_file(path: Path, head: Head, row_id: int, at: dt.datetime) -> bool:
    """Record ``head`` unless the file already records a later one (two sealers sharing a data
    dir); tmp file + fsync + ``os.replace``, under a lock file. True when written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = read_head_file(path)
        except ChainBroken:
            current = None  # the sealer checked it before sealing; a crash mid-write cannot leave it so
        if current is not None and current.seq >= head.seq:
            return False
        doc = {"seq": head.seq, "mac": head.mac.hex(), "id": row_id, "at": utc_text(at)}
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(doc) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True


# --------------------------------------------------------------------------- statements

_LOCK = update(HEAD).where(HEAD.c.id == 1).values(seq=HEAD.c.seq).returning(HEAD.c.seq, HEAD.c.mac)
_ANY_PENDING = select(LOG.c.id).where(LOG.c.seq.is_(None)).limit(1)
_PENDING = select(LOG).where(LOG.c.seq.is_(None)).order_by(LOG.c.id).limit(bindparam("limit"))
_SEAL = (
    update(LOG)
    .where(LOG.c.id == bindparam("b_id"), LOG.c.seq.is_(None))
    .values(
        seq=bindparam("b_seq"),
        mac=bindparam("b_mac"),
        reason=bindparam("b_reason"),
        reason_sealed=bindparam("b_reason_sealed"),
        key_id=bindparam("b_key_id"),
    )
)
_ADVANCE = (
    update(HEAD)
    .where(HEAD.c.id == 1)
    .values(seq=bindparam("h_seq"), mac=bindparam("h_mac"), sealed_at=bindparam("h_at"))
)
_PAGE = select(LOG).where(LOG.c.seq > bindparam("after")).order_by(LOG.c.seq).limit(bindparam("limit"))
_UPTO = _PAGE.where(LOG.c.seq <= bindparam("upto"))


# --------------------------------------------------------------------------- the service


class AuditChain:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        security: SecuritySettings,
        data_dir: Path,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._keys = keyring
        self._secret = security.audit_hmac_key
        self.head_file = Path(data_dir) / HEAD_FILE
        self._clock = clock
        self._reported: str | None = None  # the last problem run() logged, so it is logged once

    def _chain_keys(self) -> tuple[bytes, bytes]:
        if not self._secret:
            raise ChainError("[security] audit_hmac_key is not configured")
        return chain_keys(base64.b64decode(self._secret))

    # ------------------------------------------------------------------ sealing

    async def seal_pending(self, batch: int = 1000) -> int:
        """Chain every row committed so far and not yet sealed; returns how many. Raises
        :class:`ChainBroken` (sealing nothing) when the head file says rows were removed."""
        row_key, _ = self._chain_keys()
        async with self._sessions() as s:  # idle: no lock taken, nothing written
            if (await s.execute(_ANY_PENDING)).first() is None:
                return 0
        total, last = 0, None
        while True:
            async with self._sessions.begin() as s:
                head = await self._lock(s)
                if total == 0:
                    await self._check_head_file(s, head)
                rows = (await s.execute(_PENDING, {"limit": batch})).mappings().all()
                if not rows:
                    break
                seq, prev, params = head.seq, head.mac, []
                for found in rows:
                    row = dict(found)
                    if row["reason_sealed"] is None and must_seal(row["reason"]):  # written before 0004
                        row.update(reason_columns(self._keys, row, row["reason"]))
                    seq += 1
                    row["seq"] = seq
                    prev = row_mac(row_key, prev, row)
                    params.append(
                        {
                            "b_id": row["id"],
                            "b_seq": seq,
                            "b_mac": prev,
                            "b_reason": row["reason"],
                            "b_reason_sealed": row["reason_sealed"],
                            "b_key_id": row["key_id"],
                        }
                    )
                await s.execute(_SEAL, params)
                await s.execute(_ADVANCE, {"h_seq": seq, "h_mac": prev, "h_at": self._clock.now()})
            total += len(rows)
            last = Head(seq, prev), rows[-1]["id"]
            if len(rows) < batch:
                break
        if last is not None:
            (head, row_id) = last
            log.info("audit chain head seq=%d mac=%s", head.seq, head.mac.hex()[:16])
            await asyncio.to_thread(write_head_file, self.head_file, head, row_id, self._clock.now())
        return total

    async def run(self, stop: asyncio.Event, *, every: float = 5.0) -> None:
        """Seal every ``every`` seconds until ``stop`` is set (the worker, and the demo)."""
        while not stop.is_set():
            try:
                await self.seal_pending()
                self._reported = None
            except ChainBroken as exc:
                if self._reported != exc.problem.code:  # an alarm, not a line every 5 s
                    log.error(
                        "audit chain broken (%s at seq %s): sealing stopped; run `wechat-backend audit verify`",
                        exc.problem.code,
                        exc.problem.seq,
                    )
                    self._reported = exc.problem.code
            except Exception as exc:  # the database is down: say so (no SQL, no values), try again
                log.error("audit sealing failed (%s); next try in %.0f s", type(exc).__name__, every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)

    async def checkpoint(self) -> Checkpoint | None:
        """Record the head as a checkpoint (retention may then delete rows up to its seq). Seals
        nothing: call :meth:`seal_pending` first to include the newest rows. None when empty."""
        _, cp_key = self._chain_keys()
        async with self._sessions.begin() as s:
            head = await self._lock(s)
            if head.seq == 0:
                return None
            got = (await s.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.seq == head.seq))).first()
            if got is not None:
                return Checkpoint(got.seq, got.mac, got.at)
            at = self._clock.now()
            tag = checkpoint_tag(cp_key, head.seq, head.mac, at)
            await s.execute(insert(CHECKPOINTS).values(seq=head.seq, mac=head.mac, at=at, tag=tag))
        return Checkpoint(head.seq, head.mac, at)

    async def checkpoint_at(self, seq: int, *, page: int = 5000) -> Checkpoint:
        """Record sealed row ``seq``'s (seq, mac) as a checkpoint, so that retention may delete the
        rows up to it. The macs from where :meth:`verify` would start up to ``seq`` are recomputed
        first: a checkpoint never vouches for rows that do not verify (raises :class:`ChainBroken`
        naming the first problem, recording nothing). The same one when it exists already."""
        row_key, cp_key = self._chain_keys()
        async with self._sessions() as s:
            rows = (await s.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.seq <= seq))).all()
            first = await s.scalar(select(func.min(LOG.c.seq)))
        checkpoints = {
            r.seq: Checkpoint(r.seq, bytes(r.mac), r.at)
            for r in rows
            if checkpoint_tag(cp_key, r.seq, bytes(r.mac), r.at) == bytes(r.tag)
        }
        if seq in checkpoints:
            return checkpoints[seq]
        below = [c for c in checkpoints if first is not None and c < first]
        at, prev = (max(below), checkpoints[max(below)].mac) if below else (0, GENESIS)
        problem = None
        while at < seq and problem is None:
            async with self._sessions() as s:
                page_rows = (await s.execute(_UPTO, {"after": at, "upto": seq, "limit": page})).mappings().all()
            for row in page_rows:
                cut = checkpoints.get(row["seq"] - 1)
                if row["seq"] != at + 1 and cut is not None:  # retention's gap (verify steps over it too)
                    at, prev = cut.seq, cut.mac
                stored = bytes(row["mac"]) if row["mac"] is not None else None
                if row["seq"] != at + 1:
                    problem = Problem("deleted", at + 1, row["id"], until=row["seq"] - 1)
                elif stored is None or row_mac(row_key, prev, row) != stored:
                    problem = Problem("edited", row["seq"], row["id"])
                if problem is not None:
                    break
                at, prev = row["seq"], stored
            if not page_rows and problem is None:
                problem = Problem("deleted", at + 1, until=seq)
        async with self._sessions.begin() as s:
            await self._lock(s)  # one writer of checkpoints at a time
            got = (await s.execute(select(CHECKPOINTS).where(CHECKPOINTS.c.seq == seq))).first()
            if got is not None and checkpoint_tag(cp_key, got.seq, bytes(got.mac), got.at) == bytes(got.tag):
                return Checkpoint(got.seq, bytes(got.mac), got.at)  # another run made it meanwhile
            if problem is not None:
                raise ChainBroken(problem)
            now = self._clock.now()
            tag = checkpoint_tag(cp_key, seq, prev, now)
            await s.execute(insert(CHECKPOINTS).values(seq=seq, mac=prev, at=now, tag=tag))
        return Checkpoint(seq, prev, now)

    async def _lock(self, s: AsyncSession) -> Head:
        got = (await s.execute(_LOCK)).first()
        if got is None:
            raise ChainBroken(Problem("head_missing"))
        return Head(got.seq, got.mac or GENESIS)

    async def _check_head_file(self, s: AsyncSession, head: Head) -> None:
        """Before chaining new rows onto ``head``: the head file must not be ahead of it or
        disagree with the row it names (new rows would take the deleted rows' seqs)."""
        witness = await asyncio.to_thread(read_head_file, self.head_file)
        if witness is None or witness.seq == 0:
            return
        if witness.seq > head.seq:
            raise ChainBroken(Problem("newest_deleted", head.seq + 1, until=witness.seq, witness="file"))
        mac = (await s.execute(select(LOG.c.mac).where(LOG.c.seq == witness.seq))).scalar()
        if mac is None:
            newest = await s.scalar(select(func.max(CHECKPOINTS.c.seq))) or 0
            if witness.seq > newest:  # not retention's doing
                raise ChainBroken(Problem("deleted", witness.seq, until=witness.seq, witness="file"))
        elif bytes(mac) != witness.mac:
            raise ChainBroken(Problem("head_mismatch", witness.seq, witness="file"))

    # ------------------------------------------------------------------ verifying

    async def verify(self, *, page: int = 5000) -> VerifyResult:
        """Check the whole chain, the head row and the head file. Seals nothing, changes nothing."""
        row_key, cp_key = self._chain_keys()
        problems: list[Problem] = []
        bad = 0

        def found(p: Problem) -> None:
            nonlocal bad
            bad += 1
            if len(problems) < MAX_PROBLEMS:
                problems.append(p)

        # The witnesses first: rows sealed after this moment only extend what they name.
        head_file_state = "checked"
        try:
            witness = await asyncio.to_thread(read_head_file, self.head_file)
        except ChainBroken as exc:
            found(exc.problem)
            witness = None
        if witness is None and not problems:
            head_file_state = "missing"
        async with self._sessions() as s:
            head_row = (await s.execute(select(HEAD.c.seq, HEAD.c.mac).where(HEAD.c.id == 1))).first()
            checkpoints: dict[int, Checkpoint] = {}
            for r in (await s.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.seq))).all():
                if checkpoint_tag(cp_key, r.seq, bytes(r.mac), r.at) == bytes(r.tag):
                    checkpoints[r.seq] = Checkpoint(r.seq, bytes(r.mac), r.at)
                else:  # not made by checkpoint(): never a place to start from
                    found(Problem("checkpoint_forged", r.seq))
            first = await s.scalar(select(func.min(LOG.c.seq)))
            pending = await s.scalar(select(func.count()).select_from(LOG).where(LOG.c.seq.is_(None))) or 0
        # Start from the beginning, or from the newest checkpoint below the first remaining row.
        below = [c for c in checkpoints if first is None or c < first]
        start = checkpoints[max(below)] if below else Checkpoint(0, GENESIS, dt.datetime.min)
        wanted = {c for c in checkpoints if c > start.seq}
        if head_row is not None:
            wanted.add(head_row.seq)
        if witness is not None:
            wanted.add(witness.seq)
        macs = {start.seq: start.mac}  # seq -> mac stored, for the witnesses and checkpoints
        seq, prev, checked = start.seq, start.mac, 0
        retired = start.seq  # rows up to here are gone behind a checkpoint
        while True:
            async with self._sessions() as s:
                rows = (await s.execute(_PAGE, {"after": seq, "limit": page})).mappings().all()
            for row in rows:
                stored = bytes(row["mac"]) if row["mac"] is not None else None
                cut = checkpoints.get(row["seq"] - 1)
                if row["seq"] != seq + 1 and cut is not None:  # retention's gap: go on from its checkpoint
                    seq, prev, retired = cut.seq, cut.mac, cut.seq
                    macs[seq] = prev
                if row["seq"] != seq + 1:  # the row before is gone: this one cannot be checked
                    found(Problem("deleted", seq + 1, row["id"], until=row["seq"] - 1))
                else:
                    checked += 1
                    if stored is None or row_mac(row_key, prev, row) != stored:
                        found(Problem("edited", row["seq"], row["id"]))
                # Go on from the mac stored: one edited row does not hide what follows it.
                seq, prev = row["seq"], stored or GENESIS
                if seq in wanted:
                    macs[seq] = prev
            if len(rows) < page:
                break
        beyond = [c for c in checkpoints if c > seq]
        if beyond:  # the table ends inside retention's gap (a run cut short, or every row gone)
            seq = retired = max(beyond)
            macs[seq] = checkpoints[seq].mac
        # The ends: checkpoints, the head row, the head file.
        for c in sorted(wanted & checkpoints.keys()):
            if c in macs and macs[c] != checkpoints[c].mac:
                found(Problem("checkpoint_mismatch", c))
        for name, at in (("file", witness), ("head_row", head_row)):
            if at is None:
                continue
            at_mac = bytes(at.mac) if at.mac is not None else GENESIS
            if at.seq > seq:
                found(Problem("newest_deleted", seq + 1, until=at.seq, witness=name))
            elif at.seq < start.seq or (at.seq < retired and at.seq not in macs):
                head_file_state = "retired" if name == "file" else head_file_state
            elif macs.get(at.seq) != at_mac:
                found(Problem("head_mismatch", at.seq, witness=name))
        if head_row is None:
            found(Problem("head_missing"))
        return VerifyResult(
            checked=checked,
            problems=tuple(problems),
            bad=bad,
            last_seq=seq,
            start_seq=start.seq,
            pending=pending,
            head_file=head_file_state,
        )
