"""统计: every figure moves by exactly one when its event happens (an import, a binding, a read, a
push, a question and its answer, a follow through an institution's QR code, an unbinding, the
county switch), through the real app and the sandbox; the page shows the member's scope only; the
CSV and Excel downloads hold the same figures; bad dates are explained; views are audited.

The clock stands at the real time here: the audit log and a few timestamps are written with the
wall clock, so the period "today" must be the real one."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from binding.conftest import ELDER, PARENT_OF_CHILD_PHONE, person
from conftest import Live
from ingest_lines import COUNTY, archive, write
from sqlalchemy import delete, select

from staff.conftest import INSTITUTION, OTHER_INSTITUTION
from wechat_backend.clock import LOCAL_ZONE, FixedClock
from wechat_backend.db.models import Archive, AuditEvent, Binding, Feedback, Notification, ReaderDay
from wechat_backend.ids import new_public_id
from wechat_backend.stats.daily import daily_stats
from wechat_backend.stats.export import HEADER
from wechat_backend.stats.figures import JSON_KEYS, Scope, StatsService, Viewer
from wechat_backend.stats.period import Period
from wechat_backend.stats.readers import fill_from_audit

OTHER_COUNTY = OTHER_INSTITUTION[:6]
CITY = (None, None)
TOTAL = (COUNTY, None)
MINE = (COUNTY, INSTITUTION)
THEIRS = (OTHER_COUNTY, OTHER_INSTITUTION)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


async def figures(services: Any, **scope: Any) -> dict[tuple[str | None, str | None], dict[str, Any]]:
    """Today's figures as the JSON rows, by (county, institution)."""
    today = services.clock.today()
    found = await StatsService(services.sessions, services.clock).figures(
        Scope(**scope), Period(today - dt.timedelta(days=1), today), Viewer("system", "test")
    )
    return {(r.county_code, r.institution_code): r.as_json() for r in found.rows}


def moved(before: dict, after: dict, where: tuple[str | None, str | None]) -> dict[str, Any]:
    """The figures of one row that changed: {key: after - before} (the median as it now is)."""
    out = {}
    for key in JSON_KEYS[2:]:
        a, b = before[where][key], after[where][key]
        if a != b:
            out[key] = b if key == "median_reply_hours" or a is None or b is None else b - a
    return out


async def archive_id(services: Any, n: int) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(Archive.id).where(Archive.upstream_id == f"arc-{n}"))


async def bound_identity(services: Any, archive: int) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(Binding.identity_id).where(Binding.archive_id == archive))


async def add(services: Any, *rows: Any) -> None:
    async with services.sessions.begin() as s:
        s.add_all(rows)


def question(services: Any, identity: int, institution: str | None, asked: dt.datetime, **over: Any) -> Feedback:
    public_id = new_public_id()
    return Feedback(
        public_id=public_id,
        identity_id=identity,
        county_code=institution[:6] if institution else None,
        institution_code=institution,
        route="archive" if institution else "city",
        sealed=services.keyring.seal({"text": "什么时候随访？"}, f"feedback:{public_id}"),
        key_id=services.keyring.active_key,
        created_at=asked,
        **over,
    )


def push(identity: int, archive: int | None, status: str, at: dt.datetime) -> Notification:
    return Notification(
        identity_id=identity,
        archive_id=archive,
        kind="followup_due",
        dedup_key=new_public_id(),
        status=status,
        due_at=at,
        sent_at=at if status == "sent" else None,
    )


async def test_each_figure_moves_by_exactly_one_when_its_event_happens(
    people: Live, resident: Any, tmp_path: Path
) -> None:
    _, services = people
    now = services.clock.now()
    start = await figures(services)
    assert start[MINE] | {"county_code": None} == {
        "county_code": None,
        "institution_code": INSTITUTION,
        "archives": 7,
        "key_group_archives": 6,  # all but the 15-year-old
        "opened": 6,  # all but 是否开放给居民 = 否
        "bound": 0,
        "readers": 0,
        "pushes_sent": 0,
        "pushes_skipped": 0,
        "pushes_dead": 0,
        "questions": 0,
        "answered": 0,
        "median_reply_hours": None,
        "qr_follows": 0,
    }
    assert start[THEIRS]["archives"] == 1 and start[THEIRS]["opened"] == 0  # 阳谷县's switch is off

    async def step(event: Any, where: tuple = MINE) -> dict[str, Any]:
        nonlocal start
        await event()
        after = await figures(services)
        change = moved(start, after, where)
        # The county's and the city's totals move alike (a question to the city's inbox aside).
        for total in (TOTAL, CITY) if where == MINE else ():
            assert moved(start, after, total) == change, total
        start = after
        return change

    a = await resident("甲")
    elder = await archive_id(services, ELDER)
    assert await step(lambda: a.bind(ELDER)) == {"bound": 1}
    b = await resident("乙")
    services.clock.advance(seconds=61)  # one code a minute to a phone
    assert await step(lambda: b.bind(ELDER, relation="parent", phone=person(ELDER)["phone"])) == {}  # same archive

    public = (await a.archives())[0]["id"]

    async def read(who: Any) -> None:
        assert (await who.call("GET", f"/api/v1/archives/{public}")).status_code == 200

    assert await step(lambda: read(a)) == {"readers": 1}
    assert await step(lambda: read(a)) == {}  # the same person again
    assert await step(lambda: read(b)) == {"readers": 1}

    me = await bound_identity(services, elder)
    assert await step(lambda: add(services, push(me, elder, "sent", now))) == {"pushes_sent": 1}
    assert await step(lambda: add(services, push(me, elder, "skipped", now))) == {"pushes_skipped": 1}
    assert await step(lambda: add(services, push(me, elder, "dead", now))) == {"pushes_dead": 1}
    assert await step(lambda: add(services, push(me, elder, "pending", now))) == {}

    asked = now - dt.timedelta(hours=5)
    assert await step(lambda: add(services, question(services, me, INSTITUTION, asked))) == {"questions": 1}
    answered = question(services, me, INSTITUTION, asked, status="answered", replied_at=asked + dt.timedelta(hours=3))
    assert await step(lambda: add(services, answered)) == {"questions": 1, "answered": 1, "median_reply_hours": 3.0}
    # The city's inbox: the city's total only.
    before = start
    await add(services, question(services, me, None, asked, replied_at=asked + dt.timedelta(hours=1)))
    after = await figures(services)
    assert moved(before, after, MINE) == {} and moved(before, after, TOTAL) == {}
    assert moved(before, after, CITY) == {"questions": 1, "answered": 1, "median_reply_hours": 2.0}
    start = after

    follower = await resident("丙")

    async def scan(scene: str) -> None:
        await follower.sandbox("POST", f"users/{follower.openid}/scan", {"scene": scene})

    assert await step(lambda: scan(INSTITUTION)) == {"qr_follows": 1}
    stranger = await resident("丁")
    assert await step(lambda: stranger.sandbox("POST", f"users/{stranger.openid}/scan", {"scene": "x1"})) == {}

    c = await resident("戊")
    assert await step(lambda: c.bind(PARENT_OF_CHILD_PHONE)) == {"bound": 1}
    mine = (await c.archives())[0]["binding_id"]
    assert await step(lambda: c.call("DELETE", f"/api/v1/bindings/{mine}")) == {"bound": -1}
    # ELDER keeps one binding after one of its two goes.
    theirs = (await b.archives())[0]["binding_id"]
    assert await step(lambda: b.call("DELETE", f"/api/v1/bindings/{theirs}")) == {}

    async def imported(*lines: Any) -> None:
        report = await services.ingest.import_file(write(tmp_path / f"{len(lines)}-{id(lines)}.jsonl", list(lines)))
        assert report.exit_code == 0, report.errors

    new = archive(20, name="新生儿", birth_date=services.clock.today().isoformat(), id_number=None, programmes=[])
    assert await step(lambda: imported(new)) == {"archives": 1, "key_group_archives": 1, "opened": 1}
    # The county switch off: nothing of the county is open to residents, so nothing counts as opened.
    assert (start[MINE]["opened"], start[MINE]["bound"]) == (7, 1)
    assert await step(lambda: services.counties.set(COUNTY, opening=False)) == {"opened": -7, "bound": -1}
    assert await step(lambda: services.counties.set(COUNTY, opening=True)) == {"opened": 7, "bound": 1}
    lost = archive(ELDER, version=2, status="lost")
    assert await step(lambda: imported(lost)) == {"opened": -1, "bound": -1}  # 失访: no longer open

    # What the CLI prints is these very rows.
    listed = cli_json(services, tmp_path)
    assert {(r["county_code"], r["institution_code"]): r for r in listed} == start


def cli_json(services: Any, tmp_path: Path) -> list[dict[str, Any]]:
    """``wechat-backend stats --format json`` as an operator runs it, on the app's database."""
    import json

    settings = services.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {
        "WB_SERVER_MODE": "demo",
        "WB_SERVER_DATA_DIR": str(settings.server.data_dir),
        "WB_DATABASE_URL": settings.database.url,
    }
    env.pop("WECHAT_BACKEND_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "wechat_backend", "stats", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


# --------------------------------------------------------------------------- the page


class _Rows(HTMLParser):
    """The statistics table's rows: {(county, institution): [cell texts]}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str | None, str | None], list[str]] = {}
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-test") == "stats-row":
            self._row = []
            self.rows[(a["data-county"] or None, a["data-institution"] or None)] = self._row
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def page_rows(html: str) -> dict[tuple[str | None, str | None], list[str]]:
    parser = _Rows()
    parser.feed(html)
    return parser.rows


async def audit_readers(services: Any, since: dt.datetime) -> int:
    """Distinct residents with an ok ``archive_read`` audit row since ``since``: what the readers
    figure counted before ``reader_days`` (one county, one institution here)."""
    async with services.sessions() as s:
        rows = await s.scalars(
            select(AuditEvent.actor_id).where(
                AuditEvent.action == "archive_read",
                AuditEvent.result == "ok",
                AuditEvent.actor_type == "identity",
                AuditEvent.at >= since,
            )
        )
        return len(set(rows))


async def reader_days(services: Any) -> list[tuple[dt.date, str, int, str]]:
    async with services.sessions() as s:
        found = await s.execute(
            select(ReaderDay.day, ReaderDay.institution_code, ReaderDay.identity_id, ReaderDay.county_code).order_by(
                ReaderDay.day, ReaderDay.identity_id
            )
        )
        return [tuple(r) for r in found.all()]


async def test_a_residents_reads_land_in_reader_days_once_a_day(people: Live, resident: Any) -> None:
    _, services = people
    since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    a, b = await resident("甲"), await resident("乙")
    await a.bind(ELDER)
    services.clock.advance(seconds=61)  # one code a minute to a phone
    await b.bind(ELDER, relation="parent", phone=person(ELDER)["phone"])
    public = (await a.archives())[0]["id"]
    for path in ("", "/basic", "/records", "/trends", "/access-log", ""):  # six reads, one day
        assert (await a.call("GET", f"/api/v1/archives/{public}{path}")).status_code == 200
    assert (await b.call("GET", f"/api/v1/archives/{public}")).status_code == 200
    stranger = await resident("丙")
    await stranger.bind(PARENT_OF_CHILD_PHONE)
    assert (await stranger.call("GET", f"/api/v1/archives/{public}")).status_code == 404  # not theirs: no row

    today = dt.datetime.now(LOCAL_ZONE).date()
    elder = await archive_id(services, ELDER)
    async with services.sessions() as s:  # the two who bound it, 甲 and 乙
        who = set(await s.scalars(select(Binding.identity_id).where(Binding.archive_id == elder)))
    rows = await reader_days(services)
    assert [(d, i, c) for d, i, _, c in rows] == [(today, INSTITUTION, COUNTY)] * 2
    assert {identity for _, _, identity, _ in rows} == who
    now = await figures(services)
    assert now[MINE]["readers"] == now[TOTAL]["readers"] == now[CITY]["readers"] == 2
    assert await audit_readers(services, since) == 2

    # The backfill writes the same rows from the audit log, and places a read by its local day:
    # 00:30 in Shanghai is 16:30 UTC the day before.
    early = dt.datetime.combine(today - dt.timedelta(days=3), dt.time(0, 30), LOCAL_ZONE).astimezone(dt.UTC)
    async with services.sessions.begin() as s:
        await s.execute(delete(ReaderDay))
        s.add(AuditEvent(at=early, actor_type="identity", actor_id=str(min(who)), action="archive_read",
                         archive_id=elder, result="ok"))  # fmt: skip
    await fill_from_audit(services.sessions)
    assert await reader_days(services) == [(today - dt.timedelta(days=3), INSTITUTION, min(who), COUNTY), *rows]
    assert (await figures(services)) == now  # the last two days: the same figures as before

    # The daily job forgets reader days the audit log's retention no longer keeps.
    keep = services.settings.audit.retention_days
    old = [today - dt.timedelta(days=keep + 1), today - dt.timedelta(days=keep)]
    await add(
        services,
        *(ReaderDay(day=d, institution_code=INSTITUTION, identity_id=min(who), county_code=COUNTY) for d in old),
    )
    assert (await daily_stats(services)).reader_days_dropped == 1
    assert [r[0] for r in await reader_days(services)] == [old[1], today - dt.timedelta(days=3), today, today]


async def test_each_member_sees_their_own_scope_only(people: Live, staff_web: Any) -> None:
    city = await staff_web("city")
    r = await city.get("/staff/stats")
    assert r.status_code == 200
    assert set(page_rows(r.text)) == {MINE, TOTAL, THEIRS, (OTHER_COUNTY, None), CITY}
    mine = page_rows(r.text)[MINE]
    assert mine[:7] == ["莘县燕店镇卫生院", "7", "6", "6", "85.7%", "0", "0.0%"]
    assert page_rows(r.text)[THEIRS][1:5] == ["1", "1", "0", "0.0%"]  # closed county: nothing open
    assert 'data-test="stats-chart"' in r.text and "开放率 85.7%" in r.text

    narrowed = await city.get(f"/staff/stats?county={COUNTY}")
    assert set(page_rows(narrowed.text)) == {MINE, TOTAL}  # a county and its total, no city row
    assert (await city.get("/staff/stats?county=999999")).status_code == 404

    county = await staff_web("county", county=COUNTY)
    r = await county.get("/staff/stats")
    assert set(page_rows(r.text)) == {MINE, TOTAL}
    assert (await county.get(f"/staff/stats?county={OTHER_COUNTY}")).status_code == 404
    assert (await county.get(f"/staff/stats.csv?county={OTHER_COUNTY}")).status_code == 404

    clinic = await staff_web("institution", institution=INSTITUTION)
    r = await clinic.get("/staff/stats")
    assert set(page_rows(r.text)) == {MINE}
    table = r.text.split('data-test="stats-table"')[1].split("</table>")[0]
    assert "阳谷" not in r.text and "合计" not in table
    assert (await clinic.get(f"/staff/stats?county={OTHER_COUNTY}")).status_code == 404


async def test_downloads_hold_the_page_figures_and_cannot_run_formulas(people: Live, staff_web: Any) -> None:
    _, services = people
    async with services.sessions.begin() as s:  # a name a spreadsheet would take for a formula
        from wechat_backend.db.models import Institution

        inst = await s.scalar(select(Institution).where(Institution.code == INSTITUTION))
        inst.name = "=HYPERLINK(1)卫生院"
    web = await staff_web("county", county=COUNTY)
    today = services.clock.today().isoformat()
    page = page_rows((await web.get(f"/staff/stats?to={today}")).text)

    r = await web.get(f"/staff/stats.csv?to={today}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"].startswith("attachment;")
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert tuple(lines[0]) == HEADER
    by_code = {(x[0] or None, x[1] or None): x for x in lines[1:]}
    assert set(by_code) == {MINE, TOTAL}
    assert by_code[MINE][2] == "'=HYPERLINK(1)卫生院"
    assert by_code[MINE][3:9] == page[MINE][1:7]

    r = await web.get(f"/staff/stats.xlsx?to={today}")
    assert r.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(r.content))
    sheet = book["统计"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert tuple(values[0]) == HEADER
    mine = next(v for v in values[1:] if v[1] == INSTITUTION)
    assert mine[2] == "=HYPERLINK(1)卫生院" and sheet.cell(row=2, column=3).data_type == "s"
    assert mine[3:9] == [7, 6, 6, pytest.approx(6 / 7), 0, 0.0]
    assert "说明" in book.sheetnames

    async with services.sessions() as s:
        rows = (await s.execute(select(AuditEvent).where(AuditEvent.action.like("stats_%")))).scalars().all()
    assert [(r.action, r.actor_id, (r.detail or {}).get("format")) for r in rows] == [
        ("stats_view", f"staff:{web.public_id}", None),
        ("stats_export", f"staff:{web.public_id}", "csv"),
        ("stats_export", f"staff:{web.public_id}", "xlsx"),
    ]
    assert all(
        r.archive_id is None and set(r.detail) <= {"from", "to", "county", "institution", "format"} for r in rows
    )


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("from=2026/11/01", "YYYY-MM-DD"),
        ("from=2026-02-30", "YYYY-MM-DD"),
        ("from=2026-11-20&to=2026-11-01", "起始日期不能晚于截止日期"),
        ("to=2999-01-01", "截止日期不能晚于今天"),
        ("from=2020-01-01&to=2026-11-01", "最长 366 天"),
    ],
)
async def test_bad_dates_are_explained_on_the_page(people: Live, staff_web: Any, query: str, words: str) -> None:
    web = await staff_web("city")
    r = await web.get(f"/staff/stats?{query}")
    assert r.status_code == 400
    assert words in r.text and 'data-test="stats-error"' in r.text and 'data-test="stats-table"' not in r.text
    download = await web.get(f"/staff/stats.csv?{query}")
    assert download.status_code == 400 and words in download.text
