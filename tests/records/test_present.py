"""A record as a resident reads it: every key the upstream sends is labelled, or not shown at all."""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wechat_backend.privacy import redact_basic_info, redact_payload
from wechat_backend.records.forms import BASIC_FORM, FORMS, Field, Form
from wechat_backend.records.present import Presented, present, present_basic, unknown_keys
from wechat_backend.records.sections import RESIDENT_KINDS
from wechat_backend.seed import generate

TODAY = dt.date(2026, 11, 25)
ARCHIVES = 2000
HT_TITLES = [
    "症状",
    "体征",
    "生活方式指导",
    "辅助检查",
    "服药依从性",
    "药物不良反应",
    "此次随访分类",
    "用药情况",
    "转诊",
    "下次随访日期",
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seeded() -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    basics = []
    for obj in generate(ARCHIVES, seed=11, today=TODAY):
        if obj["type"] == "record":
            records[obj["kind"]].append(obj)
        elif obj["type"] == "archive":
            basics.append(obj["basic_info"])
    return records, basics


def shown_text(p: Presented) -> str:
    """Everything a resident could read of a presentation."""
    parts = [p.summary]
    for section in p.sections:
        parts.append(section["title"])
        for f in section["fields"]:
            parts += [f["label"], f["value"], f["unit"], f["reference"]]
    return "\n".join(parts)


def leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every value in a payload, paths as the dictionaries write them."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(obj, list) and any(isinstance(x, dict) for x in obj):
        for x in obj:
            yield from leaves(x, path + "[]")
    elif isinstance(obj, list):
        for x in obj:
            yield path, x
    elif obj is not None and obj != "":
        yield path, obj


def expected_text(field: Field, value: Any) -> str:
    if field.codes is not None:
        return field.codes[str(value)]
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(value)


def assert_complete(form: Form, raw: dict[str, Any], p: Presented) -> None:
    assert p.unknown_keys == frozenset(), (form.kind, p.unknown_keys)
    text = shown_text(p)
    by_key = {f.key: f for f in form.fields()}
    for path, value in leaves(raw):
        if path in form.withheld:  # known, never shown: its value must not be there
            assert str(value) not in text, (form.kind, path)
            continue
        assert path in by_key, (form.kind, path)
        assert expected_text(by_key[path], value) in text, (form.kind, path, value)
    for section in p.sections:
        assert section["title"].strip() and section["fields"]
        for f in section["fields"]:
            assert f["label"].strip() and f["value"].strip() and f["value"] != "—"
            assert set(f) == {"label", "value", "unit", "reference", "flag", "prominent", "text"}
    for key in by_key:  # no raw key (the ones that could not be mistaken for a word or unit)
        if "_" in key or "." in key:
            assert key not in text


# --------------------------------------------------------------------------- the dictionaries


def test_every_kind_a_resident_may_see_has_a_dictionary() -> None:
    assert set(FORMS) == RESIDENT_KINDS
    for kind, form in FORMS.items():
        assert form.kind == kind and form.title and form.sections
        keys = [f.key for f in form.fields()]
        assert len(keys) == len(set(keys)), kind
        for f in form.fields():
            assert f.label.strip() and f.key.count("[]") <= 1, (kind, f.key)
            if f.list_prefix:  # a list's fields stay together in one section
                holding = [s for s in form.sections if any(g.list_prefix == f.list_prefix for g in s.fields)]
                assert len(holding) == 1, (kind, f.key)
        for key in form.summary_keys:
            assert all(form.field(k) is not None for k in key.split("/")), (kind, key)
    assert BASIC_FORM.kind == "basic"


def test_the_dictionaries_are_pure_code() -> None:
    banned = {"tornado", "sqlalchemy", "redis", "asyncpg", "aiosqlite", "httpx"}
    files = [ROOT / "wechat_backend/records/present.py", *(ROOT / "wechat_backend/records/forms").glob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
        names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not {n.split(".")[0] for n in names} & banned, path


def test_hypertension_sections_follow_the_national_form() -> None:
    from wechat_backend.records.forms.followups import DIABETES, HYPERTENSION

    assert [s.title for s in HYPERTENSION.sections] == ["随访方式", *HT_TITLES]
    assert [s.title for s in DIABETES.sections] == ["随访方式", *HT_TITLES[:6], "低血糖反应", *HT_TITLES[6:]]


# --------------------------------------------------------------------------- what the seed writes


def test_every_seed_record_presents_completely(seeded) -> None:
    records, _ = seeded
    assert set(records) >= RESIDENT_KINDS
    for kind in sorted(RESIDENT_KINDS):
        for r in records[kind]:
            redacted = redact_payload(kind, r["payload"])
            assert unknown_keys(kind, r["payload"]) == frozenset(), kind  # what the import counts
            p = present(kind, redacted)
            assert_complete(FORMS[kind], redacted, p)
            assert p.summary and "\n" not in p.summary


def test_every_seed_basic_information_form_presents_completely(seeded) -> None:
    _, basics = seeded
    for info in basics:
        redacted = redact_basic_info(info)
        assert_complete(BASIC_FORM, redacted, present_basic(redacted))


def test_a_full_hypertension_followup_shows_every_section_in_order(seeded) -> None:
    records, _ = seeded
    full = next(r for r in records["hypertension_followup"] if r["payload"]["referral"])
    payload = {**full["payload"], "auxiliary_exam": "心电图未见异常"}
    p = present("hypertension_followup", payload, next_due_date=dt.date(2027, 1, 8))
    assert [s["title"] for s in p.sections] == ["随访方式", *HT_TITLES]
    (due,) = p.sections[-1]["fields"]
    assert due == {
        "label": "下次随访日期",
        "value": "2027-01-08",
        "unit": "",
        "reference": "",
        "flag": None,
        "prominent": True,
        "text": "2027-01-08",
    }
    cls = next(s for s in p.sections if s["title"] == "此次随访分类")["fields"][0]
    assert cls["prominent"] and cls["value"] in ("控制不满意", "不良反应")


# --------------------------------------------------------------------------- values


def field_of(p: Presented, label: str) -> dict[str, Any]:
    return next(f for s in p.sections for f in s["fields"] if f["label"] == label)


def test_an_out_of_range_blood_pressure_is_flagged_in_words() -> None:
    p = present("hypertension_followup", {"sbp": 152, "dbp": 95, "heart_rate": 72, "classification": "2"})
    sbp = field_of(p, "收缩压")
    assert sbp == {
        "label": "收缩压",
        "value": "152（偏高）",
        "unit": "mmHg",
        "reference": "90–139",
        "flag": "high",
        "prominent": False,
        "text": "152 mmHg（偏高）",
    }
    assert field_of(p, "舒张压")["flag"] == "high"
    assert field_of(p, "心率") == {
        "label": "心率",
        "value": "72",
        "unit": "次/分",
        "reference": "60–100",
        "flag": None,
        "prominent": False,
        "text": "72次/分",
    }
    assert p.summary == "血压 152/95 mmHg · 控制不满意"
    low = present("hypertension_followup", {"sbp": "85", "dbp": 58})
    assert field_of(low, "收缩压")["value"] == "85（偏低）" and field_of(low, "收缩压")["flag"] == "low"
    assert field_of(low, "舒张压")["flag"] == "low"


def test_a_blood_pressure_pair_and_one_sided_ranges() -> None:
    p = present("health_exam", {"bp_left": [150, 80], "bp_right": [128, 82], "lab": {"hdl": 0.8, "ldl": 2.1}})
    left = field_of(p, "血压（左侧）")
    assert (left["value"], left["flag"], left["reference"]) == ("150/80（偏高）", "high", "90–139/60–89")
    assert field_of(p, "血压（右侧）")["flag"] is None
    hdl = field_of(p, "高密度脂蛋白胆固醇")
    assert (hdl["value"], hdl["reference"], hdl["flag"]) == ("0.8（偏低）", "≥1.0", "low")
    assert field_of(p, "低密度脂蛋白胆固醇")["reference"] == "≤3.4"


def test_codes_map_to_their_meanings_and_multi_select_joins() -> None:
    for symptoms in (["2", "6"], "2,6", "2/6", [2, 6]):
        p = present("hypertension_followup", {"symptoms": symptoms, "method": 3, "compliance": "1"})
        assert field_of(p, "症状")["value"] == "头痛头晕、心悸胸闷", symptoms
        assert field_of(p, "随访方式")["value"] == "电话"
        assert field_of(p, "服药依从性")["value"] == "规律"
        assert p.unknown_keys == frozenset()
    basic = present_basic({"ethnicity": "01", "payment": ["2", "5"], "family_history": {"father": ["2", "3"]}})
    assert field_of(basic, "民族")["value"] == "汉族"
    assert field_of(basic, "医疗费用支付方式")["value"] == "城镇居民基本医疗保险、商业医疗保险"
    assert field_of(basic, "父亲")["value"] == "高血压、糖尿病"


def test_an_unknown_code_shows_a_dash_and_is_reported() -> None:
    p = present("hypertension_followup", {"classification": "9", "symptoms": ["2", "99"]})
    assert field_of(p, "此次随访分类") == {
        "label": "此次随访分类",
        "value": "—",
        "unit": "",
        "reference": "",
        "flag": None,
        "prominent": True,
        "text": "—",
    }
    assert field_of(p, "症状")["value"] == "头痛头晕"
    assert p.unknown_keys == {"classification=9", "symptoms=99"}
    assert "9" not in p.summary and "99" not in shown_text(p)
    assert unknown_keys("hypertension_followup", {"classification": "9"}) == frozenset()  # keys only


def test_medications_show_one_line_per_medicine() -> None:
    meds = [
        {"name": "硝苯地平缓释片", "times_per_day": 2, "mg": 20},
        {"name": "厄贝沙坦片", "times_per_day": 1, "mg": 150},
    ]
    p = present("hypertension_followup", {"medications": meds})
    (section,) = p.sections
    assert section["title"] == "用药情况"
    assert [(f["label"], f["value"]) for f in section["fields"]] == [
        ("药物1", "硝苯地平缓释片 每日2次 每次20mg"),
        ("药物2", "厄贝沙坦片 每日1次 每次150mg"),
    ]
    exam = present("health_exam", {"medications": [{"name": "盐酸二甲双胍片", "usage": "口服", "compliance": "2"}]})
    assert field_of(exam, "药物1")["value"] == "盐酸二甲双胍片 口服 服药依从性：间断"


# --------------------------------------------------------------------------- what is never shown


def test_a_planted_unknown_key_is_never_shown_and_is_reported(seeded) -> None:
    records, _ = seeded
    for kind in sorted(RESIDENT_KINDS):
        base = redact_payload(kind, records[kind][0]["payload"])
        payload = {**base, "secret_note": "秘密备注XYZ", "vendor": {"tag_internal": "内部标记QQQ"}}
        p = present(kind, payload)
        text = shown_text(p) + json.dumps(p.sections, ensure_ascii=False)
        for word in ("secret_note", "秘密备注XYZ", "vendor", "tag_internal", "内部标记QQQ"):
            assert word not in text, (kind, word)
        assert {"secret_note", "vendor"} <= p.unknown_keys
        assert unknown_keys(kind, payload) == {"secret_note", "vendor"}


def test_unknown_keys_inside_objects_and_list_items_are_reported_by_path() -> None:
    payload = {
        "lab": {"hemoglobin": 130, "psa": 9.9},
        "medications": [{"name": "阿司匹林肠溶片", "route": "鼻饲XYZ"}],
        "oral": "正常",  # a value where the form has an object
        "referral": {"reason": "复查"},  # the 健康体检表 has no 转诊 row: the whole object is unknown
    }
    assert unknown_keys("health_exam", payload) == {"lab.psa", "medications[].route", "oral", "referral"}
    p = present("health_exam", payload)
    assert p.unknown_keys == unknown_keys("health_exam", payload)
    text = shown_text(p)
    assert "9.9" not in text and "鼻饲XYZ" not in text and "正常" not in text and "复查" not in text
    assert field_of(p, "药物1")["value"] == "阿司匹林肠溶片"
    assert field_of(p, "血红蛋白")["value"] == "130"
    followup = {"referral": {"reason": "血压控制不满意", "note": "内部XYZ"}}
    assert unknown_keys("hypertension_followup", followup) == {"referral.note"}
    assert "内部XYZ" not in shown_text(present("hypertension_followup", followup))


def test_screening_results_are_known_but_never_shown() -> None:
    raw = {"hiv_antibody": "1", "syphilis": "1", "hbsag": "1", "gestational_weeks": "10+3"}
    assert unknown_keys("prenatal_first", raw) == frozenset()  # not counted as missing at import
    p = present("prenatal_first", raw)  # even if the policy had not removed them
    assert "HIV" not in shown_text(p) and "梅毒" not in shown_text(p)
    assert [f["label"] for s in p.sections for f in s["fields"]] == ["孕周", "乙型肝炎表面抗原"]
    assert p.summary == "孕周 10+3周"


def test_sensitive_codes_that_slip_through_show_nothing() -> None:
    info = {
        "past_illness": [{"code": "2", "date": "2015-06"}, {"code": "8", "date": "2009-03"}],
        "family_history": {"mother": ["9"]},
        "disability": ["7"],
    }
    p = present_basic(info)
    text = shown_text(p)
    for word in ("严重精神障碍", "结核", "精神残疾", "2009-03"):
        assert word not in text
    assert field_of(p, "疾病1")["value"] == "高血压 确诊时间：2015-06"
    assert p.unknown_keys == {"past_illness[].code=8", "family_history.mother=9", "disability=7"}
    first = present("prenatal_first", {"family_history": ["1", "3"]})
    assert field_of(first, "家族史")["value"] == "无" and "精神" not in shown_text(first)


def test_kinds_residents_never_see_present_nothing_and_are_not_counted() -> None:
    payload = {"medications": [{"name": "利培酮片"}], "symptoms": ["1"]}
    assert unknown_keys("severe_mental_followup", payload) == frozenset()
    p = present("severe_mental_followup", payload)
    assert (p.sections, p.summary) == ([], "")


def test_the_records_next_due_date_fills_the_row_only_where_the_form_has_one() -> None:
    p = present("child_check", {"weight_kg": 9.6}, next_due_date="2027-03-01")
    assert field_of(p, "下次随访日期")["value"] == "2027-03-01" and p.unknown_keys == frozenset()
    own = present("prenatal_followup", {"next_due_date": "2027-02-01"}, next_due_date="2027-03-01")
    assert field_of(own, "下次随访日期")["value"] == "2027-02-01"
    tcm = present("tcm_constitution", {"constitution": ["平和质"]}, next_due_date="2027-11-01")
    assert "2027-11-01" not in shown_text(tcm) and tcm.unknown_keys == frozenset()
    assert tcm.summary == "平和质"


def test_empty_values_and_sections_are_left_out() -> None:
    p = present("hypertension_followup", {"referral": None, "auxiliary_exam": "", "insulin": None, "sbp": 120})
    assert [s["title"] for s in p.sections] == ["体征"]
    assert p.unknown_keys == {"insulin"}  # a 糖尿病 key on a 高血压 form
