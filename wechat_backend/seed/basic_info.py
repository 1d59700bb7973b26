"""个人基本信息表 (domain §2.2): the archive's `basic_info`, with the form's own codes.

既往史 and 家族史 codes 8 (严重精神障碍) and 9 (结核病) and 残疾情况 7 (精神残疾) are sensitive:
they appear for patients of those programmes and, at a low rate, for planted residents.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import Person


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    roll, acc = rng.random() * sum(w for _, w in table), 0.0
    for code, weight in table:
        acc += weight
        if roll < acc:
            return code
    return table[-1][0]


def _education(rng: random.Random, p: Person) -> str | None:
    if p.age < 7:
        return None
    if p.age < 18:
        return "8" if p.age < 13 else ("7" if p.age < 16 else "6")
    year = p.birth.year
    if year < 1960:
        table = (("9", 35), ("8", 40), ("7", 18), ("6", 5), ("4", 2))
    elif year < 1990:
        table = (("8", 20), ("7", 45), ("6", 15), ("4", 6), ("3", 7), ("2", 5), ("9", 2))
    else:
        table = (("7", 25), ("6", 20), ("4", 8), ("5", 5), ("3", 20), ("2", 19), ("1", 3))
    return _pick(rng, table)


def _occupation(rng: random.Random, p: Person) -> str | None:
    if p.age < 16:
        return None
    if p.age >= 65:
        return "8" if rng.random() < 0.6 else "4"
    if p.institution.is_urban:
        return _pick(rng, (("3", 30), ("5", 20), ("1", 10), ("2", 10), ("0", 2), ("7", 10), ("8", 18)))
    return _pick(rng, (("4", 50), ("5", 15), ("3", 12), ("7", 10), ("8", 10), ("1", 3)))


def _marital(rng: random.Random, age: int) -> str:
    if age < 20:
        return "1"
    if age < 30:
        return "1" if rng.random() < 0.45 else "2"
    if age < 65:
        return _pick(rng, (("2", 90), ("1", 4), ("4", 3), ("3", 3)))
    return _pick(rng, (("2", 68), ("3", 30), ("4", 2)))


def _month(rng: random.Random, p: Person, since: dt.date | None = None) -> str:
    if since is None:
        since = p.birth + dt.timedelta(days=rng.randint(max(1, (p.age - 15) * 365), max(2, p.age * 365)))
    return f"{since.year:04d}-{since.month:02d}"


def _past_illness(rng: random.Random, p: Person) -> list[dict]:
    items = []
    if p.ht_since:
        items.append({"code": "2", "date": _month(rng, p, p.ht_since)})
    if p.dm_since:
        items.append({"code": "3", "date": _month(rng, p, p.dm_since)})
    if p.age >= 50:
        for code, rate in (("4", 0.05), ("5", 0.03), ("6", 0.01), ("7", 0.04)):
            if rng.random() < rate * (1.6 if p.age >= 65 else 1):
                items.append({"code": code, "date": _month(rng, p)})
    if p.has("severe_mental") or ("past_illness" in p.plants and rng.random() < 0.5):
        items.append({"code": "8", "date": _month(rng, p)})
    elif p.has("tuberculosis") or "past_illness" in p.plants:
        items.append({"code": "9", "date": _month(rng, p)})
    if p.has("hiv") and rng.random() < 0.5:  # 其他法定传染病, named in free text
        items.append({"code": "11", "date": _month(rng, p), "name": "艾滋病"})
    if p.age >= 18 and rng.random() < 0.02:
        items.append({"code": "10", "date": _month(rng, p), "name": "乙型病毒性肝炎"})
    return items or [{"code": "1"}]


def _family(rng: random.Random, p: Person) -> dict:
    def member(old: bool) -> list[str]:
        codes = [
            c
            for c, rate in (
                ("2", 0.25 if old else 0.05),
                ("3", 0.1 if old else 0.02),
                ("4", 0.06 if old else 0.01),
                ("7", 0.06 if old else 0.01),
                ("6", 0.03),
            )
            if rng.random() < rate
        ]
        return codes or ["1"]

    history = {
        "father": member(True),
        "mother": member(True),
        "siblings": member(p.age >= 50),
        "children": member(False) if p.age >= 25 else ["1"],
    }
    if "family_history" in p.plants:
        who = rng.choice(("father", "mother", "siblings"))
        history[who] = [c for c in history[who] if c != "1"] + [rng.choice("89")]
    return history


def _disability(rng: random.Random, p: Person) -> list[str]:
    if "disability" in p.plants or (p.has("severe_mental") and rng.random() < 0.3):
        return ["7"]  # 精神残疾
    rate = 0.02 if p.age < 65 else 0.08
    if rng.random() < rate:
        return [rng.choice("23455")]
    return ["1"]


def basic_info(p: Person, rng: random.Random) -> dict:
    urban = p.village.is_community
    info: dict = {
        "resident_type": p.resident_type,
        "ethnicity": p.ethnicity,
    }
    if p.ethnic_name:
        info["ethnicity_name"] = p.ethnic_name
    info["blood_abo"] = _pick(rng, (("1", 28), ("2", 32), ("3", 30), ("4", 10))) if rng.random() < 0.6 else "5"
    info["blood_rh"] = "3" if info["blood_abo"] == "5" else ("1" if rng.random() < 0.004 else "2")
    if (education := _education(rng, p)) is not None:
        info["education"] = education
    if (occupation := _occupation(rng, p)) is not None:
        info["occupation"] = occupation
    info["marital"] = _marital(rng, p.age)
    payment = ["1"] if urban and 18 <= p.age < 60 and rng.random() < 0.5 else ["3" if not urban else "2"]
    if rng.random() < 0.05:
        payment.append("5")
    if rng.random() < 0.02:
        payment.append("4")
    info["payment"] = payment
    info["drug_allergy"] = ["1"] if rng.random() < 0.9 else [_pick(rng, (("2", 5), ("3", 2), ("4", 1), ("5", 2)))]
    if info["drug_allergy"] == ["5"]:
        info["drug_allergy_other"] = rng.choice(("头孢类", "阿司匹林", "碘造影剂"))
    info["exposure"] = ["1"] if rng.random() < 0.97 else [rng.choice("234")]
    info["past_illness"] = _past_illness(rng, p)
    info["surgery"] = (
        [{"name": rng.choice(("阑尾切除术", "剖宫产术", "白内障手术", "胆囊切除术")), "date": _month(rng, p)}]
        if p.age >= 20 and rng.random() < 0.08
        else []
    )
    info["trauma"] = []
    info["transfusion"] = []
    info["family_history"] = _family(rng, p)
    info["genetic_disease"] = None
    info["disability"] = _disability(rng, p)
    info["kitchen_exhaust"] = "2" if urban else _pick(rng, (("1", 25), ("2", 30), ("3", 25), ("4", 20)))
    info["fuel"] = "3" if urban else _pick(rng, (("1", 35), ("3", 35), ("2", 10), ("5", 15), ("6", 5)))
    info["water"] = "1" if urban or rng.random() < 0.9 else "3"
    info["toilet"] = rng.choice("13") if urban else _pick(rng, (("1", 60), ("2", 30), ("5", 10)))
    info["livestock_pen"] = "1" if urban else _pick(rng, (("1", 60), ("2", 25), ("4", 15)))
    return info
