"""Statistics benchmark: the 统计 page and ``stats --format json`` on one county of 500,000 archives.

Run by ``make bench`` as ``.venv/bin/python bench/stats.py``.

**Data** — a PostgreSQL database of one county (莘县 371522, its 6 institutions from
``seed.places``, switch on, phase ``all``) with ``--archives`` archives (default 500,000), built
once and kept as template ``wb_bench_stats_<size>`` (``--fresh`` rebuilds); each run measures a copy.
The archive rows are what an import writes — personal fields sealed under the bench's keys
(``bench/results/data/stats/secrets.toml``), the blind indexes, the key-group flag and its review
date from ``stats.key_group`` — made straight from a seeded generator (no records: the statistics
read none) and written with COPY. Around them, spread over the 60 days before the build: 30 % of
the opened archives bound (one subscribed official-account identity each, a quarter of them having
followed through their institution's QR code; 5 % of those archives bound by a second person),
15,000 more follows through the institutions' QR codes, 120,000 pushes (85 % sent, 8 % skipped,
2 % dead, the rest pending), 6,000 questions (a tenth to the city's inbox, 80 % answered after
half an hour to four days) and 400,000 ``archive_read`` audit rows of the bound residents (5 %
refused) beside 150,000 ``archive_list`` rows; their ``reader_days`` are filled from the audit log
by ``stats.readers.fill_from_audit`` (the 0006 backfill's step, timed). Then ``stats.daily.recount_all`` counts every
institution (its time per institution is reported: the cost a recount adds wherever it runs) and
60 daily snapshots are written. A copy made on a later day has every timestamp moved by the days
since the build, so "the last 30 days" always hold half of the data.

**Measured**, with the real application (``build_services`` + ``make_app``, served and logging as
``wechat-backend serve``) in a child process pinned to the first CPU and the client on the second:

* ``GET /staff/stats`` (the default period: the last 30 days, stock figures live) by a county
  administrator: ``--requests`` one after the other on one keep-alive connection, then the same
  number by 8 administrators at once (8 connections, 8 sessions). Target (the issue): p99 < 200 ms
  one at a time. Each answer must be 200 and the county's total row must show the figures
  ``StatsService`` computes in this process.
* the floors, in the same run: ``GET /staff/`` (the 工作台 home: the same session, member and
  template path, no statistics) one at a time; and the statements ``StatsService.figures`` sends
  for that administrator's scope, compiled for asyncpg and sent alone, one after the other, on one
  connection (no ORM, no audit row, no rendering). The page sends its three heavy statements (the
  readers per institution, per county, the pushes) on three connections at once
  (``flows.read_flows``), so it can beat this "floor": read it as the sum of the statements' times.
* ``StatsService.figures`` in this process (``--requests`` calls) and
  ``python -m wechat_backend stats --format json`` as a process (``--cli-runs`` runs, wall time from
  start to exit; its JSON must equal the in-process rows).

Output: a table on stdout, progress on stderr, ``bench/results/stats-<UTC stamp>.json`` and
``stats-latest.json``. A missed target prints MISSED and exits 0; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import random
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import harness
import tornado
from binding import forget_keys
from harness import DEFAULT_PG_URL, PROJECT, RESULTS, BenchError, log, ms, percentile, verdict
from machine import machine_info
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL

from wechat_backend.blind_index import archive_indexes
from wechat_backend.clock import Clock
from wechat_backend.config import Settings, load_settings
from wechat_backend.crypto import KeyRing
from wechat_backend.db import upgrade_url
from wechat_backend.ids import new_public_id
from wechat_backend.seed.places import build_institutions, institution_line
from wechat_backend.stats.key_group import key_group
from wechat_backend.validators import id_check_char

ARCHIVES = 500_000
QUICK_ARCHIVES = 20_000
COUNTY = "371522"
DAYS = 60  # the data's spread before the build day
BOUND_SHARE = 0.30
TARGET_MS = 200.0
CONCURRENT = 8
BUILD_FORMAT = 4  # 4: reader_days (institution first), ix_archives_id_place
CACHE = RESULTS / "data" / "stats"  # secrets.toml: the keys the templates are sealed under
META = "bench_stats_meta"
BATCH = 10_000

# Per 500,000 archives (scaled for other sizes).
FOLLOWERS = 15_000
PUSHES = 120_000
QUESTIONS = 6_000
READS = 400_000
LISTS = 150_000

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏"
GIVEN = "秀英桂兰淑珍玉凤志强建国海燕丽娟明华红霞文杰子涵雨轩浩然秀兰金凤春梅国庆永刚晓东"


def bench_settings(data_dir: Path, db_url: str, *, redis_url: str = "", key_prefix: str = "wb") -> Settings:
    """Demo-mode settings (secrets from ``data_dir/secrets.toml``) on the bench's database and Redis."""
    return load_settings(
        environ={},
        overrides={
            "server": {"mode": "demo", "data_dir": str(data_dir)},
            "database": {"url": db_url},
            "redis": {"url": redis_url, "key_prefix": key_prefix},
        },
    )


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def template_name(archives: int, seed: int) -> str:
    size = f"{archives // 1000}k" if archives % 1000 == 0 else str(archives)
    return f"wb_bench_stats_{size}" + (f"_s{seed}" if seed != 1 else "")


def key_fingerprint(keyring: KeyRing) -> str:
    return f"{keyring.active_key}:{keyring.blind_fingerprint}"


# --------------------------------------------------------------------------- building the data


@dataclass
class Built:
    """What the rows after the archives need to know of them."""

    opened: list[tuple[int, str]]  # (archive id, institution code) of the opened archives
    archives: int = 0


def _person(rng: random.Random, n: int, code: str, today: dt.date) -> tuple[dict[str, Any], str, bool]:
    """The sealed fields of archive ``n``, its status and 是否开放给居民."""
    age_days = int(rng.random() ** 0.8 * 95 * 365.25)
    birth = today - dt.timedelta(days=age_days)
    age = age_days / 365.25
    programmes = []
    if age > 35 and rng.random() < 0.18:
        programmes.append("hypertension")
    if age > 35 and rng.random() < 0.07:
        programmes.append("diabetes")
    if 20 < age < 40 and rng.random() < 0.04:
        programmes.append("maternal")
    if age < 7:
        programmes.append("child")
    if age >= 65:
        programmes.append("elderly")
    if rng.random() < 0.005:
        programmes.append("severe_mental")
    first17 = f"{COUNTY}{birth:%Y%m%d}{n % 1000:03d}"
    fields = {
        "name": rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2)))),
        "id_number": first17 + id_check_char(first17),
        "archive_no": f"{COUNTY}{code[-3:]}{n:08d}",  # 17 digits, the county's first
        "gender": rng.choice("12"),
        "birth_date": birth.isoformat(),
        "phone": f"139{rng.randrange(10**8):08d}",
        "contact_name": None,
        "contact_phone": None,
        "address": f"莘县{rng.choice(('燕店镇', '朝城镇', '观城镇'))}{rng.randrange(1, 40)}村{rng.randrange(1, 200)}号",
        "household_address": None,
        "programmes": programmes,
        "family_doctor": "王医生",
        "basic_info": {},
        "filed_on": "2015-06-01",
    }
    status = rng.choices(("normal", "lost", "closed"), (95, 4, 1))[0]
    return fields, status, rng.random() < 0.92


ARCHIVE_COLUMNS = (
    "id",
    "public_id",
    "upstream_id",
    "version",
    "county_code",
    "institution_code",
    "status",
    "open_to_resident",
    "completeness",
    "sealed",
    "key_id",
    "key_group",
    "key_group_review_on",
    "id_bidx",
    "archive_no_bidx",
    "phone_bidx",
    "contact_phone_bidx",
    "name_birth_bidx",
    "bidx_fp",
    "created_at",
    "updated_at",
)


async def _archives(
    conn: asyncpg.Connection, keys: KeyRing, codes: list[str], count: int, rng: random.Random, today: dt.date
) -> Built:
    now = dt.datetime.now(dt.UTC)
    built = Built(opened=[])
    rows: list[tuple[Any, ...]] = []
    shown = 0.0
    for n in range(1, count + 1):
        code = codes[n % len(codes)]
        fields, status, open_flag = _person(rng, n, code, today)
        upstream = f"bs-{n:07d}"
        member, review_on = key_group(fields, today)
        indexes = archive_indexes(keys, fields)
        row = {
            "id": n,
            "public_id": new_public_id(),
            "upstream_id": upstream,
            "version": 1,
            "county_code": COUNTY,
            "institution_code": code,
            "status": status,
            "open_to_resident": open_flag,
            "completeness": rng.randint(70, 100),
            "sealed": keys.seal(fields, f"archive:{upstream}"),
            "key_id": keys.active_key,
            "key_group": member,
            "key_group_review_on": review_on,
            **indexes,
            "created_at": now,
            "updated_at": now,
        }
        rows.append(tuple(row[c] for c in ARCHIVE_COLUMNS))
        if open_flag and status == "normal":
            built.opened.append((n, code))
        if len(rows) >= BATCH or n == count:
            await conn.copy_records_to_table("archives", records=rows, columns=list(ARCHIVE_COLUMNS))
            rows = []
            if n / count - shown >= 0.2 or n == count:
                shown = n / count
                log(f"  archives: {n:,}/{count:,}")
    built.archives = count
    await conn.execute("SELECT setval('archives_id_seq', (SELECT max(id) FROM archives))")
    return built


def _ago(rng: random.Random, now: dt.datetime, days: float = DAYS) -> dt.datetime:
    return now - dt.timedelta(seconds=rng.uniform(0, days * 86400))


async def _people_around(
    conn: asyncpg.Connection, keys: KeyRing, built: Built, codes: list[str], scale: float, rng: random.Random
) -> dict[str, int]:
    """Identities, bindings, pushes, questions and audit rows, spread over the last DAYS days."""
    now = dt.datetime.now(dt.UTC)
    bound = rng.sample(built.opened, int(len(built.opened) * BOUND_SHARE))
    identities, bindings = [], []
    holders: list[tuple[int, int, str]] = []  # (identity, archive, institution)
    next_id = 1

    def identity(at: dt.datetime, scene: str | None) -> int:
        nonlocal next_id
        identities.append((next_id, new_public_id(), "oa", f"bench-stats-{next_id:08d}", True, at, scene, at, at))
        next_id += 1
        return next_id - 1

    for archive, code in bound:
        followed = now - dt.timedelta(seconds=rng.uniform(0, 400 * 86400))
        who = identity(followed, code if rng.random() < 0.25 else None)
        bindings.append((new_public_id(), who, archive, "self", followed, followed))
        holders.append((who, archive, code))
        if rng.random() < 0.05:
            family = identity(followed, None)
            bindings.append((new_public_id(), family, archive, "parent", followed, followed))
            holders.append((family, archive, code))
    for _ in range(int(FOLLOWERS * scale)):
        identity(_ago(rng, now), rng.choice(codes))
    columns = [
        "id",
        "public_id",
        "channel",
        "openid",
        "subscribed",
        "subscribed_at",
        "scene_institution_code",
        "created_at",
        "updated_at",
    ]
    await conn.copy_records_to_table("identities", records=identities, columns=columns)
    await conn.execute("SELECT setval('identities_id_seq', (SELECT max(id) FROM identities))")
    columns = ["public_id", "identity_id", "archive_id", "relation", "created_at", "updated_at"]
    await conn.copy_records_to_table("bindings", records=bindings, columns=columns)

    pushes = []
    for n in range(int(PUSHES * scale)):
        who, archive, _ = rng.choice(holders)
        at = _ago(rng, now)
        status = rng.choices(("sent", "skipped", "dead", "pending"), (85, 8, 2, 5))[0]
        sent = at if status == "sent" else None
        pushes.append((who, archive, "followup_due", f"bs:{n}", status, 1, 1, at, sent, at, at))
    columns = [
        "identity_id",
        "archive_id",
        "kind",
        "dedup_key",
        "status",
        "priority",
        "attempts",
        "due_at",
        "sent_at",
        "created_at",
        "updated_at",
    ]
    await conn.copy_records_to_table("notifications", records=pushes, columns=columns)

    questions = []
    for _ in range(int(QUESTIONS * scale)):
        who, archive, code = rng.choice(holders)
        asked = _ago(rng, now)
        to_city = rng.random() < 0.1
        replied = asked + dt.timedelta(hours=rng.uniform(0.5, 96)) if rng.random() < 0.8 else None
        replied = replied if replied is not None and replied < now else None
        public_id = new_public_id()
        questions.append(
            (
                public_id,
                who,
                archive,
                None if to_city else COUNTY,
                None if to_city else code,
                "city" if to_city else "archive",
                "page",
                "answered" if replied else "open",
                keys.seal({"text": "请问下次随访是什么时候？"}, f"feedback:{public_id}"),
                keys.active_key,
                replied,
                asked,
                replied or asked,
            )
        )
    columns = [
        "public_id",
        "identity_id",
        "archive_id",
        "county_code",
        "institution_code",
        "route",
        "channel",
        "status",
        "sealed",
        "key_id",
        "replied_at",
        "created_at",
        "updated_at",
    ]
    await conn.copy_records_to_table("feedback", records=questions, columns=columns)

    audit: list[tuple[Any, ...]] = []
    columns = ["at", "actor_type", "actor_id", "action", "archive_id", "result", "reason"]
    for action, count in (("archive_read", READS), ("archive_list", LISTS)):
        for _ in range(int(count * scale)):
            who, archive, _ = rng.choice(holders)
            refused = action == "archive_read" and rng.random() < 0.05
            result, reason = ("denied", "not_bound") if refused else ("ok", None)
            audit.append((_ago(rng, now), "identity", str(who), action, archive, result, reason))
            if len(audit) >= 50_000:
                await conn.copy_records_to_table("audit_log", records=audit, columns=columns)
                audit = []
    if audit:
        await conn.copy_records_to_table("audit_log", records=audit, columns=columns)
    return {
        "identities": len(identities),
        "bindings": len(bindings),
        "bound_archives": len(bound),
        "pushes": len(pushes),
        "questions": len(questions),
        "audit_rows": int(READS * scale) + int(LISTS * scale),
    }


async def _build(url: URL, archives: int, seed: int, today: dt.date) -> dict[str, Any]:
    from wechat_backend.services import build_services
    from wechat_backend.stats.daily import recount_all, write_snapshot
    from wechat_backend.stats.readers import fill_from_audit

    await upgrade_url(url_text(url))
    settings = bench_settings(CACHE, url_text(url))
    services = await build_services(settings, with_redis=False)
    try:
        places = [inst for inst in build_institutions() if inst.county.code == COUNTY]
        report = await services.ingest.import_objects(
            [json.dumps(institution_line(inst), ensure_ascii=False) for inst in places]
        )
        if report.rejected or report.inserted != len(places):
            raise BenchError(f"the institutions did not import: {report.errors[:3]}")
        await services.counties.set(COUNTY, opening=True, phase="all", actor="bench")
        codes = [inst.code for inst in places]
        rng = random.Random(seed)
        started = time.perf_counter()
        conn = await asyncpg.connect(harness.dsn(url))
        try:
            log(f"  {archives:,} archives in {len(codes)} institutions ...")
            async with conn.transaction():
                built = await _archives(conn, services.keyring, codes, archives, rng, today)
                log("  identities, bindings, pushes, questions, audit rows ...")
                counts = await _people_around(conn, services.keyring, built, codes, archives / ARCHIVES, rng)
            load_seconds = time.perf_counter() - started
            log("  reader_days from the audit log (the 0006 backfill's step) ...")
            filled = time.perf_counter()
            await fill_from_audit(services.sessions)
            filled = time.perf_counter() - filled
            log("  VACUUM ANALYZE, then the recount of every institution ...")
            await conn.execute("VACUUM ANALYZE")
            recount = time.perf_counter()
            institutions = await recount_all(services.sessions)
            recount = time.perf_counter() - recount
            for back in range(DAYS, -1, -1):  # a snapshot a day (the figures of today, for the shape)
                await write_snapshot(services.sessions, today - dt.timedelta(days=back))
            await conn.execute("VACUUM ANALYZE")
            size = await conn.fetchval("SELECT pg_database_size(current_database())")
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
        finally:
            await conn.close()
        keys = key_fingerprint(services.keyring)
    finally:
        await services.close()
    return {
        "format": BUILD_FORMAT,
        "archives": archives,
        "opened_archives": len(built.opened),
        **counts,
        "institutions": institutions,
        "seed": seed,
        "today": today.isoformat(),
        "keys": keys,
        "alembic": revision,
        "bytes": size,
        "load_seconds": load_seconds,
        "reader_days_fill_seconds": filled,
        "recount_seconds": recount,
        "recount_ms_per_institution": recount / max(1, institutions) * 1000,
        "built_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def ensure_template(admin: URL, archives: int, args: argparse.Namespace, keyring: KeyRing) -> dict[str, Any]:
    name = template_name(archives, args.seed)
    meta = None if args.fresh else asyncio.run(harness.read_template_meta(admin, name, META))
    wanted = {"format": BUILD_FORMAT, "archives": archives, "seed": args.seed, "keys": key_fingerprint(keyring)}
    if meta is not None and all(meta.get(k) == v for k, v in wanted.items()):
        log(f"using template {name}: {meta['archives']:,} archives, built {meta['built_at']}")
        return meta | {"template": name}
    why = "--fresh" if args.fresh else ("it does not match" if meta is not None else "none kept")
    log(f"building template {name} ({why}) ...")
    started = time.perf_counter()
    building = f"wb_bench_stats_build_{secrets.token_hex(4)}"
    asyncio.run(harness._admin(admin, f'CREATE DATABASE "{building}"'))
    try:
        url = admin.set(database=building)
        meta = asyncio.run(_build(url, archives, args.seed, Clock().today()))
        meta["build_seconds"] = time.perf_counter() - started

        async def write_meta() -> None:
            conn = await asyncpg.connect(harness.dsn(url))
            try:
                await conn.execute(f"CREATE TABLE {META} (built text)")
                await conn.execute(f"INSERT INTO {META} VALUES ($1)", json.dumps(meta))
            finally:
                await conn.close()

        asyncio.run(write_meta())
        harness.publish_database(admin, building, name)
    except BaseException:
        harness.drop_database_quietly(admin, building)
        raise
    log(
        f"built {name} in {meta['build_seconds']:.0f} s; recount {meta['recount_ms_per_institution']:.0f} ms"
        " per institution"
    )
    return meta | {"template": name}


@contextlib.contextmanager
def cloned(admin: URL, template: str) -> Any:
    name = f"wb_bench_{secrets.token_hex(4)}"
    asyncio.run(harness._admin(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'))
    try:
        yield admin.set(database=name)
    finally:
        try:
            asyncio.run(harness._admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            log(f"could not drop database {name}: {exc} — drop it by hand")


async def move_to_today(url: URL, built: dt.date, today: dt.date) -> int:
    """Move every timestamp of the copy by the days since the build."""
    days = (today - built).days
    if days == 0:
        return 0
    conn = await asyncpg.connect(harness.dsn(url))
    shift = f"make_interval(days => {int(days)})"
    try:
        for sql in (
            f"UPDATE audit_log SET at = at + {shift}",
            f"UPDATE notifications SET due_at = due_at + {shift}, sent_at = sent_at + {shift},"
            f" created_at = created_at + {shift}, updated_at = updated_at + {shift}",
            f"UPDATE feedback SET created_at = created_at + {shift}, replied_at = replied_at + {shift},"
            f" updated_at = updated_at + {shift}",
            f"UPDATE identities SET subscribed_at = subscribed_at + {shift}",
            f"UPDATE stat_snapshots SET day = day + {int(days)}",
            # Two steps: the primary key is checked row by row, and a day moved onto one not moved yet
            # would collide.
            "UPDATE reader_days SET day = day + 100000",
            f"UPDATE reader_days SET day = day - 100000 + {int(days)}",
        ):
            await conn.execute(sql)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return days


# --------------------------------------------------------------------------- the server child


def child_main(config_path: str) -> int:
    cfg = harness.child_config(config_path)
    asyncio.run(_serve(cfg))
    return 0


async def _serve(cfg: dict[str, Any]) -> None:
    """The real server, as ``wechat-backend serve`` runs it."""
    settings = bench_settings(
        Path(cfg["data_dir"]), cfg["db_url"], redis_url=cfg["redis_url"], key_prefix=cfg["key_prefix"]
    )
    await harness.serve_real(settings)


# --------------------------------------------------------------------------- the client


class Client:
    """One keep-alive HTTP/1.1 connection carrying a staff session cookie, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, cookie: str) -> None:
        self._reader, self._writer = reader, writer
        self._head = f"Host: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nAccept-Encoding: identity\r\n"

    @classmethod
    async def open(cls, port: int, cookie: str) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, port, cookie)

    async def get(self, path: str) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self._writer.write(f"GET {path} HTTP/1.1\r\n{self._head}\r\n".encode())
        raw = await asyncio.wait_for(self._reader.readuntil(b"\r\n\r\n"), 30)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = next(int(v) for k, _, v in (x.partition(":") for x in lines[1:]) if k.lower() == "content-length")
        body = await self._reader.readexactly(length)
        return status, body, time.perf_counter() - started

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def summary(latencies: list[float], seconds: float | None = None) -> dict[str, float]:
    ordered = sorted(latencies)
    out = {
        "count": len(ordered),
        "p50_ms": percentile(ordered, 0.50),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] * 1000 if ordered else math.nan,
        "mean_ms": sum(ordered) / len(ordered) * 1000 if ordered else math.nan,
    }
    if seconds:
        out["per_second"] = len(ordered) / seconds
    return out


_CELL = re.compile(r"<t[hd][^>]*>([^<]*)</t[hd]>")


def county_total_cells(html: str) -> list[str]:
    """The cells of the page's county total row."""
    found = re.search(r'<tr class="st-stats-county"[^>]*>(.*?)</tr>', html, re.S)
    return [c.strip() for c in _CELL.findall(found.group(1))] if found else []


def expected_cells(row: dict[str, Any]) -> list[str]:
    """What the page shows for the county's total, from the in-process JSON row."""
    keys = ("archives", "key_group_archives", "opened")
    return [str(row[k]) for k in keys]


async def _staff(settings: Settings, n: int) -> list[tuple[int, str]]:
    """``n`` county administrators of the county, their SMS factor fresh, each with a staff session:
    (staff id, session id)."""
    from sqlalchemy import update

    from wechat_backend.db.models import Staff
    from wechat_backend.services import build_services

    services = await build_services(settings)
    try:
        out = []
        for i in range(n):
            added = await services.staff.add(
                name=f"县管理员{i + 1}", phone=f"1390635{9000 + i:04d}", role="county", county_code=COUNTY
            )
            async with services.sessions.begin() as s:
                staff_id = (
                    await s.execute(
                        update(Staff)
                        .where(Staff.public_id == added.public_id)
                        .values(sms_verified_at=dt.datetime.now(dt.UTC))
                        .returning(Staff.id)
                    )
                ).scalar_one()
            out.append((staff_id, await services.web_sessions.open(staff_id, "staff")))
        return out
    finally:
        await services.close()


async def _in_process(settings: Settings, requests: int) -> tuple[list[float], list[dict[str, Any]], Any]:
    """``StatsService.figures`` for the county's administrator, ``requests`` times; and the statements
    it sends, compiled for asyncpg (the SQL floor)."""
    from wechat_backend.services import build_services
    from wechat_backend.stats.figures import Scope, StatsService, Viewer
    from wechat_backend.stats.period import parse_period

    services = await build_services(settings, with_redis=False)
    try:
        stats = StatsService(services.sessions, services.clock)
        period = parse_period(None, None, stats.today)
        scope = Scope(county=COUNTY)
        viewer = Viewer("system", "bench")
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            figures = await stats.figures(scope, period, viewer)
            times.append(time.perf_counter() - started)
        statements = await _statements(services, scope, period)
        return times, [r.as_json() for r in figures.rows], statements
    finally:
        await services.close()


async def _statements(services: Any, scope: Any, period: Any) -> list[tuple[str, list[Any]]]:
    """Every SELECT ``StatsService.figures`` sends for ``scope``, as (asyncpg SQL, arguments)."""
    from sqlalchemy import select

    from wechat_backend.db.models import County, Institution
    from wechat_backend.stats import flows, readers, stock

    start, end = period.utc_bounds()
    async with services.sessions() as s:
        codes = list((await s.scalars(select(Institution.code).where(Institution.county_code == COUNTY))).all())
    FEEDBACK, IDENTITIES = flows.FEEDBACK, flows.IDENTITIES
    found = [
        select(County.code, County.name).order_by(County.code),
        select(Institution.county_code, Institution.code, Institution.name)
        .where(Institution.county_code == COUNTY)
        .order_by(Institution.county_code, Institution.code),
        stock.LIVE.where(stock.COUNTS.c.institution_code.in_(codes)),
        readers.institution_readers_query(*flows.local_days(start, end), codes),
        readers.area_readers_query(*flows.local_days(start, end), codes, whole_counties=True),
        flows.pushes_query(start, end, codes),
        flows._by_institution(FEEDBACK.c.institution_code, FEEDBACK.c.created_at, start, end, codes),
        flows.waits_query(start, end, codes),
        flows._by_institution(IDENTITIES.c.scene_institution_code, IDENTITIES.c.subscribed_at, start, end, codes).where(
            IDENTITIES.c.scene_institution_code.is_not(None)
        ),
    ]
    dialect = postgresql.asyncpg.dialect(paramstyle="numeric_dollar")
    out: list[tuple[str, list[Any]]] = []
    for stmt in found:
        compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        out.append((str(compiled), [compiled.params[k] for k in compiled.positiontup or ()]))
    return out


async def sql_floor(url: URL, statements: list[tuple[str, list[Any]]], requests: int) -> list[float]:
    conn = await asyncpg.connect(harness.dsn(url))
    times = []
    try:
        for _ in range(requests):
            started = time.perf_counter()
            async with conn.transaction():
                for sql, params in statements:
                    await conn.fetch(sql, *params)
            times.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return times


def cli_runs(settings_dir: Path, url: URL, runs: int) -> tuple[list[float], list[dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env.pop("WECHAT_BACKEND_CONFIG", None)
    env |= {"WB_SERVER_MODE": "demo", "WB_SERVER_DATA_DIR": str(settings_dir), "WB_DATABASE_URL": url_text(url)}
    times, rows, stderr = [], [], ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "wechat_backend", "stats", "--format", "json", "--county", COUNTY],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise BenchError(f"stats --format json exited {done.returncode}: {done.stderr[-500:]}")
        rows, stderr = json.loads(done.stdout), done.stderr
    return times, rows, stderr


async def _load(port: int, sessions: list[tuple[int, str]], cookie_name: str, args: argparse.Namespace) -> dict:
    """The page one at a time, the home page one at a time (floor), then the page by 8 at once."""
    failures: list[str] = []
    out: dict[str, Any] = {}
    first = await Client.open(port, f"{cookie_name}={sessions[0][1]}")
    try:
        status, body, _ = await first.get("/staff/stats")
        if status != 200:
            raise BenchError(f"GET /staff/stats answered {status}")
        out["page_cells"] = county_total_cells(body.decode())
        for name, path in (("page", "/staff/stats"), ("home", "/staff/")):
            for _ in range(args.warmup):
                await first.get(path)
            times = []
            started = time.perf_counter()
            for _ in range(args.requests):
                status, _, seconds = await first.get(path)
                if status != 200:
                    failures.append(f"{path}: {status}")
                times.append(seconds)
            out[name] = summary(times, time.perf_counter() - started) | {"times": times}
            log(f"  {name} one at a time: p50 {out[name]['p50_ms']:.1f} ms, p99 {out[name]['p99_ms']:.1f} ms")
    finally:
        await first.close()

    clients = [await Client.open(port, f"{cookie_name}={sid}") for _, sid in sessions[1 : 1 + CONCURRENT]]
    try:
        each = math.ceil(args.requests / CONCURRENT)
        times: list[float] = []

        async def one(client: Client) -> None:
            for _ in range(each):
                status, _, seconds = await client.get("/staff/stats")
                if status != 200:
                    failures.append(f"/staff/stats (8 at once): {status}")
                times.append(seconds)

        await asyncio.gather(*(one(c) for c in clients))  # warm-up round
        times.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one(c) for c in clients))
        out["page_8"] = summary(times, time.perf_counter() - started)
        log(f"  page 8 at once: p50 {out['page_8']['p50_ms']:.1f} ms, p99 {out['page_8']['p99_ms']:.1f} ms")
    finally:
        for c in clients:
            await c.close()
    out["failures"] = failures
    return out


def measure(meta: dict[str, Any], admin: URL, args: argparse.Namespace, tmp: Path, cpus: tuple[int, int]) -> dict:
    from handlers.base import staff_cookie_name

    result: dict[str, Any] = {"data": meta, "failures": []}
    with cloned(admin, meta["template"]) as url:
        moved = asyncio.run(move_to_today(url, dt.date.fromisoformat(meta["today"]), Clock().today()))
        result["days_moved"] = moved
        if moved:
            log(f"moved the copy's timestamps by {moved} days (built {meta['today']})")
        key_prefix = f"benchstats{secrets.token_hex(3)}"
        settings = bench_settings(CACHE, url_text(url), redis_url=args.redis_url, key_prefix=key_prefix)
        try:
            sessions = asyncio.run(_staff(settings, 1 + CONCURRENT))
            cfg = {
                "server_cpu": cpus[0],
                "client_cpu": cpus[1],
                "db_url": url_text(url),
                "redis_url": args.redis_url,
                "key_prefix": key_prefix,
                "data_dir": str(CACHE),
            }
            child = harness.start_child("server", [str(Path(__file__).resolve()), "--child"], cfg, tmp / "server")
            try:
                cpu_before = harness.cpu_seconds(child.pid)
                log(f"the page over HTTP: {args.requests} one at a time, then {CONCURRENT} at once ...")
                http = asyncio.run(
                    _load(child.port, sessions, staff_cookie_name(settings.server.public_base_url), args)
                )
                result["server_cpu_seconds"] = harness.cpu_seconds(child.pid) - cpu_before
                child.stop()
            finally:
                child.kill()
            result["failures"] += http.pop("failures")
            cells = http.pop("page_cells")
            log(f"in process: StatsService.figures x {args.requests}; the SQL floor x {args.requests} ...")
            times, rows, statements = asyncio.run(_in_process(settings, args.requests))
            result["in_process"] = summary(times)
            result["sql_floor"] = summary(asyncio.run(sql_floor(url, statements, args.requests)))
            result["statements"] = len(statements)
            county = next((r for r in rows if r["institution_code"] is None), None)
            if county is None or cells[1:4] != expected_cells(county):
                result["failures"].append(f"the page's county total {cells[1:4]} is not {county}")
            log(f"stats --format json as a process x {args.cli_runs} ...")
            cli_times, cli_rows, _ = cli_runs(CACHE, url, args.cli_runs)
            result["cli"] = summary(cli_times)
            if cli_rows != rows:
                result["failures"].append("stats --format json differs from StatsService.figures")
            result["county_total"] = county
            for name in ("page", "home"):
                http[name].pop("times")
            result |= http
        finally:
            asyncio.run(forget_keys(args.redis_url, key_prefix))
    return result


# --------------------------------------------------------------------------- report


def _ratio(a: float, b: float) -> str:
    return "-" if not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def report(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    data = result["data"]
    print(
        f"stats bench: {data['archives']:,} archives in one county ({data['institutions']} institutions),"
        f" {data['bound_archives']:,} bound, {data['pushes']:,} pushes, {data['questions']:,} questions,"
        f" {data['audit_rows']:,} audit rows over {DAYS} days; recount {data['recount_ms_per_institution']:.0f} ms"
        " per institution"
    )
    print(f"{'what':<44}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'/s':>9}")
    lines = (
        ("GET /staff/stats, one at a time", result["page"]),
        (f"GET /staff/stats, {CONCURRENT} at once", result["page_8"]),
        ("floor: GET /staff/ (home), one at a time", result["home"]),
        ("floor: the same SQL alone (asyncpg)", result["sql_floor"]),
        ("StatsService.figures in process", result["in_process"]),
        ("stats --format json, process wall time", result["cli"]),
    )
    for name, s in lines:
        rate = s.get("per_second")
        print(
            f"{name:<44}{s['count']:>6}{ms(s['p50_ms']):>10}{ms(s['p99_ms']):>10}{ms(s['max_ms']):>10}"
            f"{(f'{rate:.1f}' if rate else '-'):>9}"
        )
    page, sql, home = result["page"], result["sql_floor"], result["home"]
    print(
        f"page ÷ SQL floor: p50 {_ratio(page['p50_ms'], sql['p50_ms'])}, p99 {_ratio(page['p99_ms'], sql['p99_ms'])};"
        f" page - home page p50: {page['p50_ms'] - home['p50_ms']:.1f} ms"
    )
    target = {
        "page_p99_one_at_a_time_ms": {
            "value": page["p99_ms"],
            "target": f"< {TARGET_MS:.0f}",
            "met": page["p99_ms"] < TARGET_MS,
        }
    }
    met = verdict(target["page_p99_one_at_a_time_ms"]["met"])
    print(f"target: p99 one at a time {page['p99_ms']:.1f} ms < {TARGET_MS:.0f} ms: {met}")
    return target


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument(
        "--archives", type=int, default=None, help=f"archives (default {ARCHIVES:,}; --quick {QUICK_ARCHIVES:,})"
    )
    p.add_argument("--requests", type=int, default=None, help="measured requests per phase (default 300; --quick 40)")
    p.add_argument("--warmup", type=int, default=None, help="requests before measuring (default 20; --quick 5)")
    p.add_argument("--cli-runs", type=int, default=None, help="runs of the stats command (default 10; --quick 2)")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument("--fresh", action="store_true", help="rebuild the template database")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("DATABASE_URL_PG") or DEFAULT_PG_URL,
        help="PostgreSQL server for the template and the copy (default: $DATABASE_URL_PG or %(default)s)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/10",
        help="Redis for the staff sessions (default: $REDIS_URL or %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK_ARCHIVES:,} archives, few requests")
    args = p.parse_args(argv)
    defaults = {
        "archives": QUICK_ARCHIVES if args.quick else ARCHIVES,
        "requests": 40 if args.quick else 300,
        "warmup": 5 if args.quick else 20,
        "cli_runs": 2 if args.quick else 10,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.archives < 1000 or args.requests < 1 or args.cli_runs < 1:
        p.error("--archives must be >= 1000; --requests and --cli-runs >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1])
    args = parse_args(argv)
    stamp = harness.utc_stamp()
    started = time.perf_counter()
    with harness.exits_on_failure("bench/stats.py", OSError, asyncpg.PostgresError):
        admin = harness.normalised_url(args.pg_url)
        CACHE.mkdir(parents=True, exist_ok=True)
        keyring = KeyRing.from_settings(bench_settings(CACHE, url_text(admin)).security)  # makes secrets.toml once
        meta = ensure_template(admin, args.archives, args, keyring)
        cpus = harness.pin_load_generator("bench/stats.py")
        machine = machine_info(server_cpu=cpus[0], client_cpu=cpus[1], tornado=tornado.version)
        machine["database"] = f"PostgreSQL {harness.server_version(admin)}"
        machine["redis"] = args.redis_url
        with tempfile.TemporaryDirectory(prefix="wb-bench-stats-") as tmp:
            result = measure(meta, admin, args, Path(tmp), cpus)
    return harness.finish(result, "stats", stamp, report, machine=machine, args=args, admin=admin, started=started)


if __name__ == "__main__":
    sys.exit(main())
