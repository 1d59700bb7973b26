"""Dependency direction: handlers -> services -> storage. Checked on the source, not by convention."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    return {n.split(".")[0] for n in names}


def test_services_never_import_tornado() -> None:
    allowed = {"app.py"}  # the composition root builds the Tornado application
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "wechat_backend").rglob("*.py")
        if p.name not in allowed and "sandbox" not in p.parts and "tornado" in imports_of(p)
    ]
    assert offenders == []


def test_handlers_never_touch_the_database_or_redis_directly() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "handlers").rglob("*.py")
        if imports_of(p) & {"sqlalchemy", "redis", "asyncpg", "aiosqlite"}
    ]
    assert offenders == []


def full_imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
    return names | {
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0
    }


def test_handlers_and_the_application_do_not_import_each_other() -> None:
    """Handlers know the services (wechat_backend.services), never the application that mounts them;
    only wechat_backend/app.py imports handlers."""
    handlers = [p for p in (ROOT / "handlers").rglob("*.py") if "wechat_backend.app" in full_imports_of(p)]
    assert handlers == []
    mounting = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "wechat_backend").rglob("*.py")
        if p.name != "app.py" and "handlers" in imports_of(p)
    ]
    assert mounting == []
