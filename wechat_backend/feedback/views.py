"""What the feedback pages are given: frozen views, already opened and masked (no ORM rows)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Inbox:
    """Where a question goes, as the asker is told: an institution, or the city's inbox."""

    name: str  # the institution's name; "" for the city's inbox (or an institution not yet imported)
    consult_phone: str  # for urgent matters: the institution's, else the city's; "" when none
    city: bool


@dataclass(frozen=True)
class AskForm:
    archive_id: str | None  # the archive page the question is asked from
    to: Inbox


@dataclass(frozen=True)
class Asked:
    public_id: str
    to: Inbox


@dataclass(frozen=True)
class MyQuestion:
    """One line of 我的留言."""

    public_id: str
    asked_at: dt.datetime
    status: str  # open, answered, closed
    preview: str
    to: Inbox


@dataclass(frozen=True)
class QuestionPage:
    """A question and its answer, for its asker."""

    public_id: str
    text: str
    asked_at: dt.datetime
    channel: str
    status: str
    reply: str | None
    replied_at: dt.datetime | None
    to: Inbox


@dataclass(frozen=True)
class InboxRow:
    """One question in the staff inbox: no text (reading one is audited), no name."""

    public_id: str
    asked_at: dt.datetime
    institution: str  # "" for the city's inbox
    institution_code: str | None
    county: str
    channel: str
    route: str
    status: str
    asker: str  # a short tag of the asker's identity, to tell askers apart
    overdue: bool
    delivery: str | None


@dataclass(frozen=True)
class InboxList:
    rows: list[InboxRow]
    status: str  # the filter: open, answered, all
    page: int
    more: bool
    open_count: int
    overdue_count: int
    answered_count: int
    overdue_hours: int


@dataclass(frozen=True)
class InboxQuestion:
    """A question opened by staff (its reading is audited)."""

    row: InboxRow
    text: str
    reply: str | None
    replied_at: dt.datetime | None
    replied_by: str  # the answering staff member's name, "" when unknown
    about: str | None  # the archive's masked name (刘**), when asked about one
    overdue_hours: int


def is_overdue(status: str, asked_at: dt.datetime, now: dt.datetime, hours: int) -> bool:
    """Unanswered for longer than ``[staff] feedback_overdue_hours``."""
    return status == "open" and now - asked_at > dt.timedelta(hours=hours)


def asker_tag(identity_public_id: str) -> str:
    """Enough of the asker's opaque id to see that two questions come from the same person."""
    return identity_public_id[-4:]


def preview(text: str, limit: int = 40) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"
