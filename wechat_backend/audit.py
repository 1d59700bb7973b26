"""The audit log: one row per read of archive data, per bind/unbind/failed attempt, per staff
change. Rows carry ids, codes and reasons — never names, ID numbers or phones.

Rows recorded in a session are written when that session commits, all in one INSERT, in the same
transaction as the action they describe: a rollback drops them with it (a savepoint's rollback,
those recorded inside it), and so does closing the session without a commit.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .db.models import AuditEvent, utcnow

_PENDING = "wb_audit_rows"  # rows recorded in the session's open transaction, in order
_MARKS = "wb_audit_marks"  # savepoint -> how many rows were pending when it began
_INSERT = insert(AuditEvent.__table__)


def record(
    s: AsyncSession,
    *,
    actor_type: str,
    action: str,
    result: str = "ok",
    actor_id: str | None = None,
    archive_id: int | None = None,
    record_id: int | None = None,
    reason: str | None = None,
    request_id: str | None = None,
    client_ip: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the caller's transaction (it commits or rolls back with the action)."""
    session = s.sync_session if isinstance(s, AsyncSession) else s
    if not session.in_transaction():
        session.begin()  # no I/O yet; it makes a rollback before the first statement drop the row too
    session.info.setdefault(_PENDING, []).append(
        {
            "at": utcnow(),
            "actor_type": actor_type,
            "actor_id": actor_id,
            "action": action,
            "result": result,
            "archive_id": archive_id,
            "record_id": record_id,
            "reason": reason,
            "request_id": request_id,
            "client_ip": client_ip,
            "detail": detail,
        }
    )


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    rows = session.info.pop(_PENDING, None)
    if rows:
        session.connection().execute(_INSERT, rows)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: Any) -> None:
    if transaction.nested:
        session.info.setdefault(_MARKS, {})[transaction] = len(session.info.get(_PENDING, ()))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.nested:  # only what was recorded inside the savepoint
        mark = session.info.get(_MARKS, {}).pop(previous_transaction, None)
        if mark is not None:
            del session.info.get(_PENDING, [])[mark:]
    else:
        _forget(session)


@event.listens_for(Session, "after_transaction_end")
def _drop_unwritten(session: Session, transaction: Any) -> None:
    # (A savepoint's mark stays until here: its after_soft_rollback comes after its end.)
    if transaction.parent is None and not transaction.nested:  # committed, rolled back or closed
        _forget(session)


def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_MARKS, None)


class Caller(Protocol):
    """Who acted: an identity, with the request id and client address of the request."""

    identity_id: int
    request_id: str | None
    client_ip: str | None


def by_identity(
    s: AsyncSession,
    caller: Caller,
    action: str,
    archive_id: int | None = None,
    *,
    result: str = "ok",
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """An audit row for something a resident's identity did (or was refused)."""
    record(
        s,
        actor_type="identity",
        actor_id=str(caller.identity_id),
        action=action,
        result=result,
        archive_id=archive_id,
        reason=reason,
        request_id=caller.request_id,
        client_ip=caller.client_ip,
        detail=detail,
    )
