"""Synthetic residents: age pyramid, names, guardians and contacts, household, body and status.

One :class:`PersonFactory` per generator run; numbers and addresses come from
:class:`~wechat_backend.seed.identity.Identities`.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import deque
from dataclasses import dataclass, field

from wechat_backend.codes import PROGRAMMES
from wechat_backend.seed.identity import ELSEWHERE, Identities
from wechat_backend.seed.names import NamePool
from wechat_backend.seed.places import Institution, Village

__all__ = ["PROGRAMMES", "Person"]

# (youngest, oldest, % of residents). A Shandong prefecture around 2025: ~7.5% aged 0–6, a large
# 1962–1975 cohort now in its fifties and sixties, 16.5% aged 65 and over.
AGE_BANDS = (
    (0, 6, 7.5),
    (7, 17, 12.5),
    (18, 34, 18.0),
    (35, 49, 19.0),
    (50, 64, 26.5),
    (65, 74, 10.5),
    (75, 84, 4.8),
    (85, 99, 1.2),
)
_BAND_CUM = [sum(b[2] for b in AGE_BANDS[: i + 1]) for i in range(len(AGE_BANDS))]

# Traits the generator forces onto chosen archives so that every file of 300+ archives has them.
FORCEABLE = (
    "severe_mental",
    "tuberculosis",
    "hiv",
    "maternal",
    "newborn",
    "plant_past_illness",
    "plant_family_history",
    "plant_disability",
    "plant_outpatient",
    "plant_exam_text",
)
_FORCED_AGE = {
    "severe_mental": (25, 60),
    "tuberculosis": (25, 60),
    "hiv": (25, 55),
    "maternal": (22, 38),
    "plant_exam_text": (40, 64),
    "plant_past_illness": (30, 64),
    "plant_family_history": (30, 64),
    "plant_disability": (30, 64),
    "plant_outpatient": (30, 64),
}


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


@dataclass
class Relative:
    """An adult already generated in the same institution: a possible guardian or contact."""

    name: str
    surname: str
    sex: str
    age: int
    phone: str
    village: Village
    address: str


@dataclass
class Person:
    index: int
    sex: str
    birth: dt.date
    age: int
    age_days: int
    name: str
    institution: Institution
    village: Village
    surname: str = ""
    archive_no: str = ""
    id_number: str | None = None
    phone: str | None = None
    contact_name: str | None = None
    contact_phone: str | None = None
    address: str = ""
    household_address: str = ""
    resident_type: str = "1"
    ethnicity: str = "01"
    ethnic_name: str | None = None
    programmes: list[str] = field(default_factory=list)
    status: str = "normal"
    active_until: dt.date = dt.date.min  # no service after this day (lost or closed archives)
    height_cm: float = 0.0
    weight_kg: float = 0.0
    cigarettes: int = 0
    alcohol_liang: float = 0.0
    exercise_per_week: int = 0
    ht_since: dt.date | None = None
    dm_since: dt.date | None = None
    lmp: dt.date | None = None  # 末次月经 of the pregnancy under management
    delivery: dt.date | None = None  # None while still pregnant
    sensitive_code: str | None = None  # the ICD-10 code behind a sensitive programme
    plants: frozenset[str] = frozenset()  # sensitive details hidden in ordinary fields

    def has(self, programme: str) -> bool:
        return programme in self.programmes


class PersonFactory:
    def __init__(
        self,
        rng: random.Random,
        names: NamePool,
        institutions: list[Institution],
        cum_weights: list[float],
        today: dt.date,
    ) -> None:
        self._rng, self._names, self._today = rng, names, today
        self._institutions, self._cum = institutions, cum_weights
        self.ids = Identities(rng)
        self._adults: dict[str, deque[Relative]] = {i.code: deque(maxlen=48) for i in institutions}
        self._by_county: dict[str, list[Institution]] = {}
        for inst in institutions:
            self._by_county.setdefault(inst.county.code, []).append(inst)

    # ------------------------------------------------------------------ one resident

    def make(self, index: int, force: str | None = None) -> Person:
        r, today = self._rng, self._today
        inst = self._institutions[r.choices(range(len(self._institutions)), cum_weights=self._cum)[0]]
        village = r.choice(inst.villages)
        if force == "newborn":
            days = r.randrange(3, 90)
        elif force in _FORCED_AGE:
            lo, hi = _FORCED_AGE[force]
            days = r.randrange(int(lo * 365.25), int((hi + 1) * 365.25))
        else:
            lo, hi, _ = AGE_BANDS[r.choices(range(len(AGE_BANDS)), cum_weights=_BAND_CUM)[0]]
            days = r.randrange(max(1, int(lo * 365.25)), int((hi + 1) * 365.25))
        birth = today - dt.timedelta(days=days)
        age = age_on(birth, today)
        male_share = 0.51 if age < 65 else (0.47 if age < 80 else 0.40)  # women outlive men
        sex = "2" if force == "maternal" else ("1" if r.random() < male_share else "2")
        p = Person(
            index=index,
            sex=sex,
            birth=birth,
            age=age,
            age_days=days,
            name="",
            institution=inst,
            village=village,
            active_until=today,
        )
        p.address = self.ids.address(inst, village)
        self._name(p)
        if not (days < 91 and (force == "newborn" or r.random() < 0.3)):
            p.id_number = self.ids.id_number(inst.county.code, birth, sex)
        self._contacts(p)  # a child moves into its guardian's home (village and address)
        p.archive_no = self.ids.archive_no(inst, p.village)
        self._household(p)
        self._body(p)
        self._status(p)
        return p

    def _name(self, p: Person) -> None:
        r = self._rng
        roll = r.random()
        if roll < 0.0008 and p.age >= 3:
            p.name, p.ethnicity, p.ethnic_name = self._names.dotted(p.sex), "99", "维吾尔族"
            return
        if roll < 0.009:  # 回族, most of them around 张鲁回族镇
            p.ethnicity, p.ethnic_name = "99", "回族"
            p.surname = r.choice(("马", "马", "白", "沙", "米", "杨"))
        else:
            p.surname = self._names.surname()
        p.name = p.surname + self._names.given(p.sex, p.birth.year)

    def _contacts(self, p: Person) -> None:
        r, names = self._rng, self._names
        pool = self._adults[p.institution.code]
        if p.age < 18:
            guardian = self._pick(pool, p.age + 20, p.age + 40)
            if guardian and r.random() < 0.6:  # the parent is in the file too: same home, same phone
                p.contact_name, p.contact_phone, p.address = guardian.name, guardian.phone, guardian.address
                p.village = guardian.village
                if guardian.sex == "1" and guardian.surname and p.ethnicity == "01":
                    p.surname = guardian.surname  # children take the father's surname
                    p.name = guardian.surname + names.given(p.sex, p.birth.year)
            else:
                parent_sex = "1" if r.random() < 0.45 else "2"
                surname = p.surname if parent_sex == "1" else None
                p.contact_name = names.full(parent_sex, p.birth.year - r.randint(24, 34), surname)
                p.contact_phone = self.ids.phone()
            if p.age >= 15 and r.random() < 0.4:
                p.phone = self.ids.phone()
            return
        own = 0.97 if p.age < 65 else (0.85 if p.age < 80 else 0.5)
        if r.random() < own:
            p.phone = self.ids.phone()
        if p.age >= 65 and (p.phone is None or r.random() < 0.7):
            child = self._pick(pool, p.age - 42, p.age - 20, surname=p.surname)
            if child and r.random() < 0.5:
                p.contact_name, p.contact_phone = child.name, child.phone
            else:
                son = r.random() < 0.5
                p.contact_name = names.full(
                    "1" if son else "2", p.birth.year + r.randint(22, 32), p.surname if son else None
                )
                p.contact_phone = self.ids.phone()
        elif r.random() < 0.4:
            p.contact_name = names.full("2" if p.sex == "1" else "1", p.birth.year + r.randint(-4, 4))
            p.contact_phone = self.ids.phone()
        if p.phone and 20 <= p.age <= 65:
            pool.append(Relative(p.name, p.surname, p.sex, p.age, p.phone, p.village, p.address))

    def _pick(self, pool: deque[Relative], lo: int, hi: int, surname: str = "") -> Relative | None:
        """A recent adult of the right age; one sharing `surname` (a son) when there is one."""
        fits = [a for a in pool if lo <= a.age <= hi]
        sons = [a for a in fits if surname and a.surname == surname]
        return self._rng.choice(sons or fits) if fits else None

    def _household(self, p: Person) -> None:
        r, inst = self._rng, p.institution
        if r.random() < 0.06:
            p.resident_type = "2"  # 非户籍: registered elsewhere, living here
            town = r.choice(("城关镇", "王庄镇", "李集乡"))
            p.household_address = f"{r.choice(ELSEWHERE)}{town}{r.randint(1, 200)}号"
        elif inst.is_urban and r.random() < 0.3:
            other = r.choice(self._by_county[inst.county.code])  # moved to town, 户口 still in the village
            village = r.choice([v for v in other.villages if not v.is_community] or list(other.villages))
            p.household_address = self.ids.address(other, village)
        else:
            p.household_address = p.address

    def _body(self, p: Person) -> None:
        r = self._rng
        if p.age >= 18:
            p.height_cm = round(r.gauss(170 if p.sex == "1" else 158, 6) - max(0, p.age - 60) * 0.15, 1)
            bmi = min(36.0, max(17.0, r.gauss(24.5 if p.age >= 35 else 22.5, 3.2)))
            p.weight_kg = round(bmi * (p.height_cm / 100) ** 2, 1)
            if p.sex == "1" and r.random() < 0.45:
                p.cigarettes = r.choice((5, 10, 10, 15, 20, 20, 30))
            if r.random() < (0.35 if p.sex == "1" else 0.03):
                p.alcohol_liang = r.choice((0.5, 1.0, 1.0, 2.0, 3.0))
            p.exercise_per_week = r.choice((0, 0, 1, 2, 3, 3, 5, 7))

    def _status(self, p: Person) -> None:
        r, roll = self._rng, self._rng.random()
        if roll < 0.03:
            p.status = "lost"  # 失访: moved away or unreachable; service stopped some time ago
        elif roll < 0.035:
            p.status = "closed"
        if p.status != "normal":
            p.active_until = max(p.birth, self._today - dt.timedelta(days=r.randint(120, 700)))
