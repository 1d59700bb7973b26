"""0–6岁儿童 records (domain §2.8, §2.9): the 新生儿家庭访视 within a week of discharge, then
health checks at 满月, 3, 6, 8, 12, 18, 24, 30 and 36 months and at 4, 5 and 6 years.

Growth follows rough WHO medians for the age so weights and lengths climb visit by visit.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import Person
from wechat_backend.seed.records import Draft, add_months, county_hospital, days

# month: (weight kg boy, weight kg girl, length cm boy, length cm girl, head cm)
_GROWTH = {
    0: (3.3, 3.2, 49.9, 49.1, 34.2),
    1: (4.5, 4.2, 54.7, 53.7, 37.0),
    3: (6.4, 5.8, 61.4, 59.8, 40.2),
    6: (7.9, 7.3, 67.6, 65.7, 43.0),
    8: (8.6, 7.9, 70.6, 68.7, 44.2),
    12: (9.6, 8.9, 75.7, 74.0, 45.8),
    18: (10.9, 10.2, 82.3, 80.7, 47.2),
    24: (12.2, 11.5, 87.8, 86.4, 48.1),
    30: (13.3, 12.7, 91.9, 90.7, 48.8),
    36: (14.3, 13.9, 96.1, 95.1, 49.3),
    48: (16.3, 16.1, 103.3, 102.7, 50.0),
    60: (18.3, 18.2, 110.0, 109.4, 50.5),
    72: (20.5, 20.2, 116.0, 115.1, 51.0),
}
_LABELS = {
    1: "满月",
    3: "3月龄",
    6: "6月龄",
    8: "8月龄",
    12: "12月龄",
    18: "18月龄",
    24: "24月龄",
    30: "30月龄",
    36: "3岁",
    48: "4岁",
    60: "5岁",
    72: "6岁",
}
_SCHEDULE = tuple(_LABELS)


def _eval(z: float) -> str:
    return "上" if z > 1.0 else ("下" if z < -1.0 else "中")


def newborn(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    visit = p.birth + days(rng.randint(3, 7))
    if not p.has("child") or visit > min(today, p.active_until) or rng.random() < 0.08:
        return []
    w_med = _GROWTH[0][0 if p.sex == "1" else 1]
    birth_weight = round(rng.gauss(w_med, 0.4), 2)
    payload = {
        "gestational_weeks": rng.choice((37, 38, 39, 39, 40, 40, 41)),
        "mother_illness": ["1"] if rng.random() < 0.9 else [rng.choice("23")],
        "midwifery_institution": county_hospital(p.institution.county.name),
        "birth_mode": rng.choice("11114"),  # 1顺产 4剖宫
        "asphyxia": "1",
        "malformation": None,
        "hearing_screen": "1" if rng.random() < 0.95 else "3",
        "disease_screen": "2",
        "birth_weight_kg": birth_weight,
        "current_weight_kg": round(birth_weight - rng.uniform(0, 0.2), 2),
        "birth_length_cm": round(rng.gauss(_GROWTH[0][2 if p.sex == "1" else 3], 1.5), 1),
        "feeding": rng.choice("1112"),  # 1纯母乳 2混合 3人工
        "feeds_per_day": rng.randint(8, 12),
        "stool": "1",
        "temperature": round(rng.uniform(36.4, 37.2), 1),
        "heart_rate": rng.randint(120, 150),
        "respiration": rng.randint(35, 50),
        "complexion": "1" if rng.random() < 0.7 else "2",  # 1红润 2黄染
        "jaundice": ["1"] if rng.random() < 0.6 else ["2"],
        "fontanelle": "1.5×1.5cm",
        "exam_normal": "1",
        "umbilical_cord": rng.choice("112"),  # 1未脱 2脱落
        "referral": None,
        "guidance": ["1", "2", "3", "4"],
        "next_visit_place": p.institution.name,
    }
    return [Draft("newborn_visit", visit, payload, ["Z00.1"], p.birth + days(rng.randint(28, 30)))]


def _when(p: Person, rng: random.Random, month: int) -> dt.date:
    if month == 1:
        return p.birth + days(rng.randint(28, 30))
    return add_months(p.birth, month) + days(rng.randint(0, 10))


def checks(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    if not p.has("child"):
        return []
    out = []
    z = rng.gauss(0, 0.8)  # a child keeps roughly its centile
    end = min(today, p.active_until)
    for i, month in enumerate(_SCHEDULE):
        d = _when(p, rng, month)
        if d > end:
            break
        if rng.random() < 0.1:  # missed
            continue
        wb, wg, lb, lg, head = _GROWTH[month]
        w, length = (wb, lb) if p.sex == "1" else (wg, lg)
        zw = z + rng.gauss(0, 0.3)
        payload = {
            "age_label": _LABELS[month],
            "weight_kg": round(w * (1 + 0.11 * zw), 1),
            "weight_eval": _eval(zw),
            "length_cm": round(length * (1 + 0.035 * z), 1),
            "length_eval": _eval(z),
            "head_cm": round(head + z * 1.2, 1) if month <= 36 else None,
            "complexion": "1",
            "skin": "1",
            "fontanelle": ("闭合" if month >= 12 else f"{rng.choice((1.0, 1.5, 2.0))}×{rng.choice((1.0, 1.5))}cm")
            if month <= 18
            else None,
            "eyes": "1",
            "ears": "1",
            "hearing": "1" if month in (6, 12, 24, 36) else None,
            "teeth": min(20, max(0, (month - 6) * 20 // 24)) if month >= 6 else None,
            "caries": (0 if rng.random() < 0.8 else rng.randint(1, 3)) if month >= 18 else None,
            "chest": "1",
            "abdomen": "1",
            "limbs": "1",
            "gait": "1" if month >= 18 else None,
            "rickets_signs": None,
            "hemoglobin": rng.randint(105, 135) if month in (6, 8, 18, 30) else None,
            "outdoor_hours": rng.choice((1, 1.5, 2)),
            "vitamin_d": month <= 24,
            "development": "通过",
            "illness_between": ["1"] if rng.random() < 0.8 else [rng.choice("235")],
            "referral": None,
            "guidance": ["1", "2", "3", "4"],
        }
        if month >= 36:
            payload["growth_eval"] = "1" if abs(zw) < 1.5 else ("5" if zw > 0 else "2")
            payload["vision"] = {"left": round(rng.uniform(4.7, 5.0), 1), "right": round(rng.uniform(4.7, 5.0), 1)}
        nxt = _SCHEDULE[i + 1] if i + 1 < len(_SCHEDULE) else None
        out.append(Draft("child_check", d, payload, ["Z00.1"], _when(p, rng, nxt) if nxt else None))
    return out
