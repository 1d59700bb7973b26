"""Revision 0006 going down: refused, before anything is dropped, while staff accounts exist (the
old staff table cannot hold them); without them it goes down, and the key-needing backfill is
marked to run again after the next upgrade."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from wechat_backend.db.engine import create_engine
from wechat_backend.db.migrate import alembic_config, current_revision, upgrade


async def alembic(engine: Any, verb: str, revision: str) -> None:
    async with engine.begin() as conn:

        def run(sync_conn: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = sync_conn
            getattr(command, verb)(cfg, revision)

        await conn.run_sync(run)


async def scalar(engine: Any, sql: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar()


async def test_downgrade_is_refused_while_staff_accounts_exist_and_drops_nothing(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO staff (public_id, role, active, sealed, key_id, phone_bidx, created_at, updated_at)"
                    " VALUES ('s1', 'city', true, :blob, 'k1', 1, :at, :at)"
                ),
                {"blob": b"\0", "at": dt.datetime(2026, 12, 4, tzinfo=dt.UTC)},
            )
            await conn.execute(
                text("INSERT INTO data_steps (name, done_at) VALUES ('0006_stats_backfill', :at)"),
                {"at": dt.datetime(2026, 12, 4, tzinfo=dt.UTC)},
            )
        with pytest.raises(RuntimeError, match="工作人员账号"):
            await alembic(engine, "downgrade", "0005")
        assert await current_revision(engine) == "0006"
        assert await scalar(engine, "SELECT count(*) FROM archive_counts") == 0  # the table is still there
        assert await scalar(engine, "SELECT count(*) FROM qr_codes") == 0

        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM staff"))
        await alembic(engine, "downgrade", "0005")
        assert await current_revision(engine) == "0005"
        assert await scalar(engine, "SELECT count(*) FROM data_steps") == 0  # the backfill runs again
        await upgrade(engine)
        assert await current_revision(engine) == "0006"
    finally:
        await engine.dispose()


async def test_the_upgrade_through_0006_keeps_every_record_binding_and_push(services: Any, tmp_path: Any) -> None:
    """On SQLite a batch-mode alter of ``archives`` would rebuild the table and, foreign keys on,
    cascade-delete everything pointing at it: 0006 alters it in place."""
    from ingest_lines import archive, institution, record, write

    lines = [institution(), archive(1), archive(2), record(1, 1), record(2, 2)]
    report = await services.ingest.import_file(write(tmp_path / "a.jsonl", lines))
    assert report.exit_code == 0, report
    tables = ("archives", "service_records")
    before = {t: await scalar(services.engine, f"SELECT count(*) FROM {t}") for t in tables}
    assert before == {"archives": 2, "service_records": 2}
    await alembic(services.engine, "downgrade", "0005")
    await upgrade(services.engine)
    assert {t: await scalar(services.engine, f"SELECT count(*) FROM {t}") for t in tables} == before
