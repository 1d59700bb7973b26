"""One engine factory for ``sqlite+aiosqlite`` and ``postgresql+asyncpg``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """Build the async engine. SQLite runs in WAL mode with foreign keys on, through a single
    connection per process; PostgreSQL gets a bounded pool that drops a connection the server has
    closed before handing it out (a restarted server is not an error page)."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if is_sqlite(url):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
        # One connection, waited for in turn: SQLite has one writer at a time, and writers that
        # find it busy sleep and retry unfairly (second-long tails under load).
        kwargs.update(pool_size=1, max_overflow=0, pool_timeout=60)
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        event.listen(engine.sync_engine, "checkout", _drop_if_closed)
    return engine


def _drop_if_closed(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """Instead of ``pool_pre_ping``, which with asyncpg costs three round trips (BEGIN, an empty
    query, ROLLBACK) on every checkout: a server that restarts or ends a backend closes the
    socket, and asyncpg notices that on its own. The pool then opens a new connection."""
    if dbapi_conn.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def read_session_factory(engine: AsyncEngine) -> async_sessionmaker:
    """Sessions for a read whose only write is its own audit rows. On PostgreSQL each statement
    commits by itself: no BEGIN and COMMIT round trips, and one SELECT is one snapshot anyway. The
    audit rows are still written at the session's commit, before the data leaves, and a failed
    write still fails the request. (SQLite opens no transaction for a read in any case.)"""
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(engine, expire_on_commit=False)
