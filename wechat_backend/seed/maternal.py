"""孕产妇 records (domain §2.7): first prenatal visit before week 13, follow-ups at weeks 16–20,
21–24, 28–36 and 37–40, a 产后访视 within a week of discharge and the 产后42天 check.

The first visit carries HIV抗体 and 梅毒 results and a 家族史 that may say 精神疾病史 (3): all three
are sensitive and must be labelled at import.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import Person
from wechat_backend.seed.records import Draft, bmi, county_hospital, days

_FOLLOWUP_WEEKS = ((16, 20), (21, 24), (28, 36), (37, 40))
_PRENATAL_ADVICE = ("注意休息，合理营养，按时产检", "补充叶酸、钙剂，适量活动", "自数胎动，出现异常及时就诊")


def _weeks(lmp: dt.date, d: dt.date) -> str:
    n = (d - lmp).days
    return f"{n // 7}+{n % 7}"


def prenatal(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    if p.lmp is None:
        return []
    end = min(p.active_until, p.delivery or today)
    first = p.lmp + days(rng.randint(8 * 7, 13 * 7 - 1))
    if first > end:
        return []
    edd = p.lmp + days(280)
    weight0 = round(p.weight_kg - rng.uniform(0, 2), 1)
    visits = []
    for lo, hi in _FOLLOWUP_WEEKS:
        d = p.lmp + days(rng.randint(lo * 7, hi * 7 + 6))
        if rng.random() < 0.85 and d <= end:
            visits.append(d)
    hiv_positive = p.has("hiv") or rng.random() < 0.001
    first_payload = {
        "gestational_weeks": _weeks(p.lmp, first),
        "age": p.age,
        "husband_age": p.age + rng.randint(-1, 5),
        "gravidity": (gravidity := rng.choice((1, 1, 2, 2, 3))),
        "parity_vaginal": rng.randint(0, gravidity - 1),
        "parity_cesarean": 0,
        "lmp": p.lmp.isoformat(),
        "edd": edd.isoformat(),
        "past_history": ["1"] if rng.random() < 0.93 else [rng.choice("5678")],
        "family_history": ["3"] if rng.random() < 0.01 else ["1"],  # 3 精神疾病史
        "personal_history": ["1"],
        "height_cm": p.height_cm,
        "weight_kg": weight0,
        "bmi": bmi(weight0, p.height_cm),
        "sbp": rng.randint(98, 128),
        "dbp": rng.randint(60, 82),
        "hemoglobin": rng.randint(100, 135),
        "urine_protein": "-",
        "blood_abo": rng.choice("1233"),
        "blood_rh": "2" if rng.random() < 0.996 else "1",  # Rh 阴性 is rare among Han Chinese
        "fasting_glucose": round(rng.uniform(4.0, 5.6), 1),
        "hbsag": "1" if rng.random() < 0.96 else "2",
        "syphilis": "2" if rng.random() < 0.004 else "1",  # 梅毒血清学试验 1阴性 2阳性
        "hiv_antibody": "2" if hiv_positive else "1",  # HIV抗体检测 1阴性 2阳性
        "b_ultrasound": "宫内早孕，可见胎心搏动",
        "assessment": "1" if rng.random() < 0.9 else "2",
        "guidance": ["1", "2", "3"],
        "referral": None,
    }
    # The husband is usually the archive's contact person.
    first_payload["husband_name"] = p.contact_name
    first_payload["husband_phone"] = p.contact_phone
    out = [Draft("prenatal_first", first, first_payload, ["Z34.9"], visits[0] if visits else first + days(42))]
    weight = weight0
    for i, d in enumerate(visits):
        weeks = (d - p.lmp).days // 7
        weight = round(weight0 + max(0, weeks - 12) * rng.uniform(0.35, 0.5), 1)
        next_due = visits[i + 1] if i + 1 < len(visits) else (d + days(14) if weeks < 40 else None)
        payload = {
            "gestational_weeks": _weeks(p.lmp, d),
            "complaint": "无" if rng.random() < 0.8 else rng.choice(("偶有腰酸", "下肢轻度水肿", "睡眠欠佳")),
            "weight_kg": weight,
            "fundal_height_cm": max(12, weeks - 4 + rng.randint(-2, 2)) if weeks >= 20 else None,
            "abdominal_circumference_cm": 80 + weeks + rng.randint(-3, 3) if weeks >= 20 else None,
            "fetal_position": "头位" if weeks >= 28 else None,
            "fetal_heart_rate": rng.randint(125, 155),
            "sbp": rng.randint(100, 132),
            "dbp": rng.randint(60, 85),
            "hemoglobin": rng.randint(98, 130),
            "urine_protein": "-" if rng.random() < 0.95 else "+",
            "classification": "1" if rng.random() < 0.9 else "2",
            "guidance": rng.choice(_PRENATAL_ADVICE),
            "referral": None,
        }
        out.append(Draft("prenatal_followup", d, payload, ["Z34.9"], next_due))
    return out


def postpartum(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    if p.delivery is None:
        return []
    out = []
    discharge = p.delivery + days(rng.randint(1, 5))
    visit = discharge + days(rng.randint(1, 7))
    check42 = p.delivery + days(rng.randint(42, 49))
    mode = "剖宫产" if rng.random() < 0.4 else "阴道分娩"
    if visit <= min(today, p.active_until):
        payload = {
            "delivery_date": p.delivery.isoformat(),
            "discharge_date": discharge.isoformat(),
            "delivery_mode": mode,
            "delivery_institution": county_hospital(p.institution.county.name),
            "temperature": round(rng.uniform(36.3, 37.2), 1),
            "general_health": "良好",
            "mental": "良好" if rng.random() < 0.95 else "情绪低落",
            "sbp": rng.randint(100, 130),
            "dbp": rng.randint(62, 85),
            "breast": "1",
            "lochia": "1",
            "uterus": "1",
            "wound": "1" if rng.random() < 0.95 else "2",
            "classification": "1",
            "guidance": ["1", "3", "4", "5"],
            "referral": None,
        }
        out.append(Draft("postpartum_visit", visit, payload, ["Z39.2"], check42))
    if check42 <= min(today, p.active_until):
        recovered = rng.random() < 0.95
        payload = {
            "general_health": "良好",
            "mental": "良好",
            "sbp": rng.randint(100, 128),
            "dbp": rng.randint(60, 84),
            "breast": "1",
            "lochia": "1",
            "uterus": "1",
            "wound": "1",
            "classification": "1" if recovered else "2",  # 1已恢复 2未恢复
            "guidance": ["1", "2", "3", "4"],
            "handling": "1" if recovered else "2",  # 1结案 2转诊
        }
        out.append(Draft("postpartum_42d", check42, payload, ["Z39.2"]))
    return out
