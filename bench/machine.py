"""What every benchmark records about the machine and the code it measured."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent


def machine_info(**extra: Any) -> dict[str, Any]:
    """CPUs, Python, platform, load average, and the commit (flagging uncommitted product code)."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_start": os.getloadavg(),
        "git": None,
        **extra,
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "wechat_backend", "handlers"],
            cwd=PROJECT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        info["git"] = head + (" + uncommitted changes in wechat_backend/ or handlers/" if dirty else "")
    return info
