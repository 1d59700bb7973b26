"""The schema: migrations and models agree, on every backend."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import pg_dsn_for
from sqlalchemy import text

from wechat_backend.db import current_revision
from wechat_backend.db.engine import create_engine, is_sqlite
from wechat_backend.db.models import Base
from wechat_backend.services import Services


async def test_migrations_build_exactly_the_models(services: Services) -> None:
    assert await current_revision(services.engine) is not None
    async with services.engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    assert diff == []


async def test_a_connection_the_server_ended_is_replaced_not_shown_as_an_error(db_url: str) -> None:
    # PostgreSQL ends backends on restart, on idle timeouts and by hand (pg_terminate_backend);
    # the next request must get a fresh connection, not a 500.
    if is_sqlite(db_url):
        pytest.skip("SQLite has no server to end the connection")
    engine = create_engine(db_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            first = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = await asyncpg.connect(pg_dsn_for(db_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the closed socket reaches the event loop, as between requests
        async with engine.connect() as conn:
            second = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second != first
    finally:
        await engine.dispose()
