"""`wechat-backend demo` on an empty data folder: seeds, imports, opens every county, serves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_seeds_opens_every_county_and_serves_healthz(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {
        "WB_SERVER_DATA_DIR": str(tmp_path / "data"),
        "WB_SERVER_PORT": str(port),
        "WB_SERVER_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "wechat_backend", "demo", "--archives", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        body = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert body == {"status": "ok"}, proc.stderr.read() if proc.poll() is not None else "no answer"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert "身份证号" in out and "均为合成数据" in out
    assert "Traceback" not in err
    listed = subprocess.run(
        [sys.executable, "-m", "wechat_backend", "county", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    rows = [line for line in listed.stdout.splitlines() if line[:6].isdigit()]
    assert len(rows) == 8 and all("是" in row and "全部居民" in row for row in rows)
