"""``wechat-backend notify scan|retry|stats`` and the data part of ``db upgrade`` as an operator
runs them: real processes, exit codes, Chinese messages, no traceback."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from ingest_lines import archive, institution, record, write
from sqlalchemy import select, text

from wechat_backend.config import load_settings
from wechat_backend.crypto import KeyRing
from wechat_backend.db import create_engine, session_factory
from wechat_backend.db.migrate import alembic_config
from wechat_backend.db.models import Archive, DueItem, Identity, Notification, ServiceRecord

FIELDS = '{thing1="kind",time2="date",thing3="institution",thing4="name"}'


@pytest.fixture
def cli(tmp_path: Path, db_url: str):
    config = tmp_path / "config.toml"
    config.write_text(
        "[templates.followup_due]\n"
        f'template_id = "T1"\nfields = {FIELDS}\n'
        "[templates.record_added]\n"
        f'template_id = "T2"\nfields = {FIELDS}\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {
        "WB_SERVER_DATA_DIR": str(tmp_path / "data"),
        "WB_DATABASE_URL": db_url,
        "WB_SERVER_MODE": "demo",
        "WECHAT_BACKEND_CONFIG": str(config),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "wechat_backend", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    run.settings = lambda: load_settings(environ=env)  # type: ignore[attr-defined]
    return run


async def _with_db(settings: Any, work: Any) -> Any:
    engine = create_engine(settings.database.url)
    try:
        return await work(session_factory(engine), engine)
    finally:
        await engine.dispose()


async def _bind_follower(sessions: Any, archive_upstream_id: str) -> None:
    async with sessions.begin() as s:
        archive_id = await s.scalar(select(Archive.id).where(Archive.upstream_id == archive_upstream_id))
        who = Identity(channel="oa", openid="o-cli-1", subscribed=True)
        s.add(who)
        await s.flush()
        await s.execute(
            text(
                "INSERT INTO bindings (public_id, identity_id, archive_id, relation, created_at, updated_at) "
                "VALUES ('b-cli-1', :i, :a, 'self', :t, :t)"
            ),
            {"i": who.id, "a": archive_id, "t": dt.datetime.now(dt.UTC)},
        )
        await s.execute(text("UPDATE counties SET opening = :yes, phase = 'all'"), {"yes": True})


def test_scan_queues_once_and_says_how_many(cli, tmp_path: Path) -> None:
    due = dt.date.today() + dt.timedelta(days=20)
    lines = [institution(), archive(1), record(1, 1, date="2026-01-05", next_due_date=due.isoformat())]
    assert cli("db", "upgrade").returncode == 0
    assert cli("import", str(write(tmp_path / "a.jsonl", lines))).returncode == 0
    asyncio.run(_with_db(cli.settings(), lambda sessions, _: _bind_follower(sessions, "arc-1")))
    day = (due - dt.timedelta(days=2)).isoformat()

    first = cli("notify", "scan", "--date", day)
    assert first.returncode == 0, first.stderr
    assert "1 项，新排入 1 条提醒" in first.stdout
    again = cli("notify", "scan", "--date", day)
    assert "新排入 0 条提醒" in again.stdout
    early = cli("notify", "scan", "--date", (due - dt.timedelta(days=10)).isoformat())
    assert "0 项，新排入 0 条提醒" in early.stdout
    bad = cli("notify", "scan", "--date", "12/31")
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr

    stats = cli("notify", "stats")
    assert stats.returncode == 0
    assert "随访提醒\t371522\t371522001\t1\t0\t0\t0" in stats.stdout  # one pending


def test_retry_dead_puts_given_up_pushes_back(cli, tmp_path: Path) -> None:
    assert cli("db", "upgrade").returncode == 0
    assert cli("import", str(write(tmp_path / "a.jsonl", [institution(), archive(1)]))).returncode == 0

    async def plant(sessions: Any, _: Any) -> None:
        await _bind_follower(sessions, "arc-1")
        async with sessions.begin() as s:
            who = await s.scalar(select(Identity.id))
            for n in range(3):
                s.add(
                    Notification(
                        identity_id=who,
                        kind="followup_due",
                        dedup_key=f"d{n}",
                        status="dead",
                        attempts=5,
                        due_at=dt.datetime.now(dt.UTC),
                    )
                )

    asyncio.run(_with_db(cli.settings(), plant))
    assert "请写明" in cli("notify", "retry").stderr
    done = cli("notify", "retry", "--dead")
    assert done.returncode == 0 and "已把 3 条" in done.stdout

    async def statuses(sessions: Any, _: Any) -> list[tuple[str, int]]:
        async with sessions() as s:
            return sorted((await s.execute(select(Notification.status, Notification.attempts))).all())

    assert asyncio.run(_with_db(cli.settings(), statuses)) == [("pending", 0)] * 3


def test_upgrade_seals_the_dates_of_restricted_records_only(cli, tmp_path: Path, db_url: str) -> None:
    """A database from before 0005 had every record's dates in clear; the upgrade leaves them in
    clear only on records a resident may see."""
    assert cli("db", "upgrade").returncode == 0
    lines = [
        institution(),
        archive(1),
        record(1, 1, date="2026-03-01", next_due_date="2026-06-01"),
        record(2, 1, kind="tuberculosis_followup", date="2026-03-02", next_due_date="2026-04-02", diagnosis_codes=[]),
    ]
    assert cli("import", str(write(tmp_path / "a.jsonl", lines))).returncode == 0
    settings = cli.settings()
    keys = KeyRing.from_settings(settings.security)

    async def as_before_0005(sessions: Any, engine: Any) -> None:
        async with sessions.begin() as s:  # what an old import wrote: clear dates, none sealed
            for rid, day, due in (("rec-1", "2026-03-01", "2026-06-01"), ("rec-2", "2026-03-02", "2026-04-02")):
                row = (await s.execute(select(ServiceRecord).where(ServiceRecord.upstream_id == rid))).scalar_one()
                data = keys.open(row.sealed, f"record:{rid}")
                data.pop("date"), data.pop("next_due_date")
                row.sealed = keys.seal(data, f"record:{rid}")
                row.date, row.next_due_date = dt.date.fromisoformat(day), dt.date.fromisoformat(due)
        async with engine.begin() as conn:  # the schema before 0005, as alembic takes it back

            def down(sync_conn: Any) -> None:
                cfg = alembic_config()
                cfg.attributes["connection"] = sync_conn
                command.downgrade(cfg, "0004")

            await conn.run_sync(down)

    asyncio.run(_with_db(settings, as_before_0005))
    done = cli("db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "已把 1 条" in done.stdout

    async def rows(sessions: Any, _: Any) -> dict[str, Any]:
        async with sessions() as s:
            found = (await s.execute(select(ServiceRecord))).scalars().all()
            return {
                r.upstream_id: (r.date, r.next_due_date, keys.open(r.sealed, f"record:{r.upstream_id}")) for r in found
            }

    after = asyncio.run(_with_db(settings, rows))
    assert after["rec-1"][:2] == (dt.date(2026, 3, 1), dt.date(2026, 6, 1))  # N: unchanged
    assert after["rec-2"][:2] == (None, None)  # TB: sealed only
    assert (after["rec-2"][2]["date"], after["rec-2"][2]["next_due_date"]) == ("2026-03-02", "2026-04-02")
    assert "已把" not in cli("db", "upgrade").stdout  # nothing more to do


async def test_due_items_are_kept_from_normal_records_only(services: Any, tmp_path: Path) -> None:
    lines = [
        institution(),
        archive(1),
        archive(2, name="王小明", birth_date="2026-10-01", id_number=None, programmes=["child"]),
        record(1, 1, date="2026-03-01", next_due_date="2026-06-01"),
        record(2, 1, kind="tuberculosis_followup", date="2026-03-02", next_due_date="2026-04-02", diagnosis_codes=[]),
    ]
    report = await services.ingest.import_file(write(tmp_path / "a.jsonl", lines))
    assert report.rejected == 0, report.errors
    async with services.sessions() as s:
        items = sorted(
            (
                await s.execute(
                    select(Archive.upstream_id, DueItem.kind, DueItem.due_on).join(
                        Archive, Archive.id == DueItem.archive_id
                    )
                )
            ).all()
        )
        clear = dict((await s.execute(select(ServiceRecord.upstream_id, ServiceRecord.date))).all())
    assert items == [("arc-1", "followup_due", dt.date(2026, 6, 1)), ("arc-2", "child_check_due", dt.date(2027, 1, 1))]
    assert clear == {"rec-1": dt.date(2026, 3, 1), "rec-2": None}


async def test_a_follow_up_corrected_to_restricted_closes_its_reminder(services: Any, tmp_path: Path) -> None:
    first = [institution(), archive(1), record(1, 1, date="2026-11-20", next_due_date="2027-02-20")]
    await services.ingest.import_file(write(tmp_path / "a.jsonl", first))
    corrected = record(1, 1, version=2, date="2026-11-20", next_due_date="2027-02-20", diagnosis_codes=["I10", "F20.0"])
    report = await services.ingest.import_file(write(tmp_path / "b.jsonl", [corrected]))
    assert report.updated == 1
    async with services.sessions() as s:
        assert (await s.execute(select(DueItem.kind))).all() == []
        assert await s.scalar(select(ServiceRecord.date)) is None  # and its dates are sealed only


async def test_a_passed_child_check_moves_to_the_next_age_and_a_passed_exam_a_year_on(
    services: Any, tmp_path: Path
) -> None:
    lines = [
        institution(),
        archive(1),  # 71 years old
        archive(2, name="王小明", birth_date="2026-10-01", id_number=None, programmes=["child"]),
        record(1, 1, kind="elderly_check", date="2025-12-01", next_due_date=None, diagnosis_codes=[], payload={}),
    ]
    report = await services.ingest.import_file(write(tmp_path / "a.jsonl", lines))
    assert report.rejected == 0, report.errors

    async def items() -> list[tuple[str, dt.date]]:
        async with services.sessions() as s:
            return sorted((await s.execute(select(DueItem.kind, DueItem.due_on))).all())

    assert await items() == [("child_check_due", dt.date(2027, 1, 1)), ("exam_due", dt.date(2026, 12, 1))]
    report = await services.due_scan.scan(dt.date(2027, 1, 5))  # both passed with no new record
    assert report.rolled == 2
    assert await items() == [("child_check_due", dt.date(2027, 4, 1)), ("exam_due", dt.date(2027, 12, 1))]
    assert (await services.due_scan.scan(dt.date(2027, 1, 6))).rolled == 0
    await services.due_scan.scan(dt.date(2033, 1, 1))  # past six: no more child checks
    assert [kind for kind, _ in await items()] == ["exam_due"]
