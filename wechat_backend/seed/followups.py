"""高血压 and 2型糖尿病 follow-ups (domain §2.4, §2.5): quarterly over the last one to two years.

A visit classed 控制不满意 (2) or 不良反应 (3) is followed up within two weeks; two unsatisfactory
visits in a row are referred (转诊) to the county hospital. Each patient keeps one regimen across
visits, and their weight and habits come from the person, so a series reads like one patient.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import Person
from wechat_backend.seed.records import Draft, bmi, county_hospital, days

# (药名, 每日次数, 每次 mg)
_HT_DRUGS = (
    ("硝苯地平缓释片", 2, 20),
    ("苯磺酸氨氯地平片", 1, 5),
    ("厄贝沙坦片", 1, 150),
    ("缬沙坦胶囊", 1, 80),
    ("卡托普利片", 3, 25),
    ("吲达帕胺片", 1, 2.5),
    ("琥珀酸美托洛尔缓释片", 1, 47.5),
    ("复方利血平氨苯蝶啶片", 1, 1),
    ("依那普利片", 2, 10),
)
_DM_DRUGS = (
    ("盐酸二甲双胍片", 3, 500),
    ("盐酸二甲双胍缓释片", 2, 500),
    ("格列美脲片", 1, 2),
    ("阿卡波糖片", 3, 50),
    ("格列齐德缓释片", 1, 30),
    ("瑞格列奈片", 3, 1),
)
_INSULINS = ("门冬胰岛素30注射液", "精蛋白生物合成人胰岛素注射液（预混30R）", "甘精胰岛素注射液")
_HT_ADVICE = (
    "低盐饮食，每日食盐不超过5克，规律服药，监测血压",
    "坚持服药，适量运动，戒烟限酒",
    "控制体重，清淡饮食，保持情绪稳定",
    "血压控制不理想，调整用药，两周后复查",
)
_DM_ADVICE = (
    "控制主食量，少食多餐，规律服药",
    "监测血糖，注意足部护理",
    "适量运动，饭后散步30分钟",
    "血糖偏高，调整用药，两周后复查",
)


def _visits(rng: random.Random, since: dt.date, today: dt.date, end: dt.date):
    """(date, 此次随访分类, 下次随访日期, referred) for each visit from one to two years back."""
    d = max(since, today - days(rng.randint(365, 730)))
    unsatisfied_before = False
    while d <= end:
        roll = rng.random()
        cls = "1" if roll < 0.72 else ("2" if roll < 0.93 else ("3" if roll < 0.97 else "4"))
        unsatisfied = cls in ("2", "3")
        next_due = d + days(14 if unsatisfied else rng.randint(88, 92))
        yield d, cls, next_due, unsatisfied and unsatisfied_before
        unsatisfied_before = unsatisfied
        d = next_due + days(rng.randint(-4, 10))


def _lifestyle(p: Person, rng: random.Random) -> dict:
    return {
        "weight_kg": round(p.weight_kg + rng.uniform(-1.5, 1.5), 1),
        "target_weight_kg": round(min(p.weight_kg, 24 * (p.height_cm / 100) ** 2), 1),
        "bmi": bmi(p.weight_kg, p.height_cm),
        "smoking_per_day": p.cigarettes,
        "target_smoking_per_day": 0,
        "drinking_liang": p.alcohol_liang,
        "exercise_per_week": p.exercise_per_week,
        "exercise_minutes": 30 if p.exercise_per_week else 0,
        "mental_adjustment": rng.choice("1112"),
        "doctor_compliance": rng.choice("1112"),
    }


def _referral(rng: random.Random, p: Person, reason: str) -> dict:
    return {
        "reason": reason,
        "institution": f"{county_hospital(p.institution.county.name)} "
        + rng.choice(("心内科", "内分泌科", "全科医学科")),
    }


def hypertension(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    if p.ht_since is None:
        return []
    regimen = rng.sample(_HT_DRUGS, rng.choice((1, 1, 2)))
    out = []
    for d, cls, next_due, referred in _visits(rng, p.ht_since, today, p.active_until):
        good = cls == "1"
        payload = {
            "method": rng.choice("1112"),
            "symptoms": ["1"] if good or rng.random() < 0.5 else rng.sample(("2", "4", "6", "8", "9"), 1),
            "sbp": rng.randint(112, 138) if good else rng.randint(142, 178),
            "dbp": rng.randint(68, 88) if good else rng.randint(86, 104),
            "heart_rate": rng.randint(62, 92),
            **_lifestyle(p, rng),
            "salt": rng.choice(("轻", "轻", "中", "中", "重")),
            "target_salt": "轻",
            "auxiliary_exam": None,
            "compliance": "1" if good else rng.choice("122"),
            "adverse_reaction": "2" if cls == "3" else "1",
            "classification": cls,
            "medications": [{"name": n, "times_per_day": t, "mg": mg} for n, t, mg in regimen],
            "referral": _referral(rng, p, "连续两次血压控制不满意") if referred else None,
            "doctor_advice": rng.choice(_HT_ADVICE[:3]) if good else _HT_ADVICE[3],
        }
        out.append(Draft("hypertension_followup", d, payload, ["I10"], next_due))
    return out


def diabetes(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    if p.dm_since is None:
        return []
    regimen = rng.sample(_DM_DRUGS, rng.choice((1, 1, 2)))
    insulin = rng.choice(_INSULINS) if rng.random() < 0.15 else None
    out = []
    for d, cls, next_due, referred in _visits(rng, p.dm_since, today, p.active_until):
        good = cls == "1"
        glucose = rng.uniform(4.6, 7.0) if good else rng.uniform(7.2, 13.5)
        payload = {
            "method": rng.choice("1112"),
            "symptoms": ["1"] if good or rng.random() < 0.5 else rng.sample(("2", "4", "5", "7"), 1),
            "sbp": rng.randint(112, 145),
            "dbp": rng.randint(66, 92),
            "dorsal_artery": "1" if rng.random() < 0.93 else "2",
            **_lifestyle(p, rng),
            "staple_g_per_day": rng.choice((200, 250, 250, 300, 350)),
            "fasting_glucose": round(glucose, 1),
            "hba1c": round(glucose * 0.6 + 2.6, 1) if rng.random() < 0.3 else None,
            "compliance": "1" if good else rng.choice("122"),
            "adverse_reaction": "2" if cls == "3" else "1",
            "hypoglycemia": "1" if rng.random() < 0.92 else "2",
            "classification": cls,
            "medications": [{"name": n, "times_per_day": t, "mg": mg} for n, t, mg in regimen],
            "insulin": {"type": insulin, "usage": f"早晚餐前皮下注射，每次{rng.randint(8, 16)}单位"}
            if insulin
            else None,
            "referral": _referral(rng, p, "连续两次血糖控制不满意") if referred else None,
            "doctor_advice": rng.choice(_DM_ADVICE[:3]) if good else _DM_ADVICE[3],
        }
        out.append(Draft("diabetes_followup", d, payload, ["E11.9"], next_due))
    return out
