"""Audit retention: sealed rows older than ``[audit] retention_days`` are deleted up to a checkpoint
of the chain, newer and unsealed ones are kept, and ``audit verify`` still passes afterwards (also
after a run cut short). A chain that does not verify is not purged. Never under 184 days."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from sqlalchemy import delete, insert, select, update

from wechat_backend import audit_retention
from wechat_backend.audit_retention import purge_expired
from wechat_backend.clock import FixedClock
from wechat_backend.config import ConfigError, load_settings
from wechat_backend.db.models import AuditCheckpoint, AuditEvent
from wechat_backend.services import Services, build_services

LOG = AuditEvent.__table__
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
async def svc(tmp_path: Path, db_url: str, redis_url: str) -> AsyncIterator[Services]:
    """Services keeping audit rows for the legal minimum, 184 days."""
    settings = make_settings(tmp_path, db_url, redis_url, audit={"retention_days": 184})
    services = await build_services(settings, clock=FixedClock(NOW), with_redis=False)
    try:
        yield services
    finally:
        await services.close()


async def put(services: Services, *days_ago: float, seal: bool = True) -> None:
    """One row per age (in days), in that order; sealed unless told."""
    row = {"actor_type": "system", "actor_id": "cli", "action": "consent", "result": "ok"}
    rows = [row | {"at": NOW - dt.timedelta(days=d)} for d in days_ago]
    async with services.sessions.begin() as s:
        await s.execute(insert(LOG), rows)
    if seal:
        assert await services.audit_chain.seal_pending(batch=7) == len(rows)


async def kept(services: Services) -> list[tuple[int | None, int]]:
    """(seq, whole days old) of the rows left, by id."""
    async with services.sessions() as s:
        rows = (await s.execute(select(LOG.c.seq, LOG.c.at).order_by(LOG.c.id))).all()
    return [(seq, (NOW - at).days) for seq, at in rows]


async def checkpoints(services: Services) -> list[int]:
    async with services.sessions() as s:
        return list((await s.scalars(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.seq))).all())


async def test_rows_past_the_period_go_up_to_a_checkpoint_and_the_rest_still_verify(
    svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wechat_backend.audit")
    await put(svc, 400, 300, 250, 200, 185, 183, 100, 1)
    assert await purge_expired(svc) == 5
    assert await kept(svc) == [(6, 183), (7, 100), (8, 1)]
    assert await checkpoints(svc) == [5]
    result = await svc.audit_chain.verify()
    assert result.ok and (result.start_seq, result.checked, result.last_seq) == (5, 3, 8), result
    assert "audit retention: deleted 5 rows up to seq 5" in caplog.text
    # Idempotent: nothing more the same day, and no new checkpoint.
    assert await purge_expired(svc) == 0
    assert await checkpoints(svc) == [5]
    # The chain goes on: new rows are sealed after the kept ones and everything verifies.
    await put(svc, 0)
    result = await svc.audit_chain.verify()
    assert result.ok and result.last_seq == 9 and result.checked == 4


async def test_a_row_sealed_after_a_newer_one_waits_and_so_do_the_rows_after_it(svc: Services) -> None:
    await put(svc, 300, 250, 10)
    await put(svc, 260)  # committed late: sealed after the 10-day-old row
    assert await purge_expired(svc) == 2
    assert await kept(svc) == [(3, 10), (4, 260)]
    assert (await svc.audit_chain.verify()).ok


async def test_unsealed_rows_are_never_deleted(svc: Services) -> None:
    await put(svc, 300, 250)
    await put(svc, 400, 350, seal=False)  # not chained yet, however old
    assert await purge_expired(svc) == 2
    assert await kept(svc) == [(None, 400), (None, 350)]
    assert (await svc.audit_chain.verify()).pending == 2
    assert await svc.audit_chain.seal_pending() == 2
    assert await purge_expired(svc) == 2  # sealed now: they go the next day
    assert await kept(svc) == []
    result = await svc.audit_chain.verify()
    assert result.ok and result.start_seq == 4


async def test_deletion_goes_in_batches_and_a_run_cut_short_still_verifies(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await put(svc, *([300] * 10), 5, 4)
    statements = 0
    real_delete = audit_retention.delete

    def dies_at_the_second_batch(table: Any) -> Any:
        nonlocal statements
        statements += 1
        if statements == 2:
            raise ConnectionError("the database went away")
        return real_delete(table)

    monkeypatch.setattr(audit_retention, "BATCH", 4)
    monkeypatch.setattr(audit_retention, "delete", dies_at_the_second_batch)
    with pytest.raises(ConnectionError):
        await purge_expired(svc)
    # One batch went, from the checkpoint downwards: the gap ends at the checkpoint.
    assert [seq for seq, _ in await kept(svc)] == [1, 2, 3, 4, 5, 6, 11, 12]
    assert await checkpoints(svc) == [10]
    result = await svc.audit_chain.verify()
    assert result.ok and result.checked == 8, result
    # The next run finishes it.
    monkeypatch.setattr(audit_retention, "delete", real_delete)
    assert await purge_expired(svc) == 6
    assert [seq for seq, _ in await kept(svc)] == [11, 12]
    assert await checkpoints(svc) == [10]
    assert (await svc.audit_chain.verify()).ok


async def test_when_every_row_is_old_a_run_cut_short_still_verifies(svc: Services) -> None:
    await put(svc, *([300] * 6))
    await svc.audit_chain.checkpoint_at(6)
    async with svc.sessions.begin() as s:
        await s.execute(delete(LOG).where(LOG.c.seq > 3))
    result = await svc.audit_chain.verify()
    # The head (seq 6) is checked against the checkpoint, its row being gone.
    assert result.ok and result.last_seq == 6 and result.head_file == "checked", result
    assert await purge_expired(svc) == 3
    assert await kept(svc) == []
    result = await svc.audit_chain.verify()
    assert result.ok and (result.start_seq, result.checked) == (6, 0)
    await put(svc, 0)  # the sealer accepts the head file naming a deleted row behind a checkpoint
    assert (await svc.audit_chain.verify()).ok


async def test_a_chain_that_does_not_verify_is_not_purged(svc: Services, caplog: pytest.LogCaptureFixture) -> None:
    await put(svc, 300, 250, 200, 1)
    async with svc.sessions.begin() as s:
        await s.execute(update(LOG).where(LOG.c.seq == 2).values(action="archive_read"))
    assert await purge_expired(svc) == 0
    assert len(await kept(svc)) == 4 and await checkpoints(svc) == []
    assert "audit retention skipped" in caplog.text and "edited at seq 2" in caplog.text
    assert (await svc.audit_chain.verify()).problem == "edited"  # the evidence is still there


async def test_a_row_deleted_by_hand_among_the_old_ones_stops_retention(
    svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    await put(svc, 300, 250, 200, 1)
    async with svc.sessions.begin() as s:
        await s.execute(delete(LOG).where(LOG.c.seq == 2))
    assert await purge_expired(svc) == 0
    assert [seq for seq, _ in await kept(svc)] == [1, 3, 4] and await checkpoints(svc) == []
    assert "deleted at seq 2" in caplog.text


async def test_two_workers_purging_at_once_delete_each_row_once(
    svc: Services, caplog: pytest.LogCaptureFixture
) -> None:
    await put(svc, *([300] * 50), 1)
    done = await asyncio.gather(purge_expired(svc), purge_expired(svc))
    assert sum(done) == 50 and await kept(svc) == [(51, 1)]
    assert await checkpoints(svc) == [50]
    assert "skipped" not in caplog.text
    assert (await svc.audit_chain.verify()).ok


async def test_a_deletion_in_the_middle_is_still_caught_after_retention(svc: Services) -> None:
    await put(svc, 300, 250, 100, 50, 10)
    assert await purge_expired(svc) == 2
    async with svc.sessions.begin() as s:
        await s.execute(delete(LOG).where(LOG.c.seq == 4))
    result = await svc.audit_chain.verify()
    assert [(p.code, p.seq) for p in result.problems] == [("deleted", 4)]


def test_the_period_is_never_under_six_months() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={}, overrides={"audit": {"retention_days": 100}})
    assert "retention_days 不能少于 184 天" in str(refused.value)
    assert load_settings(environ={}, overrides={"audit": {"retention_days": 184}}).audit.retention_days == 184


# --------------------------------------------------------------------------- through the worker, as deployed


async def test_worker_once_purges_and_audit_verify_passes(db_url: str, redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, db_url, redis_url)
    services = await build_services(settings, with_redis=False)  # the wall clock, as the worker's
    try:
        now = dt.datetime.now(dt.UTC)
        rows = [
            {"at": now - dt.timedelta(days=d), "actor_type": "system", "action": "consent", "result": "ok"}
            for d in (300, 250, 190, 30)
        ]
        async with services.sessions.begin() as s:
            await s.execute(insert(LOG), rows)
    finally:
        await services.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {
        "WB_SERVER_DATA_DIR": str(settings.data_dir),
        "WB_DATABASE_URL": db_url,
        "WB_SERVER_MODE": "demo",
        "WB_AUDIT_RETENTION_DAYS": "200",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wechat_backend", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    sealed = await asyncio.to_thread(run, "audit", "seal")
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    once = await asyncio.to_thread(run, "worker", "--once")
    assert once.returncode == 0, once.stdout + once.stderr
    verified = await asyncio.to_thread(run, "audit", "verify")
    assert verified.returncode == 0 and "审计日志完整" in verified.stdout, verified.stdout + verified.stderr
    services = await build_services(settings, with_redis=False)
    try:
        async with services.sessions() as s:
            left = list((await s.scalars(select(LOG.c.seq).where(LOG.c.action == "consent").order_by(LOG.c.seq))).all())
    finally:
        await services.close()
    assert left == [3, 4]  # 300 and 250 days old went; 190 and 30 stay
