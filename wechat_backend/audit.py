"""The audit log: one row per read of archive data, per bind/unbind/failed attempt, per staff
change. Rows carry ids, codes and reasons — never names, ID numbers or phones.

Rows recorded in a session are written when that session commits, all in one INSERT, in the same
transaction as the action they describe: a rollback drops them with it (a savepoint's rollback,
those recorded inside it), and so does closing the session without a commit.

**Reasons.** A precise reason next to an archive id can itself be medical data: ``bind_start
denied sensitive_programme`` for archive 42 says that person is in a sensitive programme, and
``not_opened`` or ``minor_needs_guardian`` say things about the archive or the person too. The rule:

* a reason in :data:`CLEAR_REASONS` stays in clear in ``reason``. These describe only the request
  or the system — bad input, too many tries, a wrong or expired code, an id that is not the
  caller's, the SMS budget, a dependency down — never the archive or the person, so an auditor
  without the data keys can still count brute force and abuse in SQL;
* every other reason, including any reason added later that is not listed, is sealed: SM4-GCM
  under the active key of the process's :class:`KeyRing` into ``reason_sealed`` (with ``key_id``),
  ``reason`` left NULL. The plaintext is padded to a fixed width (:data:`REASON_WIDTH` bytes), so
  the ciphertext's length does not tell ``sensitive_programme`` from ``not_opened``; the associated
  data is the row's own time, actor, action and ids (:func:`reason_aad`), so a sealed reason
  copied onto another row does not open (and the chain's mac, audit_chain.py, breaks anyway).
  The coarse ``result`` (ok/denied/failed) stays in clear.

The key ring is given once at start-up (:func:`configure`, from ``app.build_services``): one key
ring per process, as there is one Settings per process, so ``record`` keeps its signature and no
caller changes. Recording a reason that must be sealed before ``configure`` raises rather than
write it in clear. Staff tools and tests read reasons with :func:`reason_of`. ``keys rotate`` does
not re-encrypt audit rows (the chain's mac covers the ciphertext): keep retired keys configured
as long as rows sealed under them are kept, or those reasons can no longer be read (the chain
still verifies). Rows written before revision 0004 are sealed by the sealer
(``wechat-backend audit seal``, or the worker) — see ``audit_chain.py``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .crypto import KeyRing
from .db.models import AuditEvent, utcnow

_PENDING = "wb_audit_rows"  # rows recorded in the session's open transaction, in order
_MARKS = "wb_audit_marks"  # savepoint -> how many rows were pending when it began
_INSERT = insert(AuditEvent.__table__)

# Reasons about the request or the system only: they stay in clear (see the module docstring).
# fmt: off
CLEAR_REASONS = frozenset({
    "bad_input",        # a field failed its check (which field is in detail, never its value)
    "rate_limited",     # a window was full, or the SMS provider throttled
    "daily_cap",        # the SMS budget over all phones is used up
    "unavailable",      # Redis (the rate limits) unreachable
    "unknown_bind_id",  # a bind id that is not the caller's
    "not_found",        # unbind of a binding that is not the caller's
    "not_bound",        # read of an archive the caller has not bound
    "not_owner",        # the caller may not see who else bound this archive
    "wrong_code",       # verification code tries and their end
    "expired",
    "locked",
    "used_up",
})
# fmt: on
REASON_WIDTH = 40  # bytes every sealed reason is padded to (the width of the clear column)

_keyring: KeyRing | None = None


def configure(keyring: KeyRing | None) -> None:
    """Give the audit log the process's key ring (``app.build_services`` does, once)."""
    global _keyring
    _keyring = keyring


def must_seal(reason: str | None) -> bool:
    return reason is not None and reason not in CLEAR_REASONS


def utc_text(at: dt.datetime) -> str:
    """A timestamp as fixed text (microseconds, UTC): the same before and after a round trip
    through either database."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def reason_aad(row: Mapping[str, Any]) -> str:
    """The associated data of a row's sealed reason: what identifies the row before it has an id."""
    return (
        f"audit:{utc_text(row['at'])}:{row['actor_type']}:{row['actor_id']}:{row['action']}"
        f":{row['archive_id']}:{row['record_id']}"
    )


def reason_columns(keyring: KeyRing | None, row: Mapping[str, Any], reason: str | None) -> dict[str, Any]:
    """The reason columns of a row: ``reason`` in clear, or ``reason_sealed`` and ``key_id``."""
    if not must_seal(reason):
        return {"reason": reason, "reason_sealed": None, "key_id": None}
    assert reason is not None
    if keyring is None:
        raise RuntimeError("audit.configure(keyring) was not called: the reason cannot be sealed")
    plain = reason.encode()
    width = -(-max(len(plain), 1) // REASON_WIDTH) * REASON_WIDTH
    sealed = keyring.encrypt(plain.ljust(width, b"\0"), reason_aad(row).encode())
    return {"reason": None, "reason_sealed": sealed, "key_id": keyring.active_key}


def reason_of(row: Any, keyring: KeyRing) -> str | None:
    """A row's reason, opened if it is sealed (an ``AuditEvent``, a result row or a mapping).
    Raises ``crypto.DecryptError`` when its key is no longer in the ring or the row was altered."""
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name)
    sealed = get("reason_sealed")
    if sealed is None:
        return get("reason")
    names = ("at", "actor_type", "actor_id", "action", "archive_id", "record_id")
    aad = reason_aad({name: get(name) for name in names})
    return keyring.decrypt(sealed, aad.encode()).rstrip(b"\0").decode()


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
    """Add an audit row to the caller's transaction (it commits or rolls back with the action).
    ``reason`` is kept in clear or sealed as the module docstring says."""
    row: dict[str, Any] = {
        "at": utcnow(),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": action,
        "result": result,
        "archive_id": archive_id,
        "record_id": record_id,
        "request_id": request_id,
        "client_ip": client_ip,
        "detail": detail,
    }
    row.update(reason_columns(_keyring, row, reason))
    session = s.sync_session if isinstance(s, AsyncSession) else s
    if not session.in_transaction():
        session.begin()  # no I/O yet; it makes a rollback before the first statement drop the row too
    session.info.setdefault(_PENDING, []).append(row)


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
