"""The floor of ``bench/binding.py``: a server that does the bind round trip's I/O and nothing else.

It answers the same routes with the answers the benchmark checks, and for each call it waits on
what the real one waits on — the same database statements in the same transactions, the same
Redis calls, the SMS posted to the benchmark's inbox with httpx — but it decrypts, validates,
hashes, audits and decides nothing: reads are ``SELECT $1``, writes one-row INSERTs into a table of
its own. Run under the same load generator, pinned the same way, its figures are what Python,
Tornado, the drivers and the machine cost before any application work: the real server can only
be slower, and the ratio of the two is what the application code adds.

Per call, as the real server runs them (counted in PostgreSQL's statement log and Redis's command
statistics on a run of the real server, 27 statements and 6 Redis calls per round trip):

- every API call: the login session from Redis (GET);
- start: one transaction of 7 statements (BEGIN, 2 reads, 3 writes, COMMIT) with the two rate-limit
  scripts after each read, the SMS, then one of 4 (BEGIN, 2 writes, COMMIT);
- verify: one transaction of 9 (BEGIN, 3 reads, 4 writes, COMMIT);
- list: 2 statements, no transaction (a read and its audit row, autocommit);
- unbind: one transaction of 5 (BEGIN, a read, 2 writes, COMMIT) — 27 in all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from typing import Any

import harness
import httpx
import redis.asyncio as aioredis
import tornado.escape
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from wechat_backend.config import Settings
from wechat_backend.privacy import mask_id_number, mask_name, mask_phone
from wechat_backend.redis_client import open_redis

access = logging.getLogger("wechat_backend.access")  # the line the benchmark reads server times from
READ = "SELECT $1::int"
WRITE = "INSERT INTO floor_rows (v) VALUES ($1)"


class Database:
    """asyncpg on PostgreSQL (a pool as large as the real server's), or one aiosqlite connection on
    SQLite (as the real server holds one, with its pragmas): reads, writes and transactions of them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool: Any = None
        self._sqlite: Any = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self.url.startswith("sqlite"):
            import aiosqlite

            self._sqlite = await aiosqlite.connect(self.url.split("///", 1)[1], isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):  # as the real engine sets them
                await self._sqlite.execute(f"PRAGMA {pragma}")
            await self._sqlite.execute("CREATE TABLE IF NOT EXISTS floor_rows (id INTEGER PRIMARY KEY, v TEXT)")
        else:
            import asyncpg

            # As large as the real server's may grow ([database] pool_size 10 + as many overflow).
            url = harness.dsn(harness.normalised_url(self.url))
            self._pool = await asyncpg.create_pool(url, min_size=10, max_size=20)
            await self._pool.execute("CREATE TABLE IF NOT EXISTS floor_rows (id serial PRIMARY KEY, v text)")

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
        if self._sqlite is not None:
            await self._sqlite.close()

    async def statements(self, plan: str, between: Any = None) -> None:
        """``plan``: ``r`` a read, ``w`` a write, ``|`` where ``between()`` is awaited (Redis);
        in one transaction when the plan starts with ``T`` (BEGIN and COMMIT are statements too)."""
        tx, steps = plan.startswith("T"), plan.lstrip("T")
        if self._pool is not None:
            async with self._pool.acquire() as conn:
                if tx:
                    await conn.execute("BEGIN")
                for step in steps:
                    await self._pg_step(conn, step, between)
                if tx:
                    await conn.execute("COMMIT")
            return
        async with self._lock:
            if tx:
                await self._sqlite.execute("BEGIN")
            for step in steps:
                await self._sqlite_step(step, between)
            if tx:
                await self._sqlite.execute("COMMIT")

    @staticmethod
    async def _pg_step(conn: Any, step: str, between: Any) -> None:
        if step == "r":
            await conn.fetchrow(READ, 1)
        elif step == "w":
            await conn.execute(WRITE, secrets.token_hex(8))
        else:
            await between()

    async def _sqlite_step(self, step: str, between: Any) -> None:
        if step == "r":
            async with self._sqlite.execute("SELECT ?", (1,)) as cursor:
                await cursor.fetchone()
        elif step == "w":
            await self._sqlite.execute("INSERT INTO floor_rows (v) VALUES (?)", (secrets.token_hex(8),))
        else:
            await between()


class Floor:
    """The state the answers need: sessions, codes waiting, bindings, public ids per archive."""

    def __init__(self, db: Database, redis: aioredis.Redis, sms_endpoint: str) -> None:
        self.db, self.redis = db, redis
        self.sms = httpx.AsyncClient(base_url=sms_endpoint, timeout=10, trust_env=False)
        self.limit = redis.register_script("return redis.call('ZCARD', KEYS[1])")
        self.pending: dict[str, tuple[dict[str, str], str]] = {}  # bind_id -> (start body, code)
        self.archive_ids: dict[str, str] = {}  # ID number -> public id
        self.bound: dict[str, tuple[str, str]] = {}  # token -> (archive id, binding id)

    async def session(self, token: str) -> None:
        await self.redis.get(f"floor:session:{token}")

    async def take_limit(self) -> None:
        await self.limit(keys=["floor:rl"], args=[int(time.time() * 1000)])


class Handler(tornado.web.RequestHandler):
    def initialize(self, floor: Floor) -> None:
        self.floor = floor

    def token(self) -> str:
        return self.request.headers.get("Authorization", "").removeprefix("Bearer ")

    def body(self) -> dict[str, Any]:
        return tornado.escape.json_decode(self.request.body) if self.request.body else {}

    def log_exception(self, *args: Any) -> None:
        logging.getLogger("floor").error("floor handler failed", exc_info=args)


class Sandbox(Handler):
    async def post(self, what: str) -> None:
        if what == "users":
            self.set_status(201)
            self.finish({"openid": secrets.token_hex(8)})
        else:
            self.finish({"code": secrets.token_hex(8)})


class Login(Handler):
    async def post(self) -> None:
        self.finish({"token": secrets.token_hex(16)})


class Consent(Handler):
    async def get(self) -> None:
        self.finish({"version": "floor"})

    async def post(self) -> None:
        self.finish({})


class Start(Handler):
    async def post(self) -> None:
        f = self.floor
        body = self.body()
        await f.session(self.token())
        # BEGIN, the caller's state, the caller's allowances (Redis), the lookup, the phone's
        # allowances (Redis), three writes, COMMIT.
        await f.db.statements("Tr|r|www", between=f.take_limit)
        code = f"{secrets.randbelow(10**6):06d}"
        await f.sms.post("/api/sms", json={"phone": body["phone"], "text": f"验证码{code}，5分钟内有效。"})
        await f.db.statements("Tww")
        bind_id = secrets.token_hex(8)
        f.pending[bind_id] = (body, code)
        self.set_status(201)
        self.finish({"bind_id": bind_id, "phone": mask_phone(body["phone"])})


class Verify(Handler):
    async def post(self) -> None:
        f = self.floor
        body = self.body()
        await f.session(self.token())
        await f.db.statements("Trrrwwww")
        person, code = f.pending.pop(body["bind_id"])
        if code != body["code"]:
            self.set_status(400)
            self.finish({"error": "bad_input"})
            return
        archive_id = f.archive_ids.setdefault(person["id_number"], secrets.token_hex(8))
        binding_id = secrets.token_hex(8)
        f.bound[self.token()] = (archive_id, binding_id)
        self.finish(
            {
                "id": archive_id,
                "binding_id": binding_id,
                "name": mask_name(person["name"]),
                "id_number": mask_id_number(person["id_number"]),
                "phone": mask_phone(person["phone"]),
                "relation": "self",
                "open": True,
            }
        )


class Archives(Handler):
    async def get(self) -> None:
        await self.floor.session(self.token())
        await self.floor.db.statements("rw")
        bound = self.floor.bound.get(self.token())
        self.finish({"archives": [{"id": bound[0], "binding_id": bound[1]}] if bound else []})


class Unbind(Handler):
    async def delete(self, binding_id: str) -> None:
        await self.floor.session(self.token())
        await self.floor.db.statements("Trww")
        self.floor.bound.pop(self.token(), None)
        self.set_status(204)
        self.finish()


class Healthz(Handler):
    async def get(self) -> None:
        self.finish({"status": "ok"})


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """The access line as the real server writes it (the benchmark reads server times from it)."""
    r = handler.request
    access.info("%d %s %s %.2fms", handler.get_status(), r.method, r.path, 1000.0 * r.request_time())


async def serve(cfg: dict[str, Any], settings: Settings) -> None:
    """The floor server child: the real server's database, Redis (``$REDIS_URL`` or an embedded one
    moved to the client's CPU), pinning, logging and lifecycle."""
    db = Database(cfg["db_url"])
    await db.open()
    handle = await open_redis(settings)
    redis_pid = getattr(handle.embedded, "pid", None)
    if redis_pid:
        os.sched_setaffinity(redis_pid, {cfg["client_cpu"]})
    floor = Floor(db, handle.client, cfg["sms_endpoint"])
    app = tornado.web.Application(
        [
            (r"/sandbox/api/(users)", Sandbox, {"floor": floor}),
            (r"/sandbox/api/users/[^/]+/(mp-code)", Sandbox, {"floor": floor}),
            (r"/api/v1/mp/login", Login, {"floor": floor}),
            (r"/api/v1/consent", Consent, {"floor": floor}),
            (r"/api/v1/bind/start", Start, {"floor": floor}),
            (r"/api/v1/bind/verify", Verify, {"floor": floor}),
            (r"/api/v1/archives", Archives, {"floor": floor}),
            (r"/api/v1/bindings/([^/]+)", Unbind, {"floor": floor}),
            (r"/healthz", Healthz, {"floor": floor}),
        ],
        log_function=_log_request,
    )
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        await harness.serve_until_sigterm(sockets[0].getsockname()[1], redis_pid)
        server.stop()
        await server.close_all_connections()
    finally:
        await floor.sms.aclose()
        await handle.close()
        await db.close()
    harness.announce({"stopped": True})
