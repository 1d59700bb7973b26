"""Nothing a person could be recognised by is stored in clear: checked byte for byte against the
imported file, in the SQLite file (WAL included) and in a PostgreSQL dump."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TODAY, pg_dsn_for
from sqlalchemy.engine import make_url

from wechat_backend.app import Services
from wechat_backend.seed import write_jsonl

PERSONAL = ("name", "id_number", "phone", "contact_name", "contact_phone")


def personal_values(path: Path) -> set[str]:
    """Every name, ID number and phone in the file that is not also public text (institution
    names, addresses and consultation phones are stored in clear on purpose)."""
    personal, public = set(), []
    with path.open(encoding="utf-8") as f:
        for raw in f:
            o = json.loads(raw)
            if o["type"] == "institution":
                public += [str(v) for v in o.values()]
            elif o["type"] == "archive":
                personal |= {o[k] for k in PERSONAL if o.get(k)}
            elif o.get("doctor"):
                personal.add(o["doctor"])
    return {v for v in personal if not any(v in p for p in public)}


def database_bytes(db_url: str, tmp_path: Path) -> bytes:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        files = [Path(url.database + suffix) for suffix in ("", "-wal", "-shm")]
        assert files[0].exists()
        return b"".join(f.read_bytes() for f in files if f.exists())
    if not shutil.which("pg_dump"):
        pytest.fail("pg_dump is needed to check the PostgreSQL database")
    dump = subprocess.run(["pg_dump", "--no-owner", pg_dsn_for(db_url)], capture_output=True, check=True)
    return dump.stdout


async def test_seeded_archives_leave_no_plaintext_personal_data(
    services: Services, tmp_path: Path, db_url: str
) -> None:
    path = tmp_path / "seed.jsonl"
    write_jsonl(path, 1000, seed=7, today=TODAY)
    report = await services.ingest.import_file(path)
    assert report.rejected == 0, report.errors[:5]
    assert report.inserted > 3000
    needles = personal_values(path)
    assert len(needles) > 2000  # names, ID numbers and phones of 1,000 people
    stored = database_bytes(db_url, tmp_path)
    assert len(stored) > 100_000
    assert found_in(needles, stored) == []


def found_in(needles: set[str], blob: bytes) -> list[str]:
    """Each needle as UTF-8 or as lower-case hex (how pg_dump writes bytea), in one regex pass."""
    forms = {v.encode().lower(): v for v in needles} | {v.encode().hex().encode(): v for v in needles}
    pattern = re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    return sorted({forms[m.group()] for m in pattern.finditer(blob.lower())})


def test_the_leak_check_itself_finds_a_planted_value() -> None:
    blob = b"\x00" + "刘淑珍".encode() + b"...\\x" + b"13906351234".hex().encode()
    assert found_in({"刘淑珍", "13906351234", "王芳"}, blob) == ["13906351234", "刘淑珍"]
