"""`menu push` and `check` as an operator runs them, against the offline platform of a live app."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import Live
from redis.exceptions import ResponseError
from tornado.httpclient import AsyncHTTPClient
from wechat_sample import fixture, sign

from wechat_backend.__main__ import _redis_notes
from wechat_backend.config import Settings
from wechat_backend.wechat.callback import plaintext_refused_key


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


async def cli(env: dict[str, str], *args: str, key_prefix: str | None = None) -> tuple[int, str]:
    """Runs with a Redis key prefix of its own (no token cached between runs) unless given the app's."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wechat_backend",
        *args,
        env=env | {"WB_REDIS_KEY_PREFIX": key_prefix or "cli" + secrets.token_hex(3)},
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


def warnings(output: str, about: str) -> list[str]:
    return [line for line in output.splitlines() if about in line]


async def test_check_warns_when_redis_may_evict_keys(platform, live: Live) -> None:
    _, env = platform
    _, services = live
    assert services.redis is not None
    client = services.redis.client
    await cli(env, "db", "upgrade")
    (before,) = (await client.config_get("maxmemory-policy")).values()
    assert before == "noeviction"
    code, output = await cli(env, "check")
    assert code == 0 and "✓ Redis 内存策略：noeviction" in output and not warnings(output, "丢弃键")
    try:
        await client.config_set("maxmemory-policy", "allkeys-lru")  # the whole server: restored below
        code, output = await cli(env, "check")
    finally:
        await client.config_set("maxmemory-policy", before)
    assert code == 0, output  # a warning, not a failure
    (line,) = warnings(output, "maxmemory-policy")
    evicts = "内存满时会丢弃键（验证码、频率限制、登录会话），请设为 noeviction"
    assert line == f"! Redis 的 maxmemory-policy 为 allkeys-lru：{evicts}"
    (templates,) = warnings(output, "模板消息")  # no [templates] here: the pushes that would not go
    assert "随访提醒" in templates and "已认证的服务号" in templates
    assert "检查通过，另有 2 条提醒" in output


async def test_check_warns_after_a_plaintext_push_was_refused(platform, live: Live) -> None:
    base, env = platform
    _, services = live
    await cli(env, "db", "upgrade")
    prefix = services.settings.redis.key_prefix  # the app's, where the callback leaves its marker
    code, output = await cli(env, "check", key_prefix=prefix)
    assert code == 0 and not warnings(output, "明文"), output
    # what the platform sends in 明文模式, correctly signed, while the key is configured
    timestamp, nonce = str(int(services.clock.time())), "20261125"
    query = {
        "signature": sign(services.settings.wechat.token, timestamp, nonce),
        "timestamp": timestamp,
        "nonce": nonce,
    }
    body = fixture("event_unsubscribe", FromUserName="o" + secrets.token_hex(8), CreateTime=timestamp)
    r = await AsyncHTTPClient().fetch(f"{base}/wechat?{urlencode(query)}", method="POST", body=body, raise_error=False)
    assert r.code == 403
    code, output = await cli(env, "check", key_prefix=prefix)
    assert code == 0, output
    (line,) = warnings(output, "明文")
    assert line.startswith("! 微信消息：已配置 encoding_aes_key，但仍收到明文推送（最近一次 2026-11-25 10:00）")
    assert "设置与开发 → 基本配置" in line and "兼容模式或安全模式" in line
    assert "检查通过，另有" in output


class RefusingRedis:
    """A managed Redis that has CONFIG disabled, holding a plaintext marker."""

    def __init__(self, settings: Settings) -> None:
        self._marker = plaintext_refused_key(settings)

    async def config_get(self, name: str) -> dict[str, str]:
        raise ResponseError("unknown command 'CONFIG'")

    async def get(self, key: str) -> Any:
        return b"not a time" if key == self._marker else None


async def test_check_says_when_it_cannot_read_the_redis_policy(settings: Settings) -> None:
    assert settings.wechat.encoding_aes_key  # demo mode made one
    lines = await _redis_notes(settings, RefusingRedis(settings))
    assert lines[0].startswith("! Redis 内存策略：无法检查（CONFIG 命令被禁用或无权限）")
    assert "noeviction" in lines[0] and not any("appendonly" in line for line in lines)
    (plaintext,) = [line for line in lines if "明文" in line]
    assert plaintext.startswith("! 微信消息：已配置 encoding_aes_key，但仍收到明文推送，已拒绝")  # no time to show
