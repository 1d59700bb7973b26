"""INSERT … ON CONFLICT (upstream_id) DO UPDATE … WHERE the stored version is lower.

PostgreSQL takes the batch through ``COPY`` into a temporary staging table and one
``INSERT … SELECT``: binary COPY is several times cheaper, on both sides of the connection, than a
multi-row VALUES statement. The staging table empties itself at commit, so each table is
upserted at most once per transaction (the import writes each table once per batch). SQLite takes
the same statement with executemany.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession


async def upsert(s: AsyncSession, table: Table, rows: list[dict[str, Any]], keep: set[str]) -> None:
    """Write ``rows``; on an existing ``upstream_id`` replace every column but ``keep``, and only if
    the incoming version is higher (the version rule holds even against a concurrent importer)."""
    if not rows:
        return
    if s.bind.dialect.name == "postgresql":
        await _copy_upsert(s, table, rows, keep)
        return
    stmt = sqlite_insert(table)
    changed = {c: stmt.excluded[c] for c in rows[0] if c not in keep}
    stmt = stmt.on_conflict_do_update(
        index_elements=["upstream_id"], set_=changed, where=table.c.version < stmt.excluded.version
    )
    await s.execute(stmt, rows)


async def _copy_upsert(s: AsyncSession, table: Table, rows: list[dict[str, Any]], keep: set[str]) -> None:
    columns = list(rows[0])
    stage = f"stage_{table.name}"
    names = ", ".join(columns)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keep)
    driver = await _driver(s)
    # Table and column names come from our own models, never from input.
    await driver.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "
        f"AS SELECT {names} FROM {table.name} WITH NO DATA"
    )
    await driver.copy_records_to_table(stage, records=[tuple(r[c] for c in columns) for r in rows], columns=columns)
    await driver.execute(
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {stage} "
        f"ON CONFLICT (upstream_id) DO UPDATE SET {updates} WHERE {table.name}.version < EXCLUDED.version"
    )


async def lookup(s: AsyncSession, table: Table, column: str, keys: set[str]) -> dict[str, Any]:
    """``{upstream_id: row[column]}`` for the given upstream ids. On PostgreSQL one array parameter
    (``= ANY($1)``) instead of a thousand expanded IN parameters, which cost more to compile and
    plan than the lookup itself."""
    if not keys:
        return {}
    if s.bind.dialect.name == "postgresql":
        driver = await _driver(s)
        rows = await driver.fetch(
            f"SELECT upstream_id, {column} FROM {table.name} WHERE upstream_id = ANY($1::text[])", list(keys)
        )
        return {r[0]: r[1] for r in rows}
    result = await s.execute(select(table.c.upstream_id, table.c[column]).where(table.c.upstream_id.in_(keys)))
    return dict(result.all())


async def _driver(s: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction. SQLAlchemy opens the
    database transaction lazily, on its first own statement; a statement sent straight to the
    driver before that would run in autocommit (and a staging table ``ON COMMIT DELETE ROWS``
    would empty itself at once). So make sure the transaction is open first."""
    conn = await s.connection()
    driver = (await conn.get_raw_connection()).driver_connection
    if not driver.is_in_transaction():
        await s.execute(select(1))
    return driver
