"""When the next follow-up, exam or check is due: pure functions of dates (and a record's payload).

Sources (``shared/domain/health-domain.md`` §4, 国家基本公共卫生服务规范 第三版):
* 高血压 / 2型糖尿病: at least four face-to-face follow-ups a year — the record's 下次随访日期, else
  90 days after it;
* 65岁及以上老年人: one health exam a year — a year after the last one (the 65th birthday for
  someone not yet 65);
* 0～6岁儿童: checks at 1, 3, 6, 8, 12, 18, 24, 30 and 36 months of age, then yearly to 6 years;
* 孕产妇: the first visit before week 13, then weeks 16–20, 21–24, 28–36 and 37–40; a postpartum
  visit ends the pregnancy's reminders.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from typing import Any

from .kinds import CHILD_CHECK_DUE, EXAM_DUE, FOLLOWUP_DUE, PRENATAL_DUE

FOLLOWUP_INTERVAL = dt.timedelta(days=90)
CHILD_CHECK_MONTHS = (1, 3, 6, 8, 12, 18, 24, 30, 36, 48, 60, 72)
PRENATAL_WEEKS = (16, 21, 28, 37)  # the first day of each later national visit window
PRENATAL_FALLBACK = dt.timedelta(weeks=4)
EXAM_AGE = 65

_FOLLOWUPS = frozenset({"hypertension_followup", "diabetes_followup"})
_EXAMS = frozenset({"elderly_check", "health_exam"})
_CHILD = frozenset({"child_check", "newborn_visit"})
_PRENATAL = frozenset({"prenatal_first", "prenatal_followup"})
_POSTPARTUM = frozenset({"postpartum_visit", "postpartum_42d"})
_WEEK_KEYS = ("gestational_week", "孕周")

Due = tuple[str, dt.date | None]
"""(reminder kind, due date); a None date closes that reminder (nothing more is due)."""


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later; the month's last day when it has no such day (31 Jan + 1 → 28/29 Feb)."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_child_check(birth: dt.date, after: dt.date) -> dt.date | None:
    """The first scheduled child check strictly after ``after``; None once past six years."""
    return next((d for m in CHILD_CHECK_MONTHS if (d := add_months(birth, m)) > after), None)


def next_exam(birth: dt.date, last_exam: dt.date | None, today: dt.date) -> dt.date | None:
    """A year after the last exam, once 65 by then; the 65th birthday while it is ahead."""
    turns_65 = add_months(birth, 12 * EXAM_AGE)
    if last_exam is None:
        return turns_65 if turns_65 > today else None
    due = add_months(last_exam, 12)
    return due if due >= turns_65 else turns_65


def _gestational_week(payload: Mapping[str, Any] | None) -> int | None:
    for key in _WEEK_KEYS:
        value = (payload or {}).get(key)
        try:
            week = int(str(value).split("+")[0].split(".")[0])
        except (TypeError, ValueError):
            continue
        if 0 < week < 45:
            return week
    return None


def next_prenatal(date: dt.date, payload: Mapping[str, Any] | None) -> dt.date | None:
    """The start of the next national visit window after the week recorded; four weeks on when
    the record gives no week; None after the last window (37 weeks)."""
    week = _gestational_week(payload)
    if week is None:
        return date + PRENATAL_FALLBACK
    target = next((w for w in PRENATAL_WEEKS if w > week), None)
    return date + dt.timedelta(weeks=target - week) if target is not None else None


def due_from_record(
    kind: str, date: dt.date, next_due_date: dt.date | None, payload: Mapping[str, Any] | None
) -> Due | None:
    """The reminder a record (labelled N) sets, or None when its kind sets none. The record's own
    下次随访日期 wins over the schedule."""
    if kind in _FOLLOWUPS:
        return FOLLOWUP_DUE, next_due_date or date + FOLLOWUP_INTERVAL
    if kind in _EXAMS:
        return EXAM_DUE, next_due_date or add_months(date, 12)
    if kind in _CHILD:
        # The schedule by age needs the sealed birth date: the archive sets it; here only the record's date.
        return (CHILD_CHECK_DUE, next_due_date) if next_due_date else None
    if kind in _PRENATAL:
        return PRENATAL_DUE, next_due_date or next_prenatal(date, payload)
    if kind in _POSTPARTUM:
        return PRENATAL_DUE, None
    return None


def due_from_birth(birth: dt.date, today: dt.date) -> list[Due]:
    """The reminders an archive's birth date sets on import: the next child check (under six) and
    the first yearly exam (the 65th birthday, while ahead)."""
    out: list[Due] = []
    child = next_child_check(birth, today)
    if child is not None and birth <= today:
        out.append((CHILD_CHECK_DUE, child))
    exam = next_exam(birth, None, today)
    if exam is not None and exam <= add_months(today, 12):
        out.append((EXAM_DUE, exam))
    return out


def applies(kind: str, birth: dt.date, due_on: dt.date) -> bool:
    """Whether a reminder of this kind is for this person on that day: the yearly exam from 65, the
    child checks until seven (a record of a younger person's exam sets an item all the same)."""
    if kind == EXAM_DUE:
        return add_months(birth, 12 * EXAM_AGE) <= due_on
    if kind == CHILD_CHECK_DUE:
        return due_on < add_months(birth, 12 * 7)
    return True
