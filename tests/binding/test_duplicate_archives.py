"""One person, two archives under the same ID number (an old one closed after a move, and the one
in use): the person binds the one they can see, whichever was imported first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import Live
from ingest_lines import COUNTY, archive, write

from .conftest import ELDER, dataset, person

OLD = 30


@pytest.fixture(params=["old_first", "old_last"])
async def people(request: pytest.FixtureRequest, live: Live, tmp_path: Path) -> Live:
    _, services = live
    rows = dataset()
    me = person(ELDER)
    old = archive(OLD, name=me["name"], id_number=me["id_number"], phone=me["phone"], status="closed")
    rows.insert(1 if request.param == "old_first" else len(rows), old)
    report = await services.ingest.import_file(write(tmp_path / "people.jsonl", rows))
    assert report.exit_code == 0, report
    await services.counties.set(COUNTY, opening=True, phase="all")
    return live


async def test_the_open_archive_is_bound_not_the_closed_one(resident: Any) -> None:
    me = await resident()
    bound = await me.bind(ELDER)
    assert [a["id"] for a in await me.archives()] == [bound["id"]]
    assert bound["open"] is True
