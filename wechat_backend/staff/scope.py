"""What a staff member may do (by role) and see (by scope): pure functions, no I/O.

Roles: ``city`` (every county), ``county`` (one county), ``institution`` (one institution). A route
a role may not use at all answers 403; an object outside the caller's scope answers the same 404 as
an object that does not exist, so scope cannot be probed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

ROLES = ("city", "county", "institution")
ROLE_LABELS = {"city": "市级管理员", "county": "县级管理员", "institution": "机构工作人员"}

# Which roles may use each part of the 工作台.
# fmt: off
ABILITIES: dict[str, frozenset[str]] = {
    "home":            frozenset(ROLES),
    "county_settings": frozenset({"city", "county"}),
    "open_archives":   frozenset({"county", "institution"}),
    "stats":           frozenset(ROLES),
    "inbox":           frozenset(ROLES),
    "posters":         frozenset(ROLES),
    "audit":           frozenset({"city", "county"}),
}
# fmt: on

# A staff session needs an SMS code verified at most this long ago (and the linked WeChat identity).
SMS_FACTOR_MAX_AGE = dt.timedelta(hours=12)


@dataclass(frozen=True)
class StaffMember:
    """The logged-in staff member, as handlers and services see them (name and phone decrypted
    only when a page shows them)."""

    id: int
    public_id: str
    role: str
    county_code: str | None
    institution_code: str | None
    name: str = ""

    @property
    def actor_id(self) -> str:
        """What the audit log names the staff member by."""
        return f"staff:{self.public_id}"


def may(member: StaffMember, ability: str) -> bool:
    return member.role in ABILITIES.get(ability, frozenset())


def covers(member: StaffMember, county_code: str | None, institution_code: str | None = None) -> bool:
    """Whether an object of this county (and institution, if it has one) is in the member's scope.
    An institution member covers only objects of their own institution; an object with no
    institution (the city inbox) is covered by city staff only, or county staff of its county."""
    if member.role == "city":
        return True
    if member.role == "county":
        return county_code is not None and county_code == member.county_code
    return institution_code is not None and institution_code == member.institution_code


def sms_factor_fresh(verified_at: dt.datetime | None, now: dt.datetime) -> bool:
    return verified_at is not None and now - verified_at < SMS_FACTOR_MAX_AGE
