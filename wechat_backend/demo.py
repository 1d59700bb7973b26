"""``wechat-backend demo``: a working product on one machine with synthetic data only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from .db import upgrade
from .db.models import Archive, Institution, Staff
from .notify.kinds import BINDING_ADDED, KINDS
from .seed import write_jsonl
from .services import Services

SENSITIVE = {"severe_mental", "tuberculosis", "hiv"}
DEMO_FIELDS = {"thing1": "kind", "time2": "date", "thing3": "institution", "thing4": "name"}


def demo_templates(settings: Any) -> dict[str, dict[str, Any]]:
    """Template ids for the sandbox (which accepts any), for each kind the configuration leaves
    empty, so the demo shows the reminders and record notices a certified account would send."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        if not settings.templates.spec(kind).template_id:
            fields = DEMO_FIELDS if kind != BINDING_ADDED else {"thing1": "kind", "time2": "date"}
            out[kind] = {"template_id": f"demo_{kind}", "fields": dict(fields)}
    return out


async def prepare_demo(services: Services, *, archives: int, seed: int, progress: Callable[..., Any]) -> list[dict]:
    """Migrate, seed and import once (an existing demo database is reused), open every county in
    phase ``all``, and return a few residents who can bind."""
    await upgrade(services.engine)
    path = services.settings.data_dir / "demo-archives.jsonl"
    async with services.sessions() as s:
        have = await s.scalar(select(func.count()).select_from(Archive))
    if not have:
        with progress(total=archives, desc="生成演示档案", unit="份") as bar:
            await asyncio.to_thread(write_jsonl, path, archives, seed, progress=bar.update)
        with progress(total=path.stat().st_size, desc="导入", unit="B", unit_scale=True) as bar:
            report = await services.ingest.import_file(path, progress=bar.update)
        services.ingest.close()  # the parse/encrypt workers are not needed while serving
        if report.rejected:
            raise RuntimeError(f"demo data rejected: {report.errors[:3]}")
    await services.counties.set_all(opening=True, phase="all")
    return await asyncio.to_thread(pick_residents, path)


# The demo's staff: synthetic phones whose codes land in the sandbox's SMS inbox.
DEMO_STAFF = (
    ("city", "市级管理员（演示）", "13900000001"),
    ("county", "县级管理员（演示）", "13900000002"),
    ("institution", "卫生院工作人员（演示）", "13900000003"),
)


async def ensure_demo_staff(services: Services) -> list[tuple[str, str, str]]:
    """One staff member per role (city; the first county; its first institution), once; returns
    (role label, name, phone) for the demo's start-up message."""
    from .staff.scope import ROLE_LABELS

    async with services.sessions() as s:
        have = await s.scalar(select(func.count()).select_from(Staff))
        first = (
            await s.execute(select(Institution.county_code, Institution.code).order_by(Institution.code).limit(1))
        ).first()
    if first is None:
        return []
    if not have:
        county, institution = first
        for role, name, phone in DEMO_STAFF:
            await services.staff.add(
                name=name,
                phone=phone,
                role=role,
                county_code=county if role == "county" else None,
                institution_code=institution if role == "institution" else None,
                actor="demo",
            )
    return [(ROLE_LABELS[role], name, phone) for role, name, phone in DEMO_STAFF]


def pick_residents(path: Any, limit: int = 6) -> list[dict]:
    """Adults whose archive is open and normal, one per county, from the demo file."""
    counties: dict[str, str] = {}
    picked: dict[str, dict] = {}
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        for raw in f:
            o = json.loads(raw)
            if o["type"] == "institution":
                counties[o["code"]] = o["county_name"]
            elif (
                o["type"] == "archive"
                and o["status"] == "normal"
                and o["open_to_resident"]
                and o.get("id_number")
                and o.get("phone")
                and not SENSITIVE & set(o.get("programmes") or ())
                and o["institution_code"] in counties
                and o["birth_date"] < "2000-01-01"
            ):
                county = counties[o["institution_code"]]
                picked.setdefault(county, {**o, "county_name": county})
            if len(picked) >= limit:
                break
    return list(picked.values())
