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

from wechat_backend.seed import write_jsonl
from wechat_backend.services import Services

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
    """Needles present in ``blob`` as UTF-8, also inside bytea hex literals (how pg_dump writes
    binary columns). Every CJK run (names, with the middle dot) and every digit run (ID numbers,
    phones) is cut into all its substrings of the needles' lengths, then looked up in one set."""
    blob += b"".join(bytes.fromhex(h.decode()) for h in re.findall(rb"\\x((?:[0-9a-f]{2})+)", blob))
    lengths = {len(v) for v in needles}
    seen: set[str] = set()
    runs = re.findall(rb"(?:[\xe4-\xe9][\x80-\xbf]{2}|\xc2\xb7)+|[0-9Xx]{11,}", blob)
    for raw in runs:
        text = raw.decode("utf-8", "ignore").upper()
        for n in lengths:
            seen.update(text[i : i + n] for i in range(len(text) - n + 1))
    return sorted(needles & seen)


def test_the_leak_check_itself_finds_a_planted_value() -> None:
    blob = b"\x00" + "刘淑珍".encode() + b" \\x" + b"11010519491231002X".hex().encode() + " 王".encode()
    needles = {"刘淑珍", "11010519491231002X", "王芳", "13906351234"}
    assert found_in(needles, blob) == ["11010519491231002X", "刘淑珍"]
