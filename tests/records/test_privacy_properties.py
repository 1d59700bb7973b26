"""Property: whatever an archive holds, a resident reads nothing the notice forbids, and every record
they may read is there.

Hypothesis builds archives and records with sensitive items planted anywhere — a sensitive
programme, ICD-10 codes (national clinical-version extensions too), in-form codes of the basic
form, free-text terms in any string field, sensitive drugs in medication lists — imports them
through the real import, binds the archive and reads every route of the records service. No
planted item may appear in any answer, and every record with nothing sensitive in it must.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_lines import COUNTY, archive, institution, record
from sqlalchemy import insert, select

from wechat_backend.binding import Caller
from wechat_backend.db.models import Archive, Binding
from wechat_backend.errors import NotOpen
from wechat_backend.records.sections import RESIDENT_KINDS
from wechat_backend.services import Services

SENSITIVE_CODES = ["F20", "F20.000x001", "F31.2", "F25.1", "A15.0", "A16.200x001", "B90.9", "B20", "B24.x01", "Z21"]
PLAIN_CODES = ["I10", "E11.9", "J06.9", "K29.7", "G40.9", "I10.x00x002"]
TERMS = ["精神分裂症", "双相情感障碍", "肺结核", "抗痨", "艾滋病", "HIV"]
DRUGS = ["异烟肼", "利福平", "奥氮平", "利培酮", "齐多夫定", "替诺福韦"]
PLAIN_DRUGS = ["硝苯地平缓释片", "盐酸二甲双胍片"]
STRING_KEYS = ["doctor_advice", "symptoms_other", "other_findings", "note", "referral.reason"]
# In-form codes of the basic form that are sensitive, with the words that would give them away.
BASIC_PLANTS = [
    ({"past_illness": [{"code": "8", "date": "2019-03"}]}, "严重精神障碍"),
    ({"past_illness": [{"code": "9", "date": "2018-05"}]}, "结核"),
    ({"disability": ["7"]}, "精神残疾"),
    ({"family_history": {"father": ["8"]}}, "严重精神障碍"),
]

_ids = itertools.count(1000)
OPAQUE_ID = re.compile(r'"[0-9A-Za-z_-]{16}"')


@st.composite
def planted_record(draw: st.DrawFn) -> dict[str, Any]:
    """A record, maybe with one sensitive thing in it (``plant`` says what, ``marker`` is its text)."""
    kind = draw(st.sampled_from([*sorted(RESIDENT_KINDS), "severe_mental_followup", "tuberculosis_followup"]))
    payload: dict[str, Any] = {"sbp": draw(st.integers(90, 190)), "dbp": draw(st.integers(50, 120))}
    codes = [draw(st.sampled_from(PLAIN_CODES))]
    plant = draw(st.sampled_from(["none", "none", "code", "term", "drug"]))
    marker = None
    if plant == "code":
        marker = draw(st.sampled_from(SENSITIVE_CODES))
        codes.insert(draw(st.integers(0, 1)), marker)
    elif plant == "term":
        marker = draw(st.sampled_from(TERMS))
        key = draw(st.sampled_from(STRING_KEYS))
        text = draw(st.sampled_from(["患者{}，注意复查", "{}", "既往{}史"])).format(marker)
        if "." in key:
            head, tail = key.split(".")
            payload[head] = {tail: text}
        else:
            payload[key] = text
    elif plant == "drug":
        marker = draw(st.sampled_from(DRUGS))
        meds = [{"name": draw(st.sampled_from(PLAIN_DRUGS)), "times_per_day": 1, "dose_mg": 10}]
        meds.insert(draw(st.integers(0, 1)), {"name": marker, "times_per_day": 1, "dose_mg": 300})
        payload["medications"] = meds
    n = next(_ids)
    day = draw(st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2026, 11, 20)))
    line = record(n, 0, kind=kind, date=day.isoformat(), next_due_date=None, diagnosis_codes=codes, payload=payload)
    return {"line": line, "plant": plant, "marker": marker, "kind": kind}


@st.composite
def planted_archive(draw: st.DrawFn) -> dict[str, Any]:
    programmes = ["hypertension"]
    sensitive_programme = draw(st.booleans()) and draw(st.booleans())  # about one in four
    if sensitive_programme:
        programmes.append(draw(st.sampled_from(["severe_mental", "tuberculosis", "hiv"])))
    basic, basic_word = {}, None
    if draw(st.booleans()):
        basic, basic_word = draw(st.sampled_from(BASIC_PLANTS))
    records = draw(st.lists(planted_record(), min_size=1, max_size=6))
    return {
        "programmes": programmes,
        "hidden": sensitive_programme,
        "basic": basic,
        "basic_word": basic_word,
        "records": records,
    }


async def read_everything(services: Services, caller: Caller, archive_id: str) -> tuple[str, list[dict[str, Any]]]:
    """Every answer of every route, as one text, and the records listed."""
    svc = services.records
    answers: list[Any] = [await svc.cover(caller, archive_id), await svc.basic(caller, archive_id)]
    listed: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await svc.records(caller, archive_id, cursor=cursor)
        listed += page["records"]
        answers.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for item in listed:
        answers.append(await svc.record(caller, item["id"]))
    answers += [await svc.trends(caller, archive_id), await svc.access_log(caller, archive_id)]
    answers.append(await services.bound.list(caller))
    # Opaque ids are random letters: one could spell "HIV" by chance. They are not content.
    text = OPAQUE_ID.sub("<id>", json.dumps(answers, ensure_ascii=False))
    return text, listed


@pytest.fixture
async def county(services: Services) -> Services:
    report = await services.ingest.import_objects([json.dumps(institution(), ensure_ascii=False)])
    assert report.exit_code == 0
    await services.counties.set(COUNTY, opening=True, phase="all")
    return services


@settings(
    max_examples=int(os.environ.get("PRIVACY_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(case=planted_archive())
async def test_no_planted_item_reaches_a_resident_and_every_plain_record_does(
    county: Services, case: dict[str, Any]
) -> None:
    services = county
    n = next(_ids)
    line = archive(n, programmes=case["programmes"], basic_info=case["basic"], phone=f"139{n % 10**8:08d}")
    lines = [line] + [{**r["line"], "archive_upstream_id": line["upstream_id"]} for r in case["records"]]
    report = await services.ingest.import_objects([json.dumps(x, ensure_ascii=False) for x in lines])
    assert report.exit_code == 0, report
    identity = await services.identities.upsert("oa", f"oPROP{n}")
    async with services.sessions.begin() as s:
        archive_pk = await s.scalar(select(Archive.id).where(Archive.upstream_id == line["upstream_id"]))
        await s.execute(insert(Binding).values(identity_id=identity.id, archive_id=archive_pk, relation="self"))
    caller = Caller(identity.id, "req", "127.0.0.1")
    (summary,) = await services.bound.list(caller)

    if case["hidden"]:
        assert summary["open"] is False
        for call in (services.records.cover, services.records.basic, services.records.trends):
            with pytest.raises(NotOpen):
                await call(caller, summary["id"])
        return

    text, listed = await read_everything(services, caller, summary["id"])
    for r in case["records"]:
        if r["marker"]:
            assert r["marker"] not in text, (r["plant"], r["marker"])
    if case["basic_word"]:
        assert case["basic_word"] not in text
    for word in ("severe_mental", "tuberculosis", '"hiv"', "精神", "结核", "艾滋"):
        assert word not in text
    plain = [r for r in case["records"] if r["plant"] == "none" and r["kind"] in RESIDENT_KINDS]
    listed_keys = sorted((x["kind"], x["date"]) for x in listed)
    for r in plain:
        assert (r["kind"], r["line"]["date"]) in listed_keys
    # Nothing else is listed but the plain records and those whose only plant is a drug (cut out).
    allowed = {
        (r["kind"], r["line"]["date"])
        for r in case["records"]
        if r["plant"] in ("none", "drug") and r["kind"] in RESIDENT_KINDS
    }
    assert set(listed_keys) <= allowed
