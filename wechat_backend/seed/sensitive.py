"""严重精神障碍 and 肺结核 follow-ups: imported, never shown to residents (DESIGN, privacy policy).

Their payloads carry the drugs and words the privacy filter must catch (利培酮, 异烟肼, ...). The
code lists follow the 第三版 forms as far as the domain notes go; the symptom and 分类 codes of
these two forms are not cross-checked there (unconfirmed).
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import Person
from wechat_backend.seed.records import Draft, days

_ANTIPSYCHOTICS = (
    ("利培酮片", 2, 2),
    ("奥氮平片", 1, 10),
    ("阿立哌唑片", 1, 10),
    ("喹硫平片", 2, 200),
    ("氯氮平片", 2, 50),
    ("碳酸锂缓释片", 2, 300),
    ("丙戊酸钠缓释片", 2, 500),
)
_TB_DRUGS = (("异烟肼片", 1, 300), ("利福平胶囊", 1, 450), ("吡嗪酰胺片", 1, 1500), ("乙胺丁醇片", 1, 750))


def severe_mental(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    if not p.has("severe_mental") or p.sensitive_code is None:
        return []
    regimen = rng.sample(_ANTIPSYCHOTICS, rng.choice((1, 1, 2)))
    out = []
    d = max(p.birth, today - days(rng.randint(365, 730)))
    while d <= p.active_until:
        stable = rng.random() < 0.8
        next_due = d + days(rng.randint(85, 95) if stable else 14)
        payload = {
            "method": rng.choice("112"),  # 1门诊 2家庭访视 3电话
            "risk_level": "0" if stable else rng.choice("0112"),
            "symptoms": ["12"] if stable else rng.sample(("1", "3", "5", "10", "11"), 2),
            "insight": "1" if stable else rng.choice("23"),  # 自知力 1完全 2不全 3缺失
            "sleep": rng.choice("112"),
            "diet": rng.choice("112"),
            "social_function": {
                k: rng.choice("1122") for k in ("self_care", "housework", "work", "learning", "interpersonal")
            },
            "hospitalized_since_last": "0",
            "compliance": "1" if stable else rng.choice("23"),
            "adverse_reaction": "1",
            "treatment_effect": "1" if stable else "2",
            "classification": "3" if stable else "1",  # 1不稳定 2基本稳定 3稳定
            "medications": [{"name": n, "times_per_day": t, "mg": mg} for n, t, mg in regimen],
            "rehabilitation": rng.sample(("1", "2", "3"), 1),  # 生活劳动能力 / 职业训练 / 学习能力
            "doctor_advice": "坚持服药，定期复诊，家属加强看护" if stable else "病情波动，建议到精神专科复诊",
        }
        out.append(Draft("severe_mental_followup", d, payload, [p.sensitive_code], next_due))
        d = next_due + days(rng.randint(-3, 7))
    return out


def tuberculosis(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    """First home visit, then every 10 days in the 2-month intensive phase, monthly after it."""
    if not p.has("tuberculosis") or p.sensitive_code is None:
        return []
    start = max(p.birth, today - days(rng.randint(20, 540)))
    supervisor = rng.choice("1222")  # 督导人员 1医生 2家属 3自服药 4其他
    plan = [start + days(rng.randint(1, 3))]
    plan += [start + days(n) for n in range(10, 61, 10)]
    plan += [start + days(n) for n in range(90, 181, 30)]
    plan = [d for d in plan if d <= p.active_until]
    out = []
    for i, d in enumerate(plan):
        last = d == start + days(180)
        intensive = d <= start + days(60)
        next_due = None if last else (d + days(10 if intensive else 30))
        payload = {
            "visit": "first" if i == 0 else "followup",
            "method": rng.choice("12"),
            "treatment_month": (d - start).days // 30 + 1,
            "supervisor": supervisor,
            "symptoms": ["0"] if i > 2 or rng.random() < 0.4 else rng.sample(("1", "2", "3", "4"), 2),
            "regimen": "2HRZE/4HR",
            "usage": "1",  # 1每日 2间歇
            "drug_form": "1",  # 1固定剂量复合制剂 2散装药
            "missed_doses": 0 if rng.random() < 0.85 else rng.randint(1, 3),
            "adverse_reaction": "1" if rng.random() < 0.85 else "2",
            "medications": [
                {"name": n, "times_per_day": t, "mg": mg} for n, t, mg in (_TB_DRUGS if intensive else _TB_DRUGS[:2])
            ],
            "referral": None,
            "stop_reason": "1" if last else None,  # 1完成疗程
            "doctor_advice": "按时服用抗结核药物，定期复查痰菌，注意咳嗽礼仪",
        }
        out.append(Draft("tuberculosis_followup", d, payload, [p.sensitive_code], next_due))
    return out
