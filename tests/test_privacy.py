from __future__ import annotations

import ast
import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from wechat_backend import privacy
from wechat_backend.config import PrivacySettings
from wechat_backend.privacy import (
    HIV,
    NORMAL,
    PSY,
    REASONS,
    RESTRICTED,
    TB,
    UNPARSEABLE,
    Decision,
    Label,
    VisibilityInput,
    age_on,
    archive_sensitivity,
    code_sensitivity,
    codes_sensitivity,
    label_basic_info,
    label_record,
    mask_address,
    mask_id_number,
    mask_name,
    mask_phone,
    normalise_icd10,
    redact_basic_info,
    redact_payload,
    text_sensitivity,
    visibility,
)

DEFAULTS = PrivacySettings()
TODAY = dt.date(2026, 11, 25)
EMPTY: frozenset[str] = frozenset()


def r(*tags: str) -> Label:
    return Label("R", frozenset(tags))


# --------------------------------------------------------------------------- the module itself


def test_policy_module_imports_nothing_that_does_io() -> None:
    package = sorted(Path(privacy.__file__).parent.glob("*.py"))
    own = {p.stem for p in package}  # the package's modules import one another
    for path in package:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
        imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        allowed = {"__future__", "functools", "json", "re", "unicodedata", "collections.abc", "dataclasses"}
        assert imported <= allowed | {"datetime", "typing", "config", "codes"} | own, path.name


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("label", "text"),
    [
        (NORMAL, '{"c":"N"}'),
        (RESTRICTED, '{"c":"R"}'),
        (r(TB), '{"c":"R","s":["TB"]}'),
        (r(TB, PSY, HIV), '{"c":"R","s":["HIV","PSY","TB"]}'),
    ],
)
def test_labels_serialise_compactly_and_round_trip(label: Label, text: str) -> None:
    assert json.dumps(label.to_json(), separators=(",", ":")) == text
    assert Label.from_json(text) == label
    assert Label.from_json(text.encode()) == label


def test_from_json_accepts_a_decoded_object() -> None:
    assert Label.from_json({"c": "R", "s": ["HIV"]}) == r(HIV)
    assert Label.from_json({"c": "N", "s": []}) == NORMAL


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        "null",
        '{"c":"X"}',
        '{"s":["TB"]}',
        '{"c":"N","s":["TB"]}',
        '{"c":"R","s":"TB"}',
        '{"c":"R","s":["ETH"]}',
        '{"c":"R","s":[1]}',
        b"\xff",
    ],
)
def test_a_malformed_stored_label_fails_closed(raw: str | bytes) -> None:
    assert Label.from_json(raw) == RESTRICTED


@pytest.mark.parametrize(("confidentiality", "tags"), [("V", ()), ("N", (TB,)), ("R", ("ETH",)), ("n", ())])
def test_impossible_labels_cannot_be_built(confidentiality: str, tags: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        Label(confidentiality, frozenset(tags))


@pytest.mark.parametrize(
    ("tags", "label"),
    [((), NORMAL), ((UNPARSEABLE,), RESTRICTED), ((PSY, UNPARSEABLE), r(PSY)), ((TB, HIV), r(TB, HIV))],
)
def test_label_of_tags_keeps_known_tags_and_restricts_on_anything(tags: tuple[str, ...], label: Label) -> None:
    assert Label.of(tags) == label


def test_join_is_the_stricter_label() -> None:
    assert NORMAL.join(NORMAL) == NORMAL
    assert NORMAL.join(RESTRICTED) == RESTRICTED
    assert r(TB).join(r(HIV)) == r(TB, HIV)
    assert NORMAL.is_normal and not RESTRICTED.is_normal


# --------------------------------------------------------------------------- ICD-10


@pytest.mark.parametrize(
    ("code", "normal"),
    [
        ("A15.000x001", "A15.000"),
        ("a15.000X001", "A15.000"),
        ("A15.0x001", "A15.0"),
        ("A15x001", "A15"),
        ("f20.901", "F20.901"),
        (" F20.0 ", "F20.0"),
        ("F 20 .0", "F20.0"),
        ("Ｆ２０．０", "F20.0"),
        ("F200", "F20.0"),
        ("A15", "A15"),
        ("A15.", "A15"),
        ("I10.x00x002", "I10"),
        ("I10.x00", "I10"),
        ("A17.0†", "A17.0"),
        ("G01*", "G01"),
        ("", None),
        ("   ", None),
        ("abc", None),
        ("F2", None),
        ("20.0", None),
        ("FF20", None),
        ("F20.9Y", None),
        ("F20.9X", None),
        ("I10.x1", None),
        ("A15.000x0011", None),
        ("S72.001A", None),
        ("A17.0+G01*", None),
        ("精神分裂症", None),
        (None, None),
        (20, None),
    ],
)
def test_normalise_icd10(code: object, normal: str | None) -> None:
    assert normalise_icd10(code) == normal


def _default_entries() -> list[tuple[str, str]]:
    return (
        [(c, PSY) for c in DEFAULTS.psy_codes]
        + [(c, TB) for c in DEFAULTS.tb_codes]
        + [(c, HIV) for c in DEFAULTS.hiv_codes]
    )


@pytest.mark.parametrize(("code", "tag"), _default_entries())
def test_every_default_code_is_sensitive_with_its_subcodes_and_extensions(code: str, tag: str) -> None:
    expected = frozenset({tag})
    assert code_sensitivity(code) == expected
    assert code_sensitivity(code.lower()) == expected
    subcode = code + ("1" if "." in code else ".9")
    assert code_sensitivity(subcode) == expected
    assert code_sensitivity(subcode + "00x001") == expected


@pytest.mark.parametrize(
    ("code", "tags"),
    [
        ("F20.0", {PSY}),
        ("F22", {PSY}),
        ("F25.1", {PSY}),
        ("F31.2", {PSY}),
        ("F06.2", {PSY}),
        ("F06", {PSY}),
        ("A15.000x001", {TB}),
        ("A16.2", {TB}),
        ("A19.9", {TB}),
        ("B90.9", {TB}),
        ("P37.0", {TB}),
        ("P37.01", {TB}),
        ("O98.0", {TB}),
        ("B20.0", {HIV}),
        ("B24", {HIV}),
        ("Z21", {HIV}),
        ("O98.7", {HIV}),
        ("R75", {HIV}),
        ("F02.4", {HIV}),
        ("F02.3", set()),
        ("f20.901", {PSY}),
        (" a15.0 ", {TB}),
        # near misses
        ("F21", set()),
        ("F23", set()),
        ("F30", set()),
        ("F32.9", set()),
        ("F07", set()),
        ("F07.0", set()),
        ("F02", set()),
        ("F02.3", set()),
        ("A14", set()),
        ("A20", set()),
        ("B19", set()),
        ("B18.1", set()),
        ("B25", set()),
        ("Z20", set()),
        ("Z20.6", set()),
        ("Z22", set()),
        ("R76", set()),
        ("G40", set()),
        ("G40.9", set()),
        ("P37", set()),
        ("P37.1", set()),
        ("O98", set()),
        ("O98.1", set()),
        ("O98.8", set()),
        ("I10", set()),
        ("E11.9", set()),
        # dagger/asterisk pairs are read as two codes
        ("A17.0+G01*", {TB}),
        ("A17.0†G01*", {TB}),
        ("G40.9+F06.2", {PSY}),
        ("E11.4+G63.2*", set()),
        # no code at all
        (None, set()),
        ("", set()),
        ("  ", set()),
        # unreadable: fail closed
        ("garbage", {UNPARSEABLE}),
        ("F20/F06", {UNPARSEABLE}),
        ("+", {UNPARSEABLE}),
        ("A15.0+xyz", {TB, UNPARSEABLE}),
        (20, {UNPARSEABLE}),
    ],
)
def test_code_sensitivity(code: object, tags: set[str]) -> None:
    assert code_sensitivity(code) == frozenset(tags)


@pytest.mark.parametrize(
    ("codes", "tags"),
    [
        (["F70"], set()),
        (["F70.1"], set()),
        (["F70", "F20"], {PSY}),
        (["F79.1", "F23"], {PSY}),
        (["F71", "F31.2"], {PSY}),
        (["F72", "F29"], {PSY}),
        (["F70", "F32"], set()),
        (["F70", "F30"], set()),
        (["F23"], set()),
        (["G40"], set()),
        (["G40.9", "F06.2"], {PSY}),
        (["A15.0", "B20"], {TB, HIV}),
        (["I10", "??"], {UNPARSEABLE}),
        (["I10", "E11.9"], set()),
        ("F20", {PSY}),
        ([None, ""], set()),
        ([], set()),
        (None, set()),
    ],
)
def test_codes_sensitivity_over_a_list(codes: list[object] | str | None, tags: set[str]) -> None:
    assert codes_sensitivity(codes) == frozenset(tags)


def test_codes_come_from_the_policy() -> None:
    policy = PrivacySettings(psy_codes=("f32",), tb_codes=(), hiv_codes=())
    assert code_sensitivity("F32.1", policy) == {PSY}
    assert code_sensitivity("F20", policy) == EMPTY


def test_an_unreadable_configured_code_is_an_error_not_a_silent_gap() -> None:
    with pytest.raises(ValueError, match="ICD-10"):
        code_sensitivity("F20", PrivacySettings(psy_codes=("F2?",)))
    with pytest.raises(ValueError, match="F2"):
        privacy.check_policy(PrivacySettings(tb_codes=("A15", "F2?")))
    privacy.check_policy(DEFAULTS)


# --------------------------------------------------------------------------- free text


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("精神分裂症，规律服药", {PSY}),
        ("分裂情感性障碍", {PSY}),
        ("偏执性精神病", {PSY}),
        ("妄想性障碍", {PSY}),
        ("双相情感障碍", {PSY}),
        ("躁狂发作", {PSY}),
        ("严重精神障碍患者", {PSY}),
        ("重性精神疾病", {PSY}),
        ("精神病院转诊", {PSY}),
        ("继发性肺结核", {TB}),
        ("抗痨治疗第2月", {TB}),
        ("艾滋病", {HIV}),
        ("人类免疫缺陷病毒感染", {HIV}),
        ("HIV抗体阳性", {HIV}),
        ("hiv", {HIV}),
        ("Hiv-1", {HIV}),
        ("ＨＩＶ", {HIV}),
        ("结核、艾滋筛查", {TB, HIV}),
        ("archive", set()),
        ("HIVE", set()),
        ("高血压 控制满意", set()),
        ("癫痫", set()),
        ("异烟肼 0.3g qd", set()),
        ("", set()),
        (None, set()),
        (3, set()),
    ],
)
def test_text_sensitivity(text: object, tags: set[str]) -> None:
    assert text_sensitivity(text) == frozenset(tags)


def test_latin_terms_are_case_insensitive_but_whole_words() -> None:
    policy = PrivacySettings(tb_terms=("TB",))
    assert text_sensitivity("疑似tb感染", policy) == {TB}
    assert text_sensitivity("httpbin", policy) == EMPTY


# --------------------------------------------------------------------------- records


@pytest.mark.parametrize(
    ("kind", "codes", "payload", "label"),
    [
        ("hypertension_followup", ["I10"], {"symptoms": ["头痛头晕"], "sbp": 150}, NORMAL),
        ("diabetes_followup", ["E11.9"], {}, NORMAL),
        ("severe_mental_followup", [], {}, r(PSY)),
        ("tuberculosis_followup", None, None, r(TB)),
        ("outpatient", ["A15.000x001"], {}, r(TB)),
        ("outpatient", ["f20.901"], {}, r(PSY)),
        ("outpatient", ["B20"], {}, r(HIV)),
        ("outpatient", ["F70", "F20"], {}, r(PSY)),
        ("outpatient", ["F70"], {}, NORMAL),
        ("outpatient", ["G40.9"], {"complaint": "癫痫复诊"}, NORMAL),
        ("outpatient", ["???"], {}, RESTRICTED),
        ("outpatient", ["I10", "???", "B20"], {}, r(HIV)),
        ("outpatient", [], {"note": "既往HIV感染"}, r(HIV)),
        ("health_exam", [], {"hospital": [{"reason": "肺结核住院", "days": 30}]}, r(TB)),
        ("health_exam", [], {"problems": {"other": ["双相情感障碍"]}}, r(PSY)),
        ("health_exam", [], {"medications": [{"name": "异烟肼", "dose": "0.3g"}]}, NORMAL),
        ("elderly_check", [], {"family_history": ["3"]}, NORMAL),
        ("mystery_kind", [], {}, RESTRICTED),
        ("", [], {}, RESTRICTED),
        ("outpatient", [], ["not", "an", "object"], RESTRICTED),
    ],
)
def test_label_record(kind: str, codes: list[str] | None, payload: object, label: Label) -> None:
    assert label_record(kind, codes, payload) == label  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", sorted(privacy.RECORD_KINDS))
def test_every_known_kind_with_nothing_sensitive_is_normal_except_the_excluded_forms(kind: str) -> None:
    expected = {"severe_mental_followup": r(PSY), "tuberculosis_followup": r(TB)}.get(kind, NORMAL)
    assert label_record(kind, [], {"date": "2026-01-01"}) == expected


@pytest.mark.parametrize(
    ("payload", "label"),
    [
        ({"hiv_antibody": "2"}, r(HIV)),
        ({"hiv_antibody": 2}, r(HIV)),
        ({"hiv_antibody": "阳性"}, r(HIV)),
        ({"hiv_antibody": {"code": "2"}}, r(HIV)),
        ({"HIV抗体检测": "2"}, r(HIV)),
        ({"lab": {"hiv_antibody": "2", "syphilis": "1"}}, r(HIV)),
        ({"hiv_antibody": "1", "syphilis": "1"}, NORMAL),
        ({"hiv_antibody": "阴性"}, NORMAL),
        ({"hiv_antibody": None, "syphilis": ""}, NORMAL),
        ({"syphilis": "2"}, RESTRICTED),
        ({"梅毒血清学试验": "2"}, RESTRICTED),
        ({"hiv_antibody": "3"}, RESTRICTED),
        ({"syphilis": "待查"}, RESTRICTED),
        ({"hiv_antibody": True}, RESTRICTED),
        ({"family_history": ["3"]}, r(PSY)),
        ({"family_history": "3"}, r(PSY)),
        ({"family_history": "2,3"}, r(PSY)),
        ({"family_history": [{"code": "3"}]}, r(PSY)),
        ({"家族史": ["3"]}, r(PSY)),
        ({"family_history": ["1"]}, NORMAL),
        ({"family_history": ["2", "4"]}, NORMAL),
    ],
)
def test_first_prenatal_visit_screening_and_family_history(payload: dict, label: Label) -> None:
    assert label_record("prenatal_first", [], payload) == label


def test_labels_follow_the_policy_terms() -> None:
    policy = dataclasses.replace(DEFAULTS, tb_terms=())
    assert label_record("outpatient", [], {"note": "肺结核"}, policy) == NORMAL


# --------------------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        (
            "health_exam",
            {"medications": [{"name": "异烟肼片", "dose": "0.3g"}, {"name": "硝苯地平", "dose": "10mg"}]},
            {"medications": [{"name": "硝苯地平", "dose": "10mg"}]},
        ),
        (
            "hypertension_followup",
            {"用药情况": [{"药物名称": "奥氮平", "每次": "5mg"}, {"药物名称": "氨氯地平"}]},
            {"用药情况": [{"药物名称": "氨氯地平"}]},
        ),
        ("outpatient", {"drugs": ["利福平胶囊", "二甲双胍"]}, {"drugs": ["二甲双胍"]}),
        ("outpatient", {"main_drug": {"name": "碳酸锂"}, "bp": "120/80"}, {"bp": "120/80"}),
        ("outpatient", {"drugs": ["拉米夫定"]}, {"drugs": []}),
        ("health_exam", {"note": "既往肺结核", "bp": "120/80"}, {"bp": "120/80"}),
        ("health_exam", {"note": "主要用药：异烟肼", "bp": "120/80"}, {"bp": "120/80"}),
        ("health_exam", {"problems": ["高血压", "HIV感染"]}, {"problems": ["高血压"]}),
        (
            "prenatal_first",
            {"hiv_antibody": "1", "syphilis": "1", "hb": 120, "lab": {"HIV抗体检测": "1", "梅毒血清学试验": "2"}},
            {"hb": 120, "lab": {}},
        ),
        ("prenatal_first", {"family_history": ["3"], "weeks": 12}, {"weeks": 12}),
        ("prenatal_first", {"family_history": ["1"]}, {"family_history": ["1"]}),
        ("elderly_check", {"family_history": ["3"]}, {"family_history": ["3"]}),
        ("outpatient", {"count": 3, "flag": True, "none": None}, {"count": 3, "flag": True, "none": None}),
        ("outpatient", None, {}),
    ],
)
def test_redact_payload(kind: str, payload: dict | None, expected: dict) -> None:
    assert redact_payload(kind, payload) == expected


def test_redaction_never_mutates_its_input() -> None:
    payload = {"medications": [{"name": "异烟肼"}], "hiv_antibody": "1", "nested": {"note": "结核"}}
    before = copy.deepcopy(payload)
    redacted = redact_payload("prenatal_first", payload)
    assert payload == before
    assert redacted == {"medications": [], "nested": {}}


def test_redaction_with_no_drug_list_keeps_medications() -> None:
    policy = dataclasses.replace(DEFAULTS, sensitive_drugs=())
    assert redact_payload("outpatient", {"drugs": [{"name": "异烟肼"}]}, policy) == {"drugs": [{"name": "异烟肼"}]}


@pytest.mark.parametrize(
    ("programmes", "tags"),
    [
        ([], set()),
        (["hypertension", "diabetes", "elderly", "maternal", "child"], set()),
        (["severe_mental"], {PSY}),
        (["tuberculosis", "elderly"], {TB}),
        (["hiv"], {HIV}),
        (["severe_mental", "tuberculosis", "hiv"], {PSY, TB, HIV}),
    ],
)
def test_archive_sensitivity(programmes: list[str], tags: set[str]) -> None:
    assert archive_sensitivity(programmes) == frozenset(tags)


# --------------------------------------------------------------------------- 个人基本信息表


@pytest.mark.parametrize("code", [str(c) for c in range(1, 14)])
def test_every_past_illness_code(code: str) -> None:
    expected = {"8": {"past_illness[0]": r(PSY)}, "9": {"past_illness[0]": r(TB)}}.get(code, {})
    assert label_basic_info({"past_illness": [code]}) == expected


@pytest.mark.parametrize("code", [str(c) for c in range(1, 13)])
def test_every_family_history_code(code: str) -> None:
    expected = {"8": {"family_history.father[0]": r(PSY)}, "9": {"family_history.father[0]": r(TB)}}.get(code, {})
    assert label_basic_info({"family_history": {"father": [code]}}) == expected


@pytest.mark.parametrize("code", [str(c) for c in range(1, 9)])
def test_every_disability_code(code: str) -> None:
    expected = {"7": {"disability[0]": r(PSY)}}.get(code, {})
    assert label_basic_info({"disability": [code]}) == expected


@pytest.mark.parametrize(
    ("basic_info", "labels"),
    [
        (
            {"past_illness": ["2", "8", {"code": "9", "date": "2001-03"}]},
            {"past_illness[1]": r(PSY), "past_illness[2]": r(TB)},
        ),
        (
            {"family_history": {"father": ["8"], "mother": ["2", "9"], "siblings": "8", "children": ["1"]}},
            {"family_history.father[0]": r(PSY), "family_history.mother[1]": r(TB), "family_history.siblings": r(PSY)},
        ),
        ({"family_history": ["9"]}, {"family_history[0]": r(TB)}),
        ({"disability": "7"}, {"disability": r(PSY)}),
        ({"past_illness": [8, "08", {"code": 9}]}, {f"past_illness[{i}]": r(t) for i, t in enumerate((PSY, PSY, TB))}),
        ({"past_illness": ["8,9"]}, {"past_illness[0]": r(PSY, TB)}),
        (
            {"既往史": ["8"], "残疾情况": ["7"], "家族史": {"父亲": ["9"]}},
            {"既往史[0]": r(PSY), "残疾情况[0]": r(PSY), "家族史.父亲[0]": r(TB)},
        ),
        ({"past_illness": [{"code": "13", "name": "艾滋病"}]}, {"past_illness[0]": r(HIV)}),
        # unknown codes and free text in a coded list fail closed
        ({"past_illness": ["14"]}, {"past_illness[0]": RESTRICTED}),
        ({"past_illness": ["0"]}, {"past_illness[0]": RESTRICTED}),
        ({"past_illness": ["abc"]}, {"past_illness[0]": RESTRICTED}),
        ({"past_illness": [{"date": "2001-03"}]}, {"past_illness[0]": RESTRICTED}),
        ({"past_illness": [True]}, {"past_illness[0]": RESTRICTED}),
        ({"family_history": {"father": ["13"]}}, {"family_history.father[0]": RESTRICTED}),
        ({"disability": ["9"]}, {"disability[0]": RESTRICTED}),
        # other fields: free text
        ({"work_unit": "市结核病防治所", "blood_type": "1"}, {"work_unit": r(TB)}),
        ({"genetic_disease": {"name": "精神分裂症家族聚集"}}, {"genetic_disease.name": r(PSY)}),
        ({"notes": ["无", "HIV"]}, {"notes[1]": r(HIV)}),
        ({"past_illness": ["1"], "disability": ["1"], "family_history": {"father": ["1"]}}, {}),
        ({"past_illness": None, "past_illness_extra": None}, {}),
        ({}, {}),
        (None, {}),
    ],
)
def test_label_basic_info(basic_info: dict | None, labels: dict[str, Label]) -> None:
    assert label_basic_info(basic_info) == labels


def test_redacted_basic_info_leaves_no_trace_of_a_sensitive_entry() -> None:
    basic_info = {
        "blood_type": "1",
        "past_illness": [{"code": "2", "date": "2010-05"}, {"code": "8", "date": "2012-01"}],
        "family_history": {"father": ["2", "9"], "mother": "8"},
        "disability": ["7"],
        "work_unit": "市结核病防治所",
    }
    before = copy.deepcopy(basic_info)
    assert redact_basic_info(basic_info) == {
        "blood_type": "1",
        "past_illness": [{"code": "2", "date": "2010-05"}],
        "family_history": {"father": ["2"]},
        "disability": [],
    }
    assert basic_info == before


def test_redact_basic_info_of_nothing() -> None:
    assert redact_basic_info(None) == {}
    assert redact_basic_info({"past_illness": ["1"]}) == {"past_illness": ["1"]}


# --------------------------------------------------------------------------- visibility


@pytest.mark.parametrize(
    ("birth", "today", "age"),
    [
        (dt.date(1961, 11, 25), TODAY, 65),
        (dt.date(1961, 11, 26), TODAY, 64),
        (dt.date(2019, 11, 25), TODAY, 7),
        (dt.date(2019, 11, 26), TODAY, 6),
        (TODAY, TODAY, 0),
        (dt.date(2000, 2, 29), dt.date(2001, 2, 28), 0),
        (dt.date(2000, 2, 29), dt.date(2001, 3, 1), 1),
        (dt.date(2000, 2, 29), dt.date(2004, 2, 28), 3),
        (dt.date(2000, 2, 29), dt.date(2004, 2, 29), 4),
        (dt.date(1960, 2, 29), dt.date(2025, 2, 28), 64),
        (dt.date(1960, 2, 29), dt.date(2025, 3, 1), 65),
        (dt.date(2000, 12, 31), dt.date(2001, 1, 1), 0),
    ],
)
def test_age_on(birth: dt.date, today: dt.date, age: int) -> None:
    assert age_on(birth, today) == age


BASE = VisibilityInput(
    county_open=True,
    phase="key_populations",
    open_to_resident=True,
    status="normal",
    birth_date=dt.date(1970, 6, 1),
    programmes=frozenset({"hypertension"}),
    today=TODAY,
)


def case(**changes: object) -> VisibilityInput:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("v", "reason"),
    [
        (BASE, "ok"),
        (case(county_open=False), "county_closed"),
        (case(open_to_resident=False), "not_opened"),
        (case(status="lost"), "status_lost"),
        (case(status="closed"), "status_closed"),
        (case(status="deleted"), "status_closed"),
        (case(programmes=frozenset()), "not_key_population"),
        (case(programmes=frozenset({"hypertension", "severe_mental"})), "sensitive_programme"),
        (case(programmes=frozenset({"diabetes", "tuberculosis"})), "sensitive_programme"),
        (case(programmes=frozenset({"hiv"}), phase="all"), "sensitive_programme"),
        # which reason wins
        (case(county_open=False, programmes=frozenset({"hiv"})), "county_closed"),
        (case(county_open=False, status="closed", open_to_resident=False), "county_closed"),
        (case(status="closed", programmes=frozenset({"severe_mental"})), "status_closed"),
        (case(status="lost", programmes=frozenset({"severe_mental"})), "sensitive_programme"),
        (case(open_to_resident=False, programmes=frozenset({"tuberculosis"})), "sensitive_programme"),
        (case(programmes=frozenset({"tuberculosis"})), "sensitive_programme"),
        (case(status="lost", open_to_resident=False, programmes=frozenset()), "status_lost"),
        (case(open_to_resident=False, programmes=frozenset()), "not_opened"),
        # rollout phase
        (case(phase="all", programmes=frozenset()), "ok"),
        (case(phase="everyone", programmes=frozenset()), "not_key_population"),
    ],
)
def test_visibility_reasons(v: VisibilityInput, reason: str) -> None:
    assert visibility(v) == Decision(reason == "ok", reason)
    assert reason == "ok" or reason in REASONS


def test_reasons_are_listed_in_check_order() -> None:
    assert REASONS == (
        "county_closed",
        "status_closed",
        "sensitive_programme",
        "status_lost",
        "not_opened",
        "not_key_population",
    )


def _born(years_ago: int, days: int = 0) -> dt.date:
    return TODAY.replace(year=TODAY.year - years_ago) + dt.timedelta(days=days)


@pytest.mark.parametrize(
    ("changes", "visible"),
    [
        ({"birth_date": _born(65)}, True),  # 65th birthday today
        ({"birth_date": _born(65, days=1)}, False),  # 65th birthday tomorrow
        ({"birth_date": _born(80)}, True),
        ({"birth_date": _born(7)}, False),  # 7th birthday today
        ({"birth_date": _born(7, days=1)}, True),  # still 6
        ({"birth_date": TODAY}, True),  # newborn
        ({"birth_date": TODAY + dt.timedelta(days=1)}, False),  # impossible birth date: not a child
        ({"birth_date": dt.date(1960, 2, 29), "today": dt.date(2025, 2, 28)}, False),
        ({"birth_date": dt.date(1960, 2, 29), "today": dt.date(2025, 3, 1)}, True),
        ({"birth_date": dt.date(2020, 2, 29), "today": dt.date(2027, 2, 28)}, True),
        ({"birth_date": dt.date(2020, 2, 29), "today": dt.date(2027, 3, 1)}, False),
        ({"programmes": frozenset({"hypertension"})}, True),
        ({"programmes": frozenset({"diabetes"})}, True),
        ({"programmes": frozenset({"maternal"})}, True),
        ({"programmes": frozenset({"maternal"}), "pregnant_or_postpartum": False}, False),
        ({"pregnant_or_postpartum": True}, True),
        ({"programmes": frozenset({"elderly"})}, False),  # age decides, not the programme
        ({"programmes": frozenset({"child"}), "birth_date": _born(8)}, False),
    ],
)
def test_key_populations(changes: dict[str, object], visible: bool) -> None:
    v = case(**{"programmes": frozenset(), **changes})
    assert visibility(v) == (Decision(True, "ok") if visible else Decision(False, "not_key_population"))


def test_pregnancy_defaults_to_the_maternal_programme() -> None:
    maternal = case(programmes={"maternal"})
    assert maternal.is_pregnant_or_postpartum
    assert maternal.programmes == frozenset({"maternal"})
    assert not case(programmes=frozenset()).is_pregnant_or_postpartum
    assert not case(programmes={"maternal"}, pregnant_or_postpartum=False).is_pregnant_or_postpartum


# --------------------------------------------------------------------------- masks


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("11010519491231002X", "1***************2X"),
        ("11010519491231002x", "1***************2X"),
        ("370101190102039973", "3***************73"),
        ("110105491231002", "1************02"),
        (" 11010519491231002X ", "1***************2X"),
        ("", ""),
        (None, ""),
        ("1", "*"),
        ("123", "***"),
        ("1234", "1*34"),
    ],
)
def test_mask_id_number(value: str | None, masked: str) -> None:
    assert mask_id_number(value) == masked


def test_id_masks_follow_the_policy() -> None:
    policy = dataclasses.replace(DEFAULTS, mask_id_head=6, mask_id_tail=0)
    assert mask_id_number("11010519491231002X", policy) == "110105************"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("13800138000", "138****8000"),
        (" 13800138000 ", "138****8000"),
        ("12345678", "123*5678"),
        ("1380013", "*******"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_phone(value: str | None, masked: str) -> None:
    assert mask_phone(value) == masked


def test_phone_masks_follow_the_policy() -> None:
    assert mask_phone("13800138000", dataclasses.replace(DEFAULTS, mask_phone_head=0, mask_phone_tail=2)) == (
        "*********00"
    )


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("刘德华", "刘**"),
        ("王五", "王*"),
        ("刘", "*"),
        ("欧阳娜娜", "欧***"),
        ("买买提·艾力", "买*****"),
        (" 刘德华 ", "刘**"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_name(value: str | None, masked: str) -> None:
    assert mask_name(value) == masked


def test_name_masks_follow_the_policy() -> None:
    assert mask_name("刘德华", dataclasses.replace(DEFAULTS, mask_name_head=0)) == "***"
    assert mask_name("欧阳娜娜", dataclasses.replace(DEFAULTS, mask_name_head=2)) == "欧阳**"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("东昌府区古楼街道柳园社区3号楼2单元", "东昌府区古楼街道柳园社区"),
        ("山东省聊城市东昌府区古楼街道柳园社区居委会3号", "山东省聊城市东昌府区古楼街道柳园社区居委会"),
        ("阳谷县阿城镇王庄村15号", "阳谷县阿城镇王庄村"),
        ("莘县十八里铺镇", "莘县十八里铺镇"),
        ("冠县烟庄乡前屯村委会", "冠县烟庄乡前屯村委会"),
        ("东阿县铜城街道振兴路15号", "东阿县铜城街道"),
        ("古楼街道3号", "古楼街道"),
        ("东昌府区 古楼街道 柳园社区 3号楼", "东昌府区古楼街道柳园社区"),
        ("聊城市东昌府区振兴路15号", "聊城市东昌府…"),
        ("柳园小区3号楼（古楼街道）", "柳园小区…"),
        ("3号楼2单元", "…"),
        ("聊城市", "聊城市"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_address(value: str | None, masked: str) -> None:
    assert mask_address(value) == masked


@pytest.mark.parametrize(
    "text",
    ["患者有肺结核病史", "ＨＩＶ抗体阳性", "hiv阳性", "Hiv", "⼈类免疫缺陷病毒感染", "服用抗痨药", "精神分裂症"],
)
def test_free_text_terms_are_found_in_any_unicode_spelling(text: str) -> None:
    label = label_record("outpatient", [], {"note": text})
    assert label.confidentiality == "R"
    assert label_record("outpatient", [], {"note": text}, payload_json=json.dumps({"note": text})) == label


@pytest.mark.parametrize("text", ["高血压随访，血压控制满意", "archive 复查", "按时服药（硝苯地平）"])
def test_ordinary_text_with_full_width_punctuation_stays_normal(text: str) -> None:
    assert label_record("outpatient", [], {"note": text}) == NORMAL
