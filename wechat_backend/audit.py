"""The audit log: one row per read of archive data, per bind/unbind/failed attempt, per staff
change. Rows carry ids, codes and reasons — never names, ID numbers or phones.

Rows recorded in a session are written when that session commits, all in one INSERT, in the same
transaction as the action they describe (a rollback drops them with it).
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .db.models import AuditEvent, utcnow

_PENDING = "wb_audit_rows"
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
    s.info.setdefault(_PENDING, []).append(
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


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if not previous_transaction.nested:  # a savepoint's rollback keeps what came before it
        session.info.pop(_PENDING, None)


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
