"""Reading tests run on the binding data set (tests/binding/conftest.py) with service records added:
residents bind through the real flow, then read through the JSON API or the pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from binding.conftest import ELDER, TEEN, people, resident
from conftest import Live
from ingest_lines import record, write

__all__ = ["people", "resident"]

# 刘淑珍 (ELDER): three 高血压 follow-ups, one exam, and two records a resident must never see.
ELDER_RECORDS = [
    record(
        1,
        ELDER,
        date="2026-04-08",
        next_due_date="2026-07-08",
        payload={"sbp": 152, "dbp": 95, "classification": "2"},
    ),
    record(
        2,
        ELDER,
        date="2026-07-10",
        next_due_date="2026-10-10",
        payload={"sbp": 138, "dbp": 86, "classification": "1"},
    ),
    record(
        3,
        ELDER,
        date="2026-10-12",
        next_due_date="2027-01-12",
        payload={"sbp": 132, "dbp": 82, "classification": "1"},
    ),
    record(4, ELDER, kind="health_exam", date="2026-05-20", next_due_date=None, diagnosis_codes=[], payload={}),
    # Restricted: a psychiatric follow-up (a kind never shown) and a follow-up naming a sensitive term.
    record(5, ELDER, kind="severe_mental_followup", date="2026-09-01", diagnosis_codes=["F20.0"], payload={}),
    record(6, ELDER, date="2026-08-01", payload={"sbp": 140, "dbp": 90, "advice": "抗痨治疗期间注意血压"}),
]
TEEN_RECORDS = [record(20, TEEN, kind="outpatient", date="2026-09-09", diagnosis_codes=["J06.9"], payload={})]


@pytest.fixture
async def readers(people: Live, tmp_path: Path) -> Live:
    """The data set with its records imported."""
    _, services = people
    report = await services.ingest.import_file(write(tmp_path / "records.jsonl", ELDER_RECORDS + TEEN_RECORDS))
    assert report.exit_code == 0, report
    return people


async def bound(resident: Any, n: int, nickname: str = "居民", **kw: Any) -> tuple[Any, str]:
    """A resident who bound archive ``n``: (the resident, the archive's id)."""
    who = await resident(nickname)
    archive = await who.bind(n, **kw)
    return who, archive["id"]
