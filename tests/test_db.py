"""The schema: migrations and models agree, on every backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from wechat_backend.app import Services
from wechat_backend.db import current_revision
from wechat_backend.db.models import Base


async def test_migrations_build_exactly_the_models(services: Services) -> None:
    assert await current_revision(services.engine) is not None
    async with services.engine.connect() as conn:
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    assert diff == []
