"""健康体检表 (domain §2.3) as `health_exam` for adults and `elderly_check` for people 65+ (with the
生活自理能力评估 of §2.6), and the yearly 中医体质辨识 (`tcm_constitution`) of the elderly.

The free-text parts (现存主要健康问题, 主要用药情况) are where sensitive diagnoses leak in real data,
so patients of sensitive programmes, and a few planted residents, mention them there.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import Person, age_on
from wechat_backend.seed.records import Draft, bmi, days

_CONSTITUTIONS = ("平和质", "气虚质", "阳虚质", "阴虚质", "痰湿质", "湿热质", "血瘀质", "气郁质", "特禀质")
# (item, points for 可自理 / 轻度依赖 / 中度依赖 / 不能自理), domain §2.6
_ADL = (
    ("eating", (0, 0, 3, 5)),
    ("grooming", (0, 1, 3, 7)),
    ("dressing", (0, 0, 3, 5)),
    ("toileting", (0, 1, 5, 10)),
    ("activity", (0, 1, 5, 10)),
)
_PLANTED_TEXT = (
    ("main_problems", "精神分裂症，长期服药"),
    ("main_problems", "肺结核，抗痨治疗中"),
    ("medications", "抗痨药（异烟肼、利福平）"),
    ("medications", "利培酮片（精神分裂症）"),
)
_SENSITIVE_TEXT = {
    "severe_mental": ("精神分裂症", "利培酮片"),
    "tuberculosis": ("肺结核", "异烟肼片"),
    "hiv": ("HIV感染", "替诺福韦二吡呋酯片"),
}


def _adl(rng: random.Random, age: int) -> dict:
    level = 0 if rng.random() < (0.85 if age < 80 else 0.6) else rng.choice((1, 1, 2, 3))
    scores = {item: points[min(3, level + (rng.random() < 0.2))] if level else 0 for item, points in _ADL}
    total = sum(scores.values())
    scores["total"] = total
    scores["level"] = "1" if total <= 3 else ("2" if total <= 8 else ("3" if total <= 18 else "4"))
    return scores


def _medications(p: Person, rng: random.Random) -> list[dict]:
    meds = []
    if p.ht_since:
        meds.append(
            {
                "name": "苯磺酸氨氯地平片",
                "usage": "口服",
                "dose": "5mg 每日一次",
                "duration": "长期",
                "compliance": rng.choice("112"),
            }
        )
    if p.dm_since:
        meds.append(
            {
                "name": "盐酸二甲双胍片",
                "usage": "口服",
                "dose": "0.5g 每日三次",
                "duration": "长期",
                "compliance": rng.choice("112"),
            }
        )
    return meds


def _payload(p: Person, rng: random.Random, d: dt.date, elderly: bool) -> dict:
    sbp_base = 145 if p.ht_since else (128 if p.age >= 50 else 118)
    sbp = int(rng.gauss(sbp_base, 10))
    dbp = int(rng.gauss(sbp * 0.6, 6))
    glucose = round(rng.uniform(6.5, 11.0) if p.dm_since else rng.uniform(4.3, 6.4), 1)
    problems = (["高血压"] if p.ht_since else []) + (["2型糖尿病"] if p.dm_since else [])
    meds = _medications(p, rng)
    for programme, (problem, drug) in _SENSITIVE_TEXT.items():
        if p.has(programme) and rng.random() < 0.7:
            problems.append(problem)
            meds.append({"name": drug, "usage": "口服", "dose": "遵医嘱", "duration": "长期", "compliance": "1"})
    if "exam_text" in p.plants:
        field, text = rng.choice(_PLANTED_TEXT)
        if field == "main_problems":
            problems.append(text)
        else:
            meds.append({"name": text, "usage": "口服", "dose": "遵医嘱", "duration": "半年", "compliance": "1"})
    abnormal = [a for a, hit in (("血压偏高", sbp >= 140), ("空腹血糖偏高", glucose >= 7.0)) if hit]
    payload = {
        "symptoms": ["1"] if rng.random() < 0.7 else rng.sample(("3", "4", "13", "14", "15", "19"), 1),
        "temperature": round(rng.uniform(36.1, 36.9), 1),
        "pulse": rng.randint(62, 90),
        "respiration": rng.randint(16, 20),
        "bp_left": [sbp, dbp],
        "bp_right": [sbp + rng.randint(-6, 6), dbp + rng.randint(-4, 4)],
        "height_cm": p.height_cm,
        "weight_kg": round(p.weight_kg + rng.uniform(-2, 2), 1),
        "waist_cm": round(p.weight_kg * 0.85 + rng.uniform(15, 25), 1),
        "bmi": bmi(p.weight_kg, p.height_cm),
        "exercise": rng.choice("1234") if p.exercise_per_week else "4",
        "diet": rng.choice((["1"], ["1"], ["1"], ["4"], ["5"], ["2", "4"])),
        "smoking": "3" if p.cigarettes else rng.choice("1112"),
        "smoking_per_day": p.cigarettes,
        "drinking": "4" if p.alcohol_liang >= 2 else ("3" if p.alcohol_liang else rng.choice("112")),
        "drinking_liang": p.alcohol_liang,
        "oral": {"lips": "1", "dentition": "1" if p.age < 60 else rng.choice("1234"), "pharynx": "1"},
        "vision": {"left": round(rng.uniform(4.5, 5.1), 1), "right": round(rng.uniform(4.5, 5.1), 1)},
        "hearing": "1" if p.age < 75 or rng.random() < 0.7 else "2",
        "motor": "1",
        "lab": {
            "hemoglobin": rng.randint(125, 160) if p.sex == "1" else rng.randint(110, 145),
            "wbc": round(rng.uniform(4.0, 9.5), 1),
            "platelets": rng.randint(150, 320),
            "urine_protein": "-" if rng.random() < 0.92 else "+",
            "fasting_glucose": glucose,
            "ecg": "1" if rng.random() < 0.8 else "2",
            "ecg_note": None,
            "alt": rng.randint(10, 45),
            "ast": rng.randint(12, 40),
            "creatinine": rng.randint(50, 105),
            "bun": round(rng.uniform(3.0, 7.5), 1),
            "total_cholesterol": round(rng.uniform(3.8, 6.4), 2),
            "triglycerides": round(rng.uniform(0.7, 2.6), 2),
            "ldl": round(rng.uniform(1.9, 4.0), 2),
            "hdl": round(rng.uniform(0.9, 1.8), 2),
            "b_ultrasound": "1" if rng.random() < 0.75 else "2",
        },
        "main_problems": problems,
        "hospitalizations": [],
        "medications": meds,
        "assessment": "2" if abnormal else "1",
        "abnormalities": abnormal,
        "guidance": ["1"] if problems else (["2"] if abnormal else []),
        "risk_control": [
            c
            for c, hit in (("1", p.cigarettes), ("2", p.alcohol_liang), ("3", True), ("4", not p.exercise_per_week))
            if hit
        ],
    }
    if payload["lab"]["ecg"] == "2":
        payload["lab"]["ecg_note"] = rng.choice(("窦性心动过缓", "ST-T改变", "T波低平", "左心室高电压"))
    if elderly:
        payload["self_health"] = rng.choice("11223")
        payload["adl"] = _adl(rng, p.age)
        payload["self_care"] = payload["adl"]["level"]
        payload["cognitive"] = "1" if rng.random() < 0.93 else "2"
        payload["emotional"] = "1" if rng.random() < 0.95 else "2"
    return payload


def _tcm(p: Person, rng: random.Random) -> dict:
    scores = {c: rng.randint(8, 40) for c in _CONSTITUTIONS}
    primary = "平和质" if rng.random() < 0.35 else rng.choice(_CONSTITUTIONS[1:])
    scores[primary] = rng.randint(60, 80) if primary == "平和质" else rng.randint(40, 65)
    tendency = [c for c in _CONSTITUTIONS[1:] if c != primary and 30 <= scores[c] <= 39]
    return {
        "scores": scores,
        "constitution": [primary],
        "tendency": tendency,
        "guidance": sorted(rng.sample(("1", "2", "3", "4", "5"), 3)),  # 情志 饮食 起居 运动 穴位
    }


def elderly(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    """One 老年人健康管理 a year (most elderly take it), with a 中医体质辨识 the same week."""
    out = []
    for years_back in range(3):
        if rng.random() > 0.75:
            continue
        d = today - days(365 * years_back + rng.randint(0, 300))
        if d > p.active_until or age_on(p.birth, d) < 65:
            continue
        out.append(Draft("elderly_check", d, _payload(p, rng, d, elderly=True)))
        tcm_day = d + days(rng.randint(0, 6))
        if rng.random() < 0.85 and tcm_day <= p.active_until:
            out.append(Draft("tcm_constitution", tcm_day, _tcm(p, rng)))
    return out


def health_exam(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    if p.age < 18 or p.age >= 65:
        return []
    chronic = p.ht_since or p.dm_since
    n = sum(rng.random() < 0.7 for _ in range(2)) if chronic else int(rng.random() < 0.25)
    if "exam_text" in p.plants:
        n = max(n, 1)
    out = []
    for i in range(n):
        d = min(p.active_until, today - days(365 * i + rng.randint(0, 330)))
        if age_on(p.birth, d) >= 18:
            out.append(Draft("health_exam", d, _payload(p, rng, d, elderly=False)))
    return out
