"""Audit rows are written with the action they describe, and only then: a rollback, a savepoint's
rollback or a session closed without a commit leaves no row behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from wechat_backend import audit
from wechat_backend.db import create_engine, session_factory, upgrade_url
from wechat_backend.db.models import AuditEvent


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Any]:
    await upgrade_url(db_url)
    engine = create_engine(db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def note(s: Any, action: str) -> None:
    audit.record(s, actor_type="system", action=action, detail={"n": action})


async def actions(sessions: Any) -> list[str]:
    async with sessions() as s:
        return list((await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all())


async def test_rows_are_written_in_order_when_the_session_commits(sessions: Any) -> None:
    async with sessions.begin() as s:
        note(s, "a")
        note(s, "b")
        assert await s.scalar(select(AuditEvent.id)) is None  # not before the commit
    assert await actions(sessions) == ["a", "b"]


async def test_a_rollback_drops_the_rows_even_before_any_statement(sessions: Any) -> None:
    async with sessions() as s:
        note(s, "lost")
        await s.rollback()
        note(s, "kept")
        await s.commit()
    assert await actions(sessions) == ["kept"]


async def test_a_session_closed_without_commit_writes_nothing(sessions: Any) -> None:
    s = sessions()
    note(s, "lost")
    await s.scalar(select(AuditEvent.id))
    await s.close()
    note(s, "kept")  # the same session object, used again
    await s.commit()
    await s.close()
    assert await actions(sessions) == ["kept"]


async def test_a_failed_action_takes_its_rows_with_it(sessions: Any) -> None:
    with pytest.raises(RuntimeError):
        async with sessions.begin() as s:
            note(s, "lost")
            raise RuntimeError("the action failed")
    assert await actions(sessions) == []


async def test_a_savepoint_rollback_drops_only_what_was_recorded_inside_it(sessions: Any) -> None:
    async with sessions.begin() as s:
        note(s, "before")
        savepoint = await s.begin_nested()
        note(s, "inside")
        await savepoint.rollback()
        note(s, "after")
    assert await actions(sessions) == ["before", "after"]
