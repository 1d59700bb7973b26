"""Builders for hand-made ingest lines (tests that need a specific line, not a synthetic file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wechat_backend.validators import id_check_char

COUNTY = "371522"


def id_number(birth: str = "19550310", seq: str = "123", region: str = COUNTY) -> str:
    first17 = region + birth + seq
    return first17 + id_check_char(first17)


def institution(**over: Any) -> dict[str, Any]:
    return {
        "type": "institution",
        "upstream_id": "inst-1",
        "version": 1,
        "code": f"{COUNTY}001",
        "name": "莘县燕店镇卫生院",
        "county_code": COUNTY,
        "county_name": "莘县",
        "consult_phone": "0635-7123456",
        "address": "莘县燕店镇政府街1号",
        **over,
    }


def archive(n: int = 1, **over: Any) -> dict[str, Any]:
    return {
        "type": "archive",
        "upstream_id": f"arc-{n}",
        "version": 1,
        "archive_no": f"{COUNTY}001101{n:05d}",
        "institution_code": f"{COUNTY}001",
        "name": "刘淑珍",
        "id_number": id_number(seq=f"{n % 1000:03d}"),
        "gender": "1" if n % 2 else "2",
        "birth_date": "1955-03-10",
        "status": "normal",
        "open_to_resident": True,
        "phone": f"1390635{n:04d}",
        "programmes": ["hypertension", "elderly"],
        "basic_info": {"past_illness": [{"code": "2", "date": "2015-06"}]},
        **over,
    }


def record(n: int = 1, archive_n: int = 1, **over: Any) -> dict[str, Any]:
    return {
        "type": "record",
        "upstream_id": f"rec-{n}",
        "version": 1,
        "archive_upstream_id": f"arc-{archive_n}",
        "kind": "hypertension_followup",
        "date": "2026-10-08",
        "next_due_date": "2027-01-08",
        "institution_code": f"{COUNTY}001",
        "doctor": "王医生",
        "diagnosis_codes": ["I10"],
        "payload": {"sbp": 142, "dbp": 88},
        **over,
    }


def write(path: Path, objs: list[Any]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for o in objs:
            f.write((o if isinstance(o, str) else json.dumps(o, ensure_ascii=False)) + "\n")
    return path
