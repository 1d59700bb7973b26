"""A plain (non-editable) install carries its templates, static files and migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("wechat_backend-*.whl")
    return wheel


def test_wheel_runs_from_another_folder_with_its_own_resources(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "wechat_backend/_resources/templates/error.html",
        "wechat_backend/_resources/static/css/app.css",
        "wechat_backend/_resources/config.example.toml",
        "wechat_backend/db/migrations/env.py",
        "wechat_backend/db/migrations/versions/0001_initial_schema.py",
        "handlers/base.py",
    ):
        assert expected in names, expected
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WB_")},
        "WB_SERVER_DATA_DIR": str(elsewhere / "data"),
    }
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from wechat_backend.resources import resource_dir;"
        "print(resource_dir('templates'));"
        "from wechat_backend.__main__ import main; sys.exit(main(['db', 'upgrade']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(site)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(str(site))
    assert "数据库已是最新结构" in done.stdout
