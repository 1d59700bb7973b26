"""A service record before it gets its ids, and the calendar arithmetic the schedules share."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field


@dataclass
class Draft:
    kind: str
    date: dt.date
    payload: dict
    diagnosis_codes: list[str] = field(default_factory=list)
    next_due: dt.date | None = None  # the form's 下次随访日期, when it has one


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def add_months(day: dt.date, months: int) -> dt.date:
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def bmi(weight_kg: float, height_cm: float) -> float:
    return round(weight_kg / (height_cm / 100) ** 2, 1)


def county_hospital(county_name: str) -> str:
    """Where a primary-care doctor refers to (转诊): the county hospital, or the city's for 东昌府区."""
    return "聊城市人民医院" if county_name == "东昌府区" else f"{county_name}人民医院"
