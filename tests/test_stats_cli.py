"""``wechat-backend stats`` as an operator runs it (real processes, exit codes, Chinese messages),
the worker's daily job that feeds its past days (snapshots, key groups coming of age), and the data
part of ``db upgrade`` for archives imported before revision 0006."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from ingest_lines import COUNTY, archive, id_number, institution, write
from sqlalchemy import select, text

from wechat_backend.blind_index import name_birth
from wechat_backend.clock import LOCAL_ZONE, Clock, FixedClock
from wechat_backend.config import load_settings
from wechat_backend.crypto import KeyRing
from wechat_backend.db.migrate import alembic_config
from wechat_backend.db.models import Archive, ArchiveCount, StatSnapshot
from wechat_backend.services import build_services
from wechat_backend.stats.daily import daily_stats
from wechat_backend.stats.export import HEADER
from wechat_backend.stats.figures import JSON_KEYS

OTHER = "371521"
MINE, OTHER_INSTITUTION = f"{COUNTY}001", f"{OTHER}001"
TODAY = Clock().today()


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def people() -> list[dict[str, Any]]:
    """莘县: 3 archives (one not opened, one aged 15 and in no key group); 阳谷县: 1."""
    return [
        institution(),
        institution(upstream_id="inst-2", code=OTHER_INSTITUTION, county_code=OTHER, county_name="阳谷县"),
        archive(1),
        archive(2, open_to_resident=False),
        archive(3, birth_date="2011-02-03", id_number=id_number("20110203", "226"), programmes=[]),
        archive(
            4,
            archive_no=f"{OTHER}001101{4:05d}",
            institution_code=OTHER_INSTITUTION,
            id_number=id_number(seq="777", region=OTHER),
        ),
    ]


@pytest.fixture
def cli(tmp_path: Path, db_url: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env.pop("WECHAT_BACKEND_CONFIG", None)
    env |= {"WB_SERVER_DATA_DIR": str(tmp_path / "data"), "WB_DATABASE_URL": db_url, "WB_SERVER_MODE": "demo"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "wechat_backend", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def rows(*args: str) -> dict[tuple[str | None, str | None], dict[str, Any]]:
        done = run("stats", "--format", "json", *args)
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert all(tuple(r) == JSON_KEYS for r in found)
        return {(r["county_code"], r["institution_code"]): r for r in found}

    run.settings = lambda: load_settings(environ=env)  # type: ignore[attr-defined]
    run.rows = rows  # type: ignore[attr-defined]
    assert run("db", "upgrade").returncode == 0
    assert run("import", str(write(tmp_path / "people.jsonl", people()))).returncode == 0
    assert run("county", "set", COUNTY, "--opening", "on", "--phase", "all").returncode == 0
    return run


async def _services(settings: Any, when: dt.date | None = None) -> Any:
    noon = dt.datetime.combine(when or TODAY, dt.time(12), LOCAL_ZONE).astimezone(dt.UTC)
    return await build_services(settings, clock=FixedClock(noon), with_redis=False)


def on_day(settings: Any, when: dt.date, work: Any) -> Any:
    async def go() -> Any:
        services = await _services(settings, when)
        try:
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(go())


def test_json_rows_per_institution_county_and_city(cli) -> None:
    rows = cli.rows()
    assert list(rows) == [
        (OTHER, OTHER_INSTITUTION),
        (OTHER, None),
        (COUNTY, MINE),
        (COUNTY, None),
        (None, None),
    ]
    stock = ("archives", "key_group_archives", "opened", "bound")
    assert [rows[(COUNTY, MINE)][k] for k in stock] == [3, 2, 2, 0]
    assert [rows[(OTHER, OTHER_INSTITUTION)][k] for k in stock] == [1, 1, 0, 0]  # switch off: nothing opened
    assert [rows[(None, None)][k] for k in stock] == [4, 3, 2, 0]
    assert rows[(None, None)]["median_reply_hours"] is None and rows[(None, None)]["readers"] == 0

    narrowed = cli.rows("--county", COUNTY)
    assert list(narrowed) == [(COUNTY, MINE), (COUNTY, None)]  # that county and its total, no city row


def test_table_and_csv_read_in_chinese(cli) -> None:
    table = cli("stats")
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0] == f"统计期间 {day(-29)} 至 {day(0)}"
    assert lines[1].split()[:6] == ["县代码", "机构代码", "名称", "建档数", "重点人群建档数", "已开放"]
    assert any("莘县燕店镇卫生院" in line and "66.7%" in line for line in lines)
    assert any("莘县合计" in line for line in lines) and "全市合计" in lines[-1]

    done = cli("stats", "--format", "csv", "--county", COUNTY, "--from", day(-6), "--to", day(0))
    assert done.returncode == 0
    header, *body = done.stdout.splitlines()
    assert tuple(header.split(",")) == HEADER
    assert [line.split(",")[:4] for line in body] == [
        [COUNTY, MINE, "莘县燕店镇卫生院", "3"],
        [COUNTY, "", "莘县合计", "3"],
    ]


BAD = [
    (("--from", "2026/11/01"), "YYYY-MM-DD"),
    (("--to", "tomorrow"), "YYYY-MM-DD"),
    (("--from", day(-1), "--to", day(-5)), "起始日期不能晚于截止日期"),
    (("--to", day(1)), "截止日期不能晚于今天"),
    (("--from", day(-400)), "最长 366 天"),
    (("--county", "999999"), "未找到县（市、区）999999"),
]


def test_what_cannot_be_counted_is_exit_2_with_the_reason(cli) -> None:
    for args, words in BAD:
        done = cli("stats", *args)
        assert done.returncode == 2, args
        assert words in done.stderr and done.stderr.startswith("错误：") and done.stdout == "", args


def test_past_days_read_that_days_snapshot_or_say_which_day_they_read(cli, tmp_path: Path) -> None:
    settings = cli.settings()
    on_day(settings, TODAY - dt.timedelta(days=3), daily_stats)
    more = [archive(n) for n in (11, 12)]
    assert cli("import", str(write(tmp_path / "more.jsonl", more))).returncode == 0
    on_day(settings, TODAY - dt.timedelta(days=1), daily_stats)
    on_day(settings, TODAY - dt.timedelta(days=1), daily_stats)  # again the same day: the same rows
    assert cli("import", str(write(tmp_path / "last.jsonl", [archive(13)]))).returncode == 0

    def archives(*args: str) -> tuple[int | None, str]:
        done = cli("stats", "--format", "json", *args)
        assert done.returncode == 0, done.stderr
        return {(r["county_code"], r["institution_code"]): r for r in json.loads(done.stdout)}[(COUNTY, MINE)][
            "archives"
        ], done.stderr

    assert archives() == (6, "")  # today: live, no note
    n, note = archives("--to", day(-1))
    assert n == 5 and f"{day(-1)} 的每日统计快照" in note
    n, note = archives("--to", day(-2))
    assert n == 3 and f"{day(-2)} 没有每日统计快照" in note and f"此前最近的 {day(-3)}" in note
    n, note = archives("--to", day(-4))
    assert n is None and f"{day(-4)} 及以前没有每日统计快照" in note

    async def snapshot_rows(services: Any) -> int:
        async with services.sessions() as s:
            return len((await s.execute(select(StatSnapshot).where(StatSnapshot.day == TODAY - dt.timedelta(1)))).all())

    assert on_day(settings, TODAY, snapshot_rows) == 2  # one per institution


def test_the_daily_job_counts_someone_turning_65_into_the_key_groups(cli, tmp_path: Path) -> None:
    settings = cli.settings()
    birthday = TODAY + dt.timedelta(days=2)  # 65 the day after tomorrow
    born = birthday.replace(year=birthday.year - 65)
    turning = archive(30, birth_date=born.isoformat(), programmes=[], id_number=id_number(f"{born:%Y%m%d}", "330"))
    assert cli("import", str(write(tmp_path / "turning.jsonl", [turning]))).returncode == 0
    before = cli.rows()[(COUNTY, MINE)]["key_group_archives"]

    async def flag(services: Any) -> tuple[bool, dt.date | None]:
        async with services.sessions() as s:
            row = (await s.execute(select(Archive).where(Archive.upstream_id == "arc-30"))).scalar_one()
            return row.key_group, row.key_group_review_on

    assert on_day(settings, TODAY, flag) == (False, birthday)
    on_day(settings, TODAY + dt.timedelta(days=1), daily_stats)  # not yet
    assert cli.rows()[(COUNTY, MINE)]["key_group_archives"] == before
    on_day(settings, TODAY + dt.timedelta(days=2), daily_stats)  # the birthday
    assert on_day(settings, TODAY, flag) == (True, None)
    assert cli.rows()[(COUNTY, MINE)]["key_group_archives"] == before + 1


def test_upgrade_fills_the_index_and_key_groups_of_archives_from_before_0006(cli, db_url: str) -> None:
    settings = cli.settings()
    keys = KeyRing.from_settings(settings.security)

    async def as_before_0006(services: Any) -> None:
        async with services.engine.begin() as conn:  # the schema before 0006, as alembic takes it back

            def down(sync_conn: Any) -> None:
                cfg = alembic_config()
                cfg.attributes["connection"] = sync_conn
                command.downgrade(cfg, "0005")

            await conn.run_sync(down)  # which also marks the backfill to run again

    on_day(settings, TODAY, as_before_0006)
    done = cli("db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "已为 4 份档案补建" in done.stdout and "已统计 2 个机构" in done.stdout

    async def after(services: Any) -> tuple[dict, dict, dict]:
        async with services.sessions() as s:
            archives = (await s.execute(select(Archive))).scalars().all()
            counts = (await s.execute(select(ArchiveCount))).scalars().all()
            left = await s.scalar(text("SELECT count(*) FROM archives WHERE name_birth_bidx IS NULL"))
            assert left == 0
        index = {}
        for a in archives:
            fields = keys.open(a.sealed, f"archive:{a.upstream_id}")
            wanted = keys.blind_index("name_birth", name_birth(fields["name"], fields["birth_date"]))
            index[a.upstream_id] = (a.name_birth_bidx, wanted)
        groups = {a.upstream_id: a.key_group for a in archives}
        tally = {c.institution_code: (c.archives, c.key_group, c.opened, c.bound) for c in counts}
        return index, groups, tally

    index, groups, tally = on_day(settings, TODAY, after)
    assert all(found == wanted for found, wanted in index.values())
    assert groups == {"arc-1": True, "arc-2": True, "arc-3": False, "arc-4": True}
    assert tally == {MINE: (3, 2, 2, 0), OTHER_INSTITUTION: (1, 1, 1, 0)}  # the switch is applied when read
    assert "已为" not in cli("db", "upgrade").stdout  # done once: nothing more to do
    assert cli.rows()[(COUNTY, MINE)]["archives"] == 3
