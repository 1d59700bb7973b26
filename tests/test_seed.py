"""The synthetic-data generator writes the ingest format exactly, deterministically and realistically."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest

from wechat_backend.codes import PROGRAMMES as ALL_PROGRAMMES
from wechat_backend.codes import RECORD_KINDS
from wechat_backend.seed import generate, write_jsonl
from wechat_backend.validators import (
    id_birth_date,
    id_gender_code,
    parse_archive_no,
    parse_id_number,
    parse_mobile,
)

TODAY = dt.date(2026, 11, 25)
ARCHIVES = 2000

REQUIRED = {
    "institution": {"upstream_id", "version", "code", "name", "county_code", "county_name"},
    "archive": {
        "upstream_id",
        "version",
        "archive_no",
        "institution_code",
        "name",
        "id_number",
        "gender",
        "birth_date",
        "status",
        "open_to_resident",
    },
    "record": {"upstream_id", "version", "archive_upstream_id", "kind", "date"},
}
KINDS = RECORD_KINDS
PROGRAMMES = set(ALL_PROGRAMMES)
COUNTIES = {"371502", "371503", "371521", "371522", "371524", "371525", "371526", "371581"}


def age(birth_date: str) -> int:
    b = dt.date.fromisoformat(birth_date)
    return TODAY.year - b.year - ((TODAY.month, TODAY.day) < (b.month, b.day))


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "seed.jsonl"
    counts = write_jsonl(path, ARCHIVES, seed=11, today=TODAY)
    raw = path.read_bytes()
    lines = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    return counts, raw, lines


@pytest.fixture(scope="module")
def lines(seeded):
    return seeded[2]


@pytest.fixture(scope="module")
def archives(lines):
    return [o for o in lines if o["type"] == "archive"]


@pytest.fixture(scope="module")
def records(lines):
    return [o for o in lines if o["type"] == "record"]


@pytest.fixture(scope="module")
def counties_by_institution(lines):
    return {o["code"]: o["county_code"] for o in lines if o["type"] == "institution"}


def test_every_line_has_the_required_fields_of_its_type(seeded, lines):
    counts, raw, _ = seeded
    assert raw.endswith(b"\n") and b"\r" not in raw
    assert Counter(o["type"] for o in lines) == counts
    assert counts["archive"] == ARCHIVES
    for obj in lines:
        missing = REQUIRED[obj["type"]] - obj.keys()
        assert not missing, (obj["upstream_id"], missing)
        assert obj["version"] == 1
    for a in (o for o in lines if o["type"] == "archive"):
        assert a["gender"] in ("1", "2")
        assert a["status"] in ("normal", "lost", "closed")
        assert isinstance(a["open_to_resident"], bool)
        assert set(a["programmes"]) <= PROGRAMMES
        assert 0 <= a["completeness"] <= 100
        assert a["basic_info"]["past_illness"] and a["basic_info"]["family_history"].keys() == {
            "father",
            "mother",
            "siblings",
            "children",
        }
    for r in (o for o in lines if o["type"] == "record"):
        assert r["kind"] in KINDS
        assert isinstance(r["payload"], dict) and isinstance(r["diagnosis_codes"], list)


def test_lines_are_compact_json_with_chinese_unescaped(seeded):
    first = seeded[1].split(b"\n", 1)[0].decode("utf-8")
    assert "卫生" in first and ": " not in first and ", " not in first


def test_id_numbers_are_valid_unique_and_agree_with_birth_date_gender_and_county(archives, counties_by_institution):
    numbers = [a["id_number"] for a in archives if a["id_number"] is not None]
    assert len(numbers) == len(set(numbers))
    for a in archives:
        if a["id_number"] is None:
            continue
        number = parse_id_number(a["id_number"], today=TODAY)
        assert number == a["id_number"]
        assert id_birth_date(number).isoformat() == a["birth_date"]
        assert id_gender_code(number) == a["gender"]
        assert number[:6] == counties_by_institution[a["institution_code"]]


def test_archive_numbers_are_17_digits_starting_with_the_institutions_county(archives, counties_by_institution):
    numbers = [a["archive_no"] for a in archives]
    assert len(numbers) == len(set(numbers))
    for a in archives:
        county = counties_by_institution[a["institution_code"]]
        assert parse_archive_no(a["archive_no"], county_code=county) == a["archive_no"]
        village = int(a["archive_no"][9:12])
        assert 1 <= village <= 99 or 101 <= village <= 199


def test_upstream_ids_are_unique_and_records_follow_their_archive(lines):
    ids = [o["upstream_id"] for o in lines]
    assert len(ids) == len(set(ids))
    current = None
    for obj in lines:
        if obj["type"] == "archive":
            current = obj["upstream_id"]
        elif obj["type"] == "record":
            assert obj["archive_upstream_id"] == current
        else:
            assert current is None, "institutions come first"


def test_all_eight_counties_have_institutions_and_residents(archives, counties_by_institution):
    assert set(counties_by_institution.values()) == COUNTIES
    assert {a["archive_no"][:6] for a in archives} == COUNTIES
    assert all(code.startswith(county) and len(code) == 12 for code, county in counties_by_institution.items())


def test_a_tiny_file_still_lists_every_county(tmp_path):
    objs = list(generate(10, seed=2, today=TODAY))
    assert {o["county_code"] for o in objs if o["type"] == "institution"} == COUNTIES
    assert sum(o["type"] == "archive" for o in objs) == 10


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    paths = [tmp_path / f"{n}.jsonl" for n in range(3)]
    write_jsonl(paths[0], 300, seed=5, today=TODAY)
    write_jsonl(paths[1], 300, seed=5, today=TODAY)
    write_jsonl(paths[2], 300, seed=6, today=TODAY)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    streamed = [json.loads(line) for line in paths[0].read_text(encoding="utf-8").splitlines()]
    assert streamed == list(generate(300, seed=5, today=TODAY))


def test_write_jsonl_reports_progress_as_increments(tmp_path):
    seen: list[int] = []
    counts = write_jsonl(tmp_path / "p.jsonl", 620, seed=1, today=TODAY, progress=seen.append)
    assert seen == [250, 250, 120] and sum(seen) == counts["archive"] == 620


def test_age_pyramid_is_realistic(archives):
    ages = [age(a["birth_date"]) for a in archives]
    under7 = sum(x <= 6 for x in ages) / len(ages)
    over65 = sum(x >= 65 for x in ages) / len(ages)
    working = sum(18 <= x <= 64 for x in ages) / len(ages)
    assert 0.05 <= under7 <= 0.10
    assert 0.13 <= over65 <= 0.20
    assert working >= 0.55


def test_key_groups_follow_age_and_sex(archives):
    elderly = [a for a in archives if age(a["birth_date"]) >= 65]
    for a in archives:
        years, programmes = age(a["birth_date"]), a["programmes"]
        assert ("elderly" in programmes) == (years >= 65)
        assert ("child" in programmes) == (years <= 6)
        if "maternal" in programmes:
            assert a["gender"] == "2" and 20 <= years <= 40
        if "hypertension" in programmes or "diabetes" in programmes:
            assert years >= 35
    ht_elderly = sum("hypertension" in a["programmes"] for a in elderly) / len(elderly)
    assert 0.2 <= ht_elderly <= 0.4
    counts = Counter(p for a in archives for p in a["programmes"])
    assert set(counts) == PROGRAMMES
    assert 0.003 <= counts["maternal"] / len(archives) <= 0.02


def test_every_sensitive_programme_appears_with_its_records(archives, records):
    members = {
        p: {a["upstream_id"] for a in archives if p in a["programmes"]}
        for p in ("severe_mental", "tuberculosis", "hiv")
    }
    assert all(members.values())
    kinds_of = {}
    for r in records:
        kinds_of.setdefault(r["archive_upstream_id"], []).append(r)
    for archive_id in members["hiv"]:
        codes = [c for r in kinds_of.get(archive_id, []) if r["kind"] == "outpatient" for c in r["diagnosis_codes"]]
        assert any(c[:3] in ("B20", "B21", "B22", "B23", "B24", "Z21") for c in codes)
    mental = [r for r in records if r["kind"] == "severe_mental_followup"]
    tb = [r for r in records if r["kind"] == "tuberculosis_followup"]
    assert mental and all(r["diagnosis_codes"][0][:3] in ("F20", "F22", "F25", "F31", "F06") for r in mental)
    assert tb and all(r["diagnosis_codes"][0][:3] in ("A15", "A16") for r in tb)


def test_sensitive_details_are_planted_in_ordinary_data(archives, records):
    infos = [a["basic_info"] for a in archives]
    assert any(i["code"] in ("8", "9") for info in infos for i in info["past_illness"])
    assert any(c in ("8", "9") for info in infos for codes in info["family_history"].values() for c in codes)
    assert any("7" in info["disability"] for info in infos)
    outpatient_codes = {c for r in records if r["kind"] == "outpatient" for c in r["diagnosis_codes"]}
    assert outpatient_codes & {"A15.000x001", "F20.901"}
    exam_text = [
        json.dumps([r["payload"]["main_problems"], r["payload"]["medications"]], ensure_ascii=False)
        for r in records
        if r["kind"] == "health_exam"
    ]
    assert any("抗痨" in t or "精神分裂症" in t for t in exam_text)
    prenatal = [r["payload"] for r in records if r["kind"] == "prenatal_first"]
    assert prenatal and all(p["hiv_antibody"] in ("1", "2") and p["syphilis"] in ("1", "2") for p in prenatal)


def test_some_newborns_have_no_id_number_yet(archives):
    without = [a for a in archives if a["id_number"] is None]
    assert without
    assert all((TODAY - dt.date.fromisoformat(a["birth_date"])).days < 91 for a in without)


def test_children_carry_a_guardian_phone_and_adults_their_own(archives):
    for a in archives:
        years = age(a["birth_date"])
        if years < 18:
            assert a["contact_name"] and parse_mobile(a["contact_phone"]) == a["contact_phone"]
        if years <= 6:
            assert a["phone"] is None
        if a["phone"] is not None:
            assert parse_mobile(a["phone"]) == a["phone"]
    adults = [a for a in archives if 18 <= age(a["birth_date"]) < 65]
    assert sum(a["phone"] is not None for a in adults) / len(adults) > 0.9


def test_no_date_is_after_today_or_before_birth(archives, records):
    births = {a["upstream_id"]: dt.date.fromisoformat(a["birth_date"]) for a in archives}
    assert max(births.values()) <= TODAY
    for r in records:
        day = dt.date.fromisoformat(r["date"])
        assert births[r["archive_upstream_id"]] <= day <= TODAY, r["upstream_id"]
        if r["next_due_date"] is not None:
            assert dt.date.fromisoformat(r["next_due_date"]) > day


def test_chronic_follow_ups_are_quarterly_or_two_weeks_when_unsatisfactory(records):
    followups = [r for r in records if r["kind"] in ("hypertension_followup", "diabetes_followup")]
    assert followups
    for r in followups:
        gap = (dt.date.fromisoformat(r["next_due_date"]) - dt.date.fromisoformat(r["date"])).days
        assert gap == 14 if r["payload"]["classification"] in ("2", "3") else 80 <= gap <= 100
    assert all(r["diagnosis_codes"] == ["I10"] for r in followups if r["kind"] == "hypertension_followup")


def test_three_to_five_records_per_archive_on_average(seeded):
    counts = seeded[0]
    assert 3 <= counts["record"] / counts["archive"] <= 5
