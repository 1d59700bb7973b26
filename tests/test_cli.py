"""The command line as an operator uses it: real processes, exit codes, Chinese messages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ingest_lines import archive, institution, record, write


@pytest.fixture
def cli(tmp_path: Path, db_url: str):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {"WB_SERVER_DATA_DIR": str(tmp_path / "data"), "WB_DATABASE_URL": db_url, "WB_SERVER_MODE": "demo"}

    def run(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wechat_backend", *args],
            env=env | (extra_env or {}),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )

    return run


def test_import_exit_codes_follow_the_contract(cli, tmp_path: Path) -> None:
    good = write(tmp_path / "good.jsonl", [institution(), archive(1), record(1, 1)])
    bad = write(tmp_path / "bad.jsonl", [institution(), "{oops", archive(2, id_number="371522195503101231")])
    assert cli("db", "upgrade").returncode == 0
    done = cli("import", str(good))
    assert done.returncode == 0, done.stderr
    assert "新增 3" in done.stdout
    again = cli("import", str(good))
    assert again.returncode == 0 and "未变 3" in again.stdout
    partial = cli("import", str(bad))
    assert partial.returncode == 1
    assert "第 2 行" in partial.stderr and "第 3 行" in partial.stderr
    assert "371522195503101231" not in partial.stderr + partial.stdout
    missing = cli("import", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and "找不到导入文件" in missing.stderr
    assert "Traceback" not in missing.stderr + partial.stderr


def test_import_before_migration_says_what_to_do(tmp_path: Path, cli) -> None:
    path = write(tmp_path / "x.jsonl", [institution()])
    done = cli("import", str(path), extra_env={"WB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/empty.db"})
    assert done.returncode == 2 and "db upgrade" in done.stderr


def test_county_switch_and_list(cli, tmp_path: Path) -> None:
    cli("db", "upgrade")
    cli("import", str(write(tmp_path / "i.jsonl", [institution(), archive(1)])))
    listed = cli("county", "list")
    assert listed.returncode == 0 and "371522" in listed.stdout and "莘县" in listed.stdout and "否" in listed.stdout
    switched = cli("county", "set", "371522", "--opening", "on", "--phase", "all")
    assert switched.returncode == 0, switched.stderr
    assert "是" in switched.stdout and "全部居民" in switched.stdout
    unknown = cli("county", "set", "999999", "--opening", "on")
    assert unknown.returncode == 2 and "999999" in unknown.stderr
    nothing = cli("county", "set", "371522")
    assert nothing.returncode == 2 and "--opening" in nothing.stderr


def test_a_bad_setting_stops_with_one_line(cli) -> None:
    done = cli("county", "list", extra_env={"WB_SERVER_PORT": "eighty"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "server.port" in done.stderr


def test_keys_new_prints_a_usable_key(cli) -> None:
    done = cli("keys", "new", "k2")
    assert done.returncode == 0 and done.stdout.startswith("k2=")
    import base64

    assert len(base64.b64decode(done.stdout.strip().split("=", 1)[1])) == 16


def test_worker_once_sends_a_batch_and_says_what_it_did(cli, tmp_path: Path) -> None:
    early = cli("worker", "--once", extra_env={"WB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/empty.db"})
    assert early.returncode == 2 and "db upgrade" in early.stderr and "Traceback" not in early.stderr
    assert cli("db", "upgrade").returncode == 0
    done = cli("worker", "--once")
    assert done.returncode == 0, done.stderr
    assert "推送：已发送 0 条，稍后重试 0 条，跳过 0 条，已放弃 0 条" in done.stdout


def test_worker_runs_until_sigterm(cli, tmp_path: Path, db_url: str) -> None:
    assert cli("db", "upgrade").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {"WB_SERVER_DATA_DIR": str(tmp_path / "data"), "WB_DATABASE_URL": db_url, "WB_SERVER_MODE": "demo"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wechat_backend", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # logging goes to stderr
            if "worker started" in line:
                break
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "worker stopped" in err and "Traceback" not in err
