"""Whether an archive is in one of the notice's key groups, and when an age boundary changes that."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..privacy.visibility import KEY_PROGRAMMES, age_on


def _birthday(birth: dt.date, years: int) -> dt.date:
    try:
        return birth.replace(year=birth.year + years)
    except ValueError:  # born on 29 February: the birthday falls on 1 March in common years
        return dt.date(birth.year + years, 3, 1)


def key_group(fields: Mapping[str, Any], today: dt.date) -> tuple[bool, dt.date | None]:
    """(in a key group today, the next day an age boundary may change it).

    The groups are the ones the rollout phase ``key_populations`` opens (``visibility.in_key_population``):
    under 7, 65 or older, pregnant/postpartum (the maternal programme), hypertension, diabetes. The
    review date is the 7th birthday for a child and the 65th for anyone younger than 65; None when
    no age boundary is ahead.
    """
    birth = dt.date.fromisoformat(fields["birth_date"])
    programmes = frozenset(fields.get("programmes") or ())
    age = age_on(birth, today)
    member = age >= 65 or 0 <= age < 7 or bool(programmes & KEY_PROGRAMMES) or "maternal" in programmes
    if age < 7:
        review = _birthday(birth, 7)
    elif age < 65:
        review = _birthday(birth, 65)
    else:
        review = None
    return member, review
