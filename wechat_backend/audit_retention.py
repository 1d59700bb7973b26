"""Deleting audit rows older than ``[audit] retention_days`` through the chain's checkpoint, so the
rows kept still verify (``wechat-backend audit verify``). Run once a day by the worker
(``housekeeping.py``) and by ``worker --once``.

What may go is a prefix of the chain whose rows are all older than the cutoff: the rows up to the
one before the first sealed row at or after it. (Sealing order is nearly time order, not quite: a
row that committed late is sealed after newer ones, and it waits until every row before it may go
too.) Rows not sealed yet are never deleted. A checkpoint is made at that row through
:meth:`AuditChain.checkpoint_at`, which first recomputes the macs up to it and refuses a chain that
does not verify: retention never makes tampering disappear. Then the rows are deleted from the
checkpoint downwards, :data:`BATCH` per transaction; a run cut short leaves a gap that ends at the
checkpoint, which ``audit verify`` steps over, and the next run finishes it. A second run the same
day finds nothing to delete.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from .audit_chain import ChainBroken, ChainError
from .db.models import AuditEvent

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("wechat_backend.audit")

LOG = AuditEvent.__table__
BATCH = 10_000  # rows deleted per transaction
MIN_RETENTION_DAYS = 184  # the Cybersecurity Law (art. 21): six months; config.py refuses fewer


async def purge_expired(services: Services) -> int:
    """Delete the sealed audit rows older than the retention period; returns how many."""
    days = max(services.settings.audit.retention_days, MIN_RETENTION_DAYS)
    cutoff = services.clock.now() - dt.timedelta(days=days)
    async with services.sessions() as s:
        first = await s.scalar(select(func.min(LOG.c.seq)))
        if first is None:
            return 0
        # The seq index walked from the oldest row: it stops at the first one inside the period.
        kept = await s.scalar(
            select(LOG.c.seq).where(LOG.c.seq.is_not(None), LOG.c.at >= cutoff).order_by(LOG.c.seq).limit(1)
        )
        # None inside the period: up to the newest sealed row older than the cutoff (not simply the
        # newest row, which the sealer may have added since the statement above).
        older = select(func.max(LOG.c.seq)).where(LOG.c.seq.is_not(None), LOG.c.at < cutoff)
        upto = kept - 1 if kept is not None else await s.scalar(older)
    if upto is None or upto < first:
        return 0
    try:
        checkpoint = await services.audit_chain.checkpoint_at(upto)
    except ChainBroken as exc:
        log.error(
            "audit retention skipped: the chain does not verify up to seq %d (%s at seq %s); "
            "run `wechat-backend audit verify`",
            upto,
            exc.problem.code,
            exc.problem.seq,
        )
        return 0
    except ChainError:
        log.error("audit retention skipped: [security] audit_hmac_key is not configured")
        return 0
    deleted, high = 0, checkpoint.seq
    while high >= first:
        low = max(high - BATCH, first - 1)
        async with services.sessions.begin() as s:
            done = await s.execute(delete(LOG).where(LOG.c.seq > low, LOG.c.seq <= high))
        deleted += done.rowcount or 0
        high = low
    log.info(
        "audit retention: deleted %d rows up to seq %d (checkpoint), older than %d days", deleted, checkpoint.seq, days
    )
    return deleted
