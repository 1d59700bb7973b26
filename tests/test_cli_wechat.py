"""`menu push` and `check` as an operator runs them, against the offline platform of a live app."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys

import pytest
from conftest import Live
from tornado.httpclient import AsyncHTTPClient


@pytest.fixture
def platform(live: Live, db_url: str, redis_url: str) -> tuple[str, dict[str, str]]:
    """The live app (sandbox mounted) and the environment a CLI process needs to reach it."""
    base, services = live
    w = services.settings.wechat
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {
        "WB_SERVER_DATA_DIR": services.settings.server.data_dir,
        "WB_SERVER_PUBLIC_BASE_URL": base,
        "WB_DATABASE_URL": db_url,
        "WB_REDIS_URL": redis_url,
        "WB_WECHAT_API_BASE_URL": w.api_base_url,
        "WB_WECHAT_APP_ID": w.app_id,
        "WB_WECHAT_APP_SECRET": w.app_secret,
        "WB_WECHAT_TOKEN": w.token,
        "WB_WECHAT_ENCODING_AES_KEY": w.encoding_aes_key,
    }
    return base, env


async def cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wechat_backend",
        *args,
        env=env | {"WB_REDIS_KEY_PREFIX": "cli" + secrets.token_hex(3)},  # no token cached between runs
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode() + err.decode()


async def get_json(url: str) -> object:
    return json.loads((await AsyncHTTPClient().fetch(url)).body)


async def test_menu_push_creates_what_the_platform_then_shows(platform) -> None:
    base, env = platform
    code, output = await cli(env, "menu", "push")
    assert code == 0, output
    assert "我的档案" in output
    menus = await get_json(base + "/sandbox/api/menu")
    names = [b["name"] for b in menus["menu"]["button"]]
    assert names == ["我的档案", "随访提醒", "服务"]
    assert menus["menu"]["button"][0]["url"] == base + "/r/home"
    (staff,) = menus["conditionalmenu"]
    assert [b["name"] for b in staff["button"]][-1] == "工作台"


async def test_check_passes_then_explains_an_ip_whitelist_refusal(platform) -> None:
    base, env = platform
    await cli(env, "db", "upgrade")
    code, output = await cli(env, "check")
    assert code == 0, output
    assert "✓ 数据库" in output and "✓ Redis" in output and "✓ 微信接口" in output
    fault = {"api": "cgi-bin/token", "errcode": 40164, "count": 0}
    await AsyncHTTPClient().fetch(base + "/sandbox/api/faults", method="POST", body=json.dumps(fault))
    code, output = await cli(env, "check")
    assert code == 1
    assert "IP 白名单" in output and "40164" in output
    assert "Traceback" not in output
