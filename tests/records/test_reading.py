"""A bound resident reads the archive through the JSON API: the cover, the sections, the records,
one record, the trends and who read it — only what the notice allows, each read audited, and
everything else the same 404 or the one ``not_open`` answer."""

from __future__ import annotations

from typing import Any

import pytest
from binding.conftest import CHILD, COUNTY, ELDER, MOTHER_PHONE, TEEN, archive, person
from ingest_lines import write
from sqlalchemy import func, select

from wechat_backend.db.models import AuditEvent
from wechat_backend.privacy import REASONS

from .conftest import bound

ROUTES = ("", "/basic", "/records", "/trends", "/access-log")


async def get(who: Any, path: str) -> Any:
    return await who.call("GET", path)


async def reads(services: Any, **where: Any) -> list[Any]:
    async with services.sessions() as s:
        q = select(AuditEvent).where(AuditEvent.action == "archive_read").order_by(AuditEvent.id)
        for k, v in where.items():
            q = q.where(getattr(AuditEvent, k) == v)
        return list((await s.scalars(q)).all())


async def test_the_cover_names_the_sections_with_records_and_the_next_due_item(readers: Any, resident: Any) -> None:
    me, archive_id = await bound(resident, ELDER, "刘阿姨")
    r = await get(me, f"/api/v1/archives/{archive_id}")
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    cover = r.json()
    assert cover["name"] == "刘**" and cover["relation"] == "self" and cover["relation_label"] == "本人"
    assert cover["institution"] == "莘县燕店镇卫生院" and cover["consult_phone"] == "0635-7123456"
    assert "高血压" in cover["tags"] and "老年人" in cover["tags"]
    sections = {s["key"]: s["count"] for s in cover["sections"]}
    # Three readable follow-ups (the one naming a sensitive term is not counted), one exam.
    assert sections == {"basic": 1, "exam": 1, "hypertension": 3}
    assert [s["key"] for s in cover["sections"]] == ["basic", "exam", "hypertension"]
    assert cover["next_due"] == [
        {"kind": "hypertension_followup", "title": "高血压患者随访", "date": "2027-01-12", "overdue": False}
    ]


async def test_the_record_list_is_newest_first_and_never_lists_restricted_records(readers: Any, resident: Any) -> None:
    me, archive_id = await bound(resident, ELDER)
    found = (await get(me, f"/api/v1/archives/{archive_id}/records")).json()
    assert [(r["kind"], r["date"]) for r in found["records"]] == [
        ("hypertension_followup", "2026-10-12"),
        ("hypertension_followup", "2026-07-10"),
        ("health_exam", "2026-05-20"),
        ("hypertension_followup", "2026-04-08"),
    ]
    assert found["next_cursor"] is None
    only = (await get(me, f"/api/v1/archives/{archive_id}/records?kind=exam")).json()["records"]
    assert [r["kind"] for r in only] == ["health_exam"]
    text = str(found)
    assert "抗痨" not in text and "severe_mental" not in text and "2026-08-01" not in text and "2026-09-01" not in text
    bad = await get(me, f"/api/v1/archives/{archive_id}/records?kind=severe_mental")
    assert bad.status_code == 400 and bad.json()["error"] == "bad_input"


async def test_a_record_shows_its_form_sections_and_is_audited_with_its_id(
    readers: Any, resident: Any, people: Any
) -> None:
    _, services = people
    me, archive_id = await bound(resident, ELDER)
    (first,) = [r for r in (await get(me, f"/api/v1/archives/{archive_id}/records")).json()["records"]][:1]
    r = await get(me, f"/api/v1/records/{first['id']}")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    detail = r.json()
    assert detail["title"] == "高血压患者随访" and detail["date"] == "2026-10-12"
    assert detail["next_due_date"] == "2027-01-12" and detail["doctor"] == "王医生"
    shown = [f["label"] for sec in detail["sections"] for f in sec["fields"]]
    assert any("收缩压" in label or "血压" in label for label in shown)
    (row,) = [e for e in await reads(services) if e.record_id is not None]
    assert row.archive_id is not None and row.detail == {"section": "hypertension"}
    assert row.result == "ok" and row.client_ip and row.request_id


async def test_every_read_writes_an_audit_row_with_its_section(readers: Any, resident: Any, people: Any) -> None:
    _, services = people
    me, archive_id = await bound(resident, ELDER)
    before = len(await reads(services))
    for path in ROUTES:
        assert (await get(me, f"/api/v1/archives/{archive_id}{path}")).status_code == 200, path
    rows = (await reads(services))[before:]
    assert [r.detail["section"] for r in rows] == ["cover", "basic", "records", "trends", "access_log"]
    assert len({r.actor_id for r in rows}) == 1 and {r.result for r in rows} == {"ok"}
    assert all(r.archive_id == rows[0].archive_id and r.client_ip for r in rows)


async def test_the_access_log_names_family_by_relation_only(readers: Any, resident: Any, clock: Any) -> None:
    owner, archive_id = await bound(resident, ELDER, "刘阿姨")
    clock.advance(seconds=61)  # one code a minute to the same phone
    son, _ = await bound(resident, ELDER, "儿子", relation="parent")
    await get(son, f"/api/v1/archives/{archive_id}/records")
    entries = (await get(owner, f"/api/v1/archives/{archive_id}/access-log")).json()["entries"]
    assert {e["actor"] for e in entries} <= {"本人", "子女"}
    assert {"actor": "子女", "section": "服务记录"} in [{k: e[k] for k in ("actor", "section")} for e in entries]
    assert all("儿子" not in str(e) for e in entries)


async def test_the_trends_carry_blood_pressure_with_its_band(readers: Any, resident: Any) -> None:
    me, archive_id = await bound(resident, ELDER)
    series = {s["key"]: s for s in (await get(me, f"/api/v1/archives/{archive_id}/trends")).json()["series"]}
    assert series["sbp"]["points"] == [["2026-04-08", 152], ["2026-07-10", 138], ["2026-10-12", 132]]
    assert series["sbp"]["band"] == [90, 139] and series["sbp"]["unit"] == "mmHg"
    assert [p[0] for p in series["dbp"]["points"]] == ["2026-04-08", "2026-07-10", "2026-10-12"]


# --------------------------------------------------------------------------- authorization


async def test_someone_elses_archive_a_made_up_id_and_a_foreign_record_are_the_same_404(
    readers: Any, resident: Any
) -> None:
    owner, elder_id = await bound(resident, ELDER, "刘阿姨")
    stranger, teen_id = await bound(resident, TEEN, "孙小丽")
    elder_record = (await get(owner, f"/api/v1/archives/{elder_id}/records")).json()["records"][0]["id"]
    teen_record = (await get(stranger, f"/api/v1/archives/{teen_id}/records")).json()["records"][0]["id"]
    answers = []
    for path in ROUTES:
        answers.append(await get(stranger, f"/api/v1/archives/{elder_id}{path}"))
        answers.append(await get(stranger, f"/api/v1/archives/nosuchid123{path}"))
    answers.append(await get(stranger, f"/api/v1/records/{elder_record}"))
    answers.append(await get(stranger, "/api/v1/records/nosuchid123"))
    answers.append(await get(owner, f"/api/v1/records/{teen_record}"))
    answers.append(await stranger.call("PUT", f"/api/v1/archives/{elder_id}/note", {"note": "大宝"}))
    answers.append(await stranger.call("PUT", "/api/v1/archives/nosuchid123/note", {"note": "大宝"}))
    assert {a.status_code for a in answers} == {404}
    assert len({a.content for a in answers}) == 1
    assert (await get(owner, f"/api/v1/archives/{elder_id}")).json()["note"] == ""  # untouched


async def test_a_restricted_record_id_is_the_same_404(readers: Any, resident: Any, people: Any) -> None:
    _, services = people
    me, _ = await bound(resident, ELDER)
    from wechat_backend.db.models import ServiceRecord

    async with services.sessions() as s:
        hidden = (
            await s.scalars(select(ServiceRecord.public_id).where(ServiceRecord.upstream_id.in_(["rec-5", "rec-6"])))
        ).all()
    assert len(hidden) == 2
    answers = [await get(me, f"/api/v1/records/{rid}") for rid in [*hidden, "nosuchid123"]]
    assert {a.status_code for a in answers} == {404} and len({a.content for a in answers}) == 1


async def test_without_login_every_route_is_401(readers: Any, resident: Any) -> None:
    me, archive_id = await bound(resident, ELDER)
    for path in ROUTES:
        r = await me.call("GET", f"/api/v1/archives/{archive_id}{path}", token=False)
        assert r.status_code == 401


# --------------------------------------------------------------------------- hidden after binding


async def hide(services: Any, tmp_path: Any, reason: str, n: int, version: int = 2) -> None:
    """Make archive ``n`` hidden for ``reason``, as staff or a re-import would."""
    if reason == "county_closed":
        await services.counties.set(COUNTY, opening=False)
        return
    if reason == "not_key_population":
        await services.counties.set(COUNTY, phase="key_populations")
        return
    change = {
        "status_closed": {"status": "closed"},
        "sensitive_programme": {"programmes": ["hypertension", "tuberculosis"]},
        "status_lost": {"status": "lost"},
        "not_opened": {"open_to_resident": False},
    }[reason]
    base = {k: v for k, v in person(n).items() if k != "type"}
    line = archive(n, **{**base, "version": version, **change})
    report = await services.ingest.import_file(write(tmp_path / f"hide-{reason}-{version}.jsonl", [line]))
    assert report.exit_code == 0, report


@pytest.mark.parametrize("reason", REASONS)
async def test_an_archive_hidden_after_binding_answers_every_route_the_same(
    readers: Any, resident: Any, people: Any, tmp_path: Any, reason: str
) -> None:
    _, services = people
    # The teen is in no key group: the rollout phase hides her, and the rest hide her too.
    me, archive_id = await bound(resident, TEEN, "孙小丽")
    record_id = (await get(me, f"/api/v1/archives/{archive_id}/records")).json()["records"][0]["id"]
    await hide(services, tmp_path, reason, TEEN)
    answers = [await get(me, f"/api/v1/archives/{archive_id}{path}") for path in ROUTES]
    answers.append(await get(me, f"/api/v1/records/{record_id}"))
    assert {a.status_code for a in answers} == {403}
    bodies = {a.content for a in answers}
    assert len(bodies) == 1
    body = answers[0].json()
    assert body["error"] == "not_open" and "暂未开放自助查询" in body["message"]
    assert body["consult_phone"] == "0635-7123456"
    assert reason not in answers[0].text and "结核" not in answers[0].text
    # The home page lists it, greyed, with the same words.
    (listed,) = await me.archives()
    assert listed["open"] is False and listed["message"] == body["message"]
    # Staff can tell why: the refusals are audited with the reason.
    denied = await reads(services, result="denied")
    assert denied and all(r.archive_id is not None for r in denied)


async def test_the_not_open_body_is_the_same_for_every_reason(
    readers: Any, resident: Any, people: Any, tmp_path: Any
) -> None:
    """Across reasons, too: the answer never hints at which one."""
    _, services = people
    seen = set()
    me, archive_id = await bound(resident, TEEN, "孙小丽")
    base = {k: v for k, v in person(TEEN).items() if k != "type"}
    for version, reason in ((2, "not_opened"), (4, "sensitive_programme"), (6, "status_lost")):
        await hide(services, tmp_path, reason, TEEN, version)
        seen.add((await get(me, f"/api/v1/archives/{archive_id}")).content)
        # Open it again for the next reason.
        again = archive(TEEN, **{**base, "version": version + 1})
        report = await services.ingest.import_file(write(tmp_path / f"again-{version}.jsonl", [again]))
        assert report.exit_code == 0
        assert (await get(me, f"/api/v1/archives/{archive_id}")).status_code == 200
    assert len(seen) == 1


async def test_a_child_bound_by_a_parent_reads_with_the_note(readers: Any, resident: Any) -> None:
    mother, child_id = await bound(resident, CHILD, "妈妈", relation="child", phone=MOTHER_PHONE)
    r = await mother.call("PUT", f"/api/v1/archives/{child_id}/note", {"note": "大宝"})
    assert r.status_code == 200, r.text
    cover = (await get(mother, f"/api/v1/archives/{child_id}")).json()
    assert cover["note"] == "大宝" and cover["name"] == "王**" and cover["relation_label"] == "子女"
    too_long = await mother.call("PUT", f"/api/v1/archives/{child_id}/note", {"note": "<script>" * 3})
    assert too_long.status_code == 400 and too_long.json()["field"] == "note"


async def test_reads_are_counted_once_per_request(readers: Any, resident: Any, people: Any) -> None:
    _, services = people
    me, archive_id = await bound(resident, ELDER)
    async with services.sessions() as s:
        before = await s.scalar(select(func.count()).select_from(AuditEvent))
    await get(me, f"/api/v1/archives/{archive_id}")
    async with services.sessions() as s:
        after = await s.scalar(select(func.count()).select_from(AuditEvent))
    assert after == before + 1


def test_staff_reads_are_named_by_institution_and_restricted_ones_plainly() -> None:
    """The access log's wording for staff (no staff pages yet; their reads will carry these fields)."""
    import datetime as dt
    from types import SimpleNamespace

    from wechat_backend.records.views import access_entry as _entry

    at = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)

    def staff(detail: dict[str, Any]) -> dict[str, Any]:
        return _entry(SimpleNamespace(at=at, actor_type="staff", actor_id="7", detail=detail), {}, "371522001")

    assert staff({"section": "hypertension", "institution_code": "371522001"})["actor"] == "建档机构工作人员"
    assert staff({"section": "basic", "institution_code": "371521001"})["actor"] == "其他医疗卫生机构工作人员"
    plain = staff({"section": "severe_mental", "institution_code": "371522001"})
    assert plain == {"at": at.isoformat(), "actor": "工作人员", "section": "工作人员查阅档案"}
    family = _entry(
        SimpleNamespace(at=at, actor_type="identity", actor_id="5", detail={"section": "cover"}), {5: "child"}, ""
    )
    assert family["actor"] == "父母" and family["section"] == "档案首页"


async def test_a_read_whose_audit_row_cannot_be_written_serves_nothing(
    readers: Any, resident: Any, people: Any
) -> None:
    _, services = people
    me, archive_id = await bound(resident, ELDER)
    from sqlalchemy import text

    async with services.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_gone"))
    try:
        for path in ("", "/records", "/trends"):
            r = await get(me, f"/api/v1/archives/{archive_id}{path}")
            assert r.status_code == 500 and r.json()["error"] == "internal"
            assert "刘" not in r.text and "2026-10-12" not in r.text and "132" not in r.text
    finally:
        async with services.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE audit_log_gone RENAME TO audit_log"))
    assert (await get(me, f"/api/v1/archives/{archive_id}")).status_code == 200


async def test_a_long_record_list_pages_with_an_opaque_cursor(
    readers: Any, resident: Any, people: Any, tmp_path: Any
) -> None:
    """Twenty a page, newest first, every record once; a forged cursor is a 400."""
    from ingest_lines import record

    _, services = people
    many = [
        record(100 + i, ELDER, date=f"2025-{1 + i // 28:02d}-{1 + i % 28:02d}", payload={"sbp": 120}) for i in range(45)
    ]
    report = await services.ingest.import_file(write(tmp_path / "many.jsonl", many))
    assert report.exit_code == 0
    me, archive_id = await bound(resident, ELDER)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = f"?kind=hypertension&cursor={cursor}" if cursor else "?kind=hypertension"
        page = (await get(me, f"/api/v1/archives/{archive_id}/records{query}")).json()
        pages += 1
        assert len(page["records"]) <= 20
        seen += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 48  # 45 here and the 3 readable follow-ups of the data set
    assert len({r["id"] for r in seen}) == 48
    assert [r["date"] for r in seen] == sorted((r["date"] for r in seen), reverse=True)
    bad = await get(me, f"/api/v1/archives/{archive_id}/records?cursor=%%%")
    assert bad.status_code == 400 and bad.json()["field"] == "cursor"


def test_the_next_due_items_leave_out_what_is_long_past() -> None:
    import datetime as dt

    from wechat_backend.records.views import Record, next_due

    today = dt.date(2026, 11, 25)

    def rec(kind: str, day: str, due: str | None) -> Record:
        return Record(0, kind + day, kind, dt.date.fromisoformat(day), due and dt.date.fromisoformat(due), "", "", {})

    items = next_due(
        [
            rec("hypertension_followup", "2026-10-12", "2027-01-12"),
            rec("child_check", "2026-06-01", "2026-09-30"),  # overdue by 8 weeks: still a task
            rec("newborn_visit", "2022-10-01", "2022-10-28"),  # four years back: history
            rec("hypertension_followup", "2026-07-10", "2026-10-10"),  # an older one of a kind already seen
        ],
        today,
    )
    assert [(i["kind"], i["date"], i["overdue"]) for i in items] == [
        ("child_check", "2026-09-30", True),
        ("hypertension_followup", "2027-01-12", False),
    ]
