"""The floor of ``bench/records.py``: a server that does a resident's archive view's I/O and nothing else.

It answers the four routes the benchmark reads (cover, record list, one record, trends) and for
each view waits on what the real server waits on — the session GET in Redis (the same key, so the
same value comes back), then one transaction on an asyncpg pool as large as the real server's:
BEGIN, the service's own SELECTs (their SQL compiled from ``wechat_backend.records.service`` for
asyncpg, so the text and the plans are the real ones), one audit row INSERT into ``audit_log`` and
COMMIT — but it decrypts nothing, decides no visibility, builds no view: the answer carries just
the ids the benchmark checks (the archive's, the records' as stored, the record's).

Per view, as the real server runs it (read off PostgreSQL's statement log on a run of the real one):

- cover, record list, trends: BEGIN, the archive with its binding, county and institution
  (``BOUND_BY_PUBLIC_ID``), the archive's records (``RECORDS_OF``), the audit INSERT, COMMIT;
- one record: BEGIN, the record's archive (``RECORD_BY_PUBLIC_ID``), the archive by id
  (``BOUND_BY_ID``), the archive's records, the audit INSERT, COMMIT.

What the floor leaves out besides the application work: the real session load restarts the idle
timer with a SET once a minute per session (not per request), and the real server writes its audit
row's reason columns (NULL for a read) — the INSERT names the same columns.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from typing import Any

import asyncpg
import harness
import tornado.web
from sqlalchemy import bindparam, insert
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from wechat_backend.app import settle_heap
from wechat_backend.audit_chain import COLUMNS as CHAINED
from wechat_backend.config import Settings
from wechat_backend.db.models import AuditEvent
from wechat_backend.records.service import BOUND_BY_ID, BOUND_BY_PUBLIC_ID, READ, RECORD_BY_PUBLIC_ID, RECORDS_OF
from wechat_backend.redis_client import open_redis
from wechat_backend.web_sessions import session_key

access = logging.getLogger("wechat_backend.access")  # the line the benchmark reads server times from
PAGE_SIZE = 20


class Statement:
    """A SQLAlchemy statement compiled for asyncpg: its SQL text and its parameters in order."""

    def __init__(self, stmt: Any) -> None:
        compiled = stmt.compile(dialect=pg_asyncpg.dialect())
        self.sql = str(compiled)
        self._order = list(compiled.positiontup or ())
        self._defaults = dict(compiled.params)

    def args(self, **values: Any) -> list[Any]:
        merged = self._defaults | values
        return [merged[name] for name in self._order]


BOUND = Statement(BOUND_BY_PUBLIC_ID)
BOUND_PK = Statement(BOUND_BY_ID)
RECORDS = Statement(RECORDS_OF)
RECORD_ARCHIVE = Statement(RECORD_BY_PUBLIC_ID)
# What an insert writes: every chained column but the ones the sealer sets later.
AUDIT_COLUMNS = tuple(c for c in CHAINED if c not in ("id", "seq"))
# The audit row as the real server writes it (``audit.record`` + its commit hook): the same columns,
# the same casts, ``RETURNING id`` included.
AUDIT = Statement(insert(AuditEvent.__table__).values({c: bindparam(c) for c in AUDIT_COLUMNS}))


class Floor:
    def __init__(self, pool: asyncpg.Pool, redis: Any, key_prefix: str) -> None:
        self.pool, self.redis, self.prefix = pool, redis, key_prefix

    async def identity(self, token: str) -> int | None:
        raw = await self.redis.get(session_key(self.prefix, token))
        return int(json.loads(raw)["i"]) if raw else None

    async def view(self, me: int, section: str, *, archive: str = "", record: str = "") -> tuple[Any, list[Any]]:
        """The view's transaction: (archive row or None, its records)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if record:
                pk = await conn.fetchval(RECORD_ARCHIVE.sql, *RECORD_ARCHIVE.args(record=record))
                row = await conn.fetchrow(BOUND_PK.sql, *BOUND_PK.args(me=me, archive_pk=pk)) if pk else None
            else:
                row = await conn.fetchrow(BOUND.sql, *BOUND.args(me=me, archive=archive))
            if row is None:
                return None, []
            records = await conn.fetch(RECORDS.sql, *RECORDS.args(archive_pk=row["id"]))
            audit = {
                "at": dt.datetime.now(dt.UTC),
                "actor_type": "identity",
                "actor_id": str(me),
                "action": READ,
                "archive_id": row["id"],
                "record_id": None,
                "result": "ok",
                "reason": None,
                "request_id": secrets.token_hex(8),
                "client_ip": "127.0.0.1",
                "detail": json.dumps({"section": section}),
                "reason_sealed": None,
                "key_id": None,
            }
            await conn.fetchval(AUDIT.sql, *AUDIT.args(**audit))
        return row, records


class Handler(tornado.web.RequestHandler):
    def initialize(self, floor: Floor) -> None:
        self.floor = floor

    async def me(self) -> int | None:
        me = await self.floor.identity(self.request.headers.get("Authorization", "").removeprefix("Bearer "))
        if me is None:
            self.set_status(401)
            self.finish({"error": "not_logged_in"})
        return me

    def log_exception(self, *args: Any) -> None:
        logging.getLogger("floor").error("floor handler failed", exc_info=args)


class Archive(Handler):
    async def get(self, archive: str, tail: str | None) -> None:
        me = await self.me()
        if me is None:
            return
        section = tail.strip("/") if tail else "cover"
        row, records = await self.floor.view(me, section, archive=archive)
        if row is None:
            self.set_status(404)
            self.finish({"error": "not_found"})
        elif section == "records":
            self.finish({"records": [{"id": r["public_id"]} for r in records[:PAGE_SIZE]], "next_cursor": None})
        else:
            self.finish({"id": row["public_id"]})


class Record(Handler):
    async def get(self, record: str) -> None:
        me = await self.me()
        if me is None:
            return
        row, _ = await self.floor.view(me, "record", record=record)
        if row is None:
            self.set_status(404)
            self.finish({"error": "not_found"})
        else:
            self.finish({"id": record, "archive_id": row["public_id"]})


class Healthz(Handler):
    async def get(self) -> None:
        self.finish({"status": "ok"})


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Nothing to reset: each view's transaction ended with its COMMIT."""


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """The access line as the real server writes it (the benchmark reads server times from it)."""
    r = handler.request
    access.info("%d %s %s %.1fms", handler.get_status(), r.method, r.path, 1000.0 * r.request_time())


async def serve(cfg: dict[str, Any], settings: Settings) -> None:
    """The floor server child: the real server's database, Redis and key prefix, pinning, logging
    and lifecycle."""
    size = settings.database.pool_size
    # Connections opened as needed, up to what the real pool may hold ([database] pool_size plus as
    # many overflow); no reset query on release: SQLAlchemy's pool sends none after a commit either.
    dsn = harness.dsn(harness.normalised_url(cfg["db_url"]))
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2 * size, reset=_no_reset)
    handle = await open_redis(settings)
    floor = Floor(pool, handle.client, settings.redis.key_prefix)
    ident = r"([0-9A-Za-z_-]{1,24})"
    app = tornado.web.Application(
        [
            (rf"/api/v1/archives/{ident}(/records|/trends)?", Archive, {"floor": floor}),
            (rf"/api/v1/records/{ident}", Record, {"floor": floor}),
            (r"/healthz", Healthz, {"floor": floor}),
        ],
        log_function=_log_request,
    )
    settle_heap()  # as `serve` does: without it, full collections pause every view in flight
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        await harness.serve_until_sigterm(sockets[0].getsockname()[1], None)
        server.stop()
        await server.close_all_connections()
    finally:
        await handle.close()
        await pool.close()
    harness.announce({"stopped": True})
