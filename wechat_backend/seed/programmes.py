"""Who is managed under which 国家基本公共卫生服务 programme, with the facts that drive records.

Rates are per age group and chosen so the key groups look like a real county's register:
hypertension in ~30% of people 65+ and ~12% of those 35–64, type-2 diabetes in ~12% / ~5%,
~1% of everyone a pregnant or recently delivered woman under management. Sensitive programmes
(严重精神障碍 ~1%, 肺结核 ~0.3%, HIV ~0.1%) are there so the privacy filter has work to do, and
`plants` hide sensitive codes and words inside otherwise ordinary records at a low rate.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import PROGRAMMES, Person

# ICD-10, some in 国家临床版 style (A15.000x001): the filter must match on the category.
_PSY_CODES = ("F20.0", "F20.0", "F20.901", "F20.9", "F31.1", "F31.901", "F25.0", "F22.0", "F06.2")
_TB_CODES = ("A15.0", "A15.000x001", "A15.000x001", "A16.2", "A16.201", "A15.300x001")
_HIV_CODES = ("Z21", "Z21", "B20.7", "B23.8", "B24")

# Adults are ~80% of residents: dividing the wanted share of everyone by the eligible share.
_PSY_RATE = 0.0125  # ~1% of everyone
_TB_RATE = 0.0036  # ~0.3%
_HIV_RATE = 0.0015  # ~0.1% (after the two programmes checked before it)
# Women 20–40 are ~12% of residents, so ~8.5% of them under management is ~1% of everyone.
_MATERNAL_RATE = 0.085

_PLANT_RATES = {
    "past_illness": 0.002,
    "family_history": 0.005,
    "disability": 0.002,
    "outpatient": 0.002,
    "exam_text": 0.002,
}


def _onset(rng: random.Random, p: Person, today: dt.date, earliest_age: int) -> dt.date:
    """Diagnosed some years ago, but not before `earliest_age`."""
    span = min(20 * 365, max(200, (p.age - earliest_age) * 365))
    return max(p.birth, today - dt.timedelta(days=rng.randrange(120, span + 121)))


def assign(p: Person, rng: random.Random, today: dt.date, force: str | None) -> None:
    chosen: set[str] = set()
    age = p.age
    if age >= 65:
        chosen.add("elderly")
    if age <= 6:
        chosen.add("child")
    if age >= 35:
        if rng.random() < (0.30 if age >= 65 else 0.12):
            chosen.add("hypertension")
            p.ht_since = _onset(rng, p, today, 30)
        if rng.random() < (0.12 if age >= 65 else 0.05):
            chosen.add("diabetes")
            p.dm_since = _onset(rng, p, today, 30)
    if p.sex == "2" and 20 <= age <= 40 and (force == "maternal" or rng.random() < _MATERNAL_RATE):
        chosen.add("maternal")
        _pregnancy(p, rng, today)
    if force == "severe_mental" or (age >= 18 and rng.random() < _PSY_RATE):
        chosen.add("severe_mental")
        p.sensitive_code = rng.choice(_PSY_CODES)
    elif force == "tuberculosis" or (age >= 15 and rng.random() < _TB_RATE):
        chosen.add("tuberculosis")
        p.sensitive_code = rng.choice(_TB_CODES)
    elif force == "hiv" or (18 <= age <= 70 and rng.random() < _HIV_RATE):
        chosen.add("hiv")
        p.sensitive_code = rng.choice(_HIV_CODES)
    p.programmes = [name for name in PROGRAMMES if name in chosen]  # fixed order: stable output

    plants = {name for name, rate in _PLANT_RATES.items() if rng.random() < rate}
    if force and force.startswith("plant_"):
        plants.add(force.removeprefix("plant_"))
    if age < 18:
        plants -= {"exam_text", "past_illness"}
    p.plants = frozenset(plants)


def _pregnancy(p: Person, rng: random.Random, today: dt.date) -> None:
    # Anywhere from week 8 of pregnancy to a few weeks after the 42-day check.
    since_lmp = rng.randrange(56, 370)
    p.lmp = today - dt.timedelta(days=since_lmp)
    birth = p.lmp + dt.timedelta(days=rng.randint(259, 290))  # 37–41 weeks
    p.delivery = birth if birth < today else None
