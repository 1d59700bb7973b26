"""Binding benchmark: the whole bind round trip at 16 concurrent users, with ``/healthz`` in the same run.

Run by ``make bench`` as ``.venv/bin/python bench/binding.py [options]``.

**Server** — one child process running the real application (``build_services`` + ``make_app``,
served as ``wechat-backend serve`` serves it, logging included) from real settings in demo mode:
a temp ``data_dir``, a fresh SQLite database (or, with ``--pg-url``, a fresh PostgreSQL database
``wb_bench_<hex>`` dropped afterwards), Redis from ``$REDIS_URL`` or else the embedded server, the
sandbox mounted and ``[wechat] api_base_url``/``open_base_url`` pointing at the child's own
``/sandbox/`` (so ``sns/jscode2session`` answers the mini-program login). It is pinned to the first
CPU this process may use; an embedded redis-server is moved to the second.

**Limits raised by config** for the run (``[limits]`` overrides, see ``RAISED_LIMITS``): codes per
phone per hour and day, bind starts per identity per day and per address per hour (every user
comes from 127.0.0.1), and the gap between two codes to one phone cut to 1 s. Everything else
(code TTL, tries, archives per identity, identities per archive) stays at its default.

**Without the SMS provider's own latency** — ``[sms] provider = "console"`` with ``[sms] endpoint``
pointing at an inbox served by this process: it answers 200 at once and keeps the latest code per
phone, so the bench reads codes from its own memory. The server still does all of its own SMS
work (the HTTP call to the provider included).

**Data** — ``wechat_backend.seed`` writes ``--archives`` synthetic archives (with their service
records and institutions), imported before the server starts with ``IngestService.import_file``
(what ``wechat-backend import`` runs); every county is then opened in phase ``all``
(``CountyService.set_all``, as the demo does). The archives a person may bind as ``self`` (visible
under ``privacy.visibility``, 14 or older, with an ID number and a phone of their own) are split
into disjoint slices, one per user, so no two users ever bind the same archive.

**Load** — this process, pinned to the second CPU: ``--users`` simulated residents, each with its
own keep-alive HTTP/1.1 connection (asyncio streams, Content-Length framing). Set-up, not measured:
a sandbox user (``POST /sandbox/api/users``), a ``wx.login`` code (``…/mp-code``), the mini-program
login (``POST /api/v1/mp/login`` → bearer token) and consent (``GET``/``POST /api/v1/consent``).
Then each user loops without pause, through its slice in turn: ``POST /api/v1/bind/start`` → the
code from the inbox → ``POST /api/v1/bind/verify`` → ``GET /api/v1/archives`` → ``DELETE
/api/v1/bindings/{binding_id}`` (so the per-identity and per-archive caps never fill). One more task
on its own connection sends ``GET /healthz`` every ``--healthz-every`` seconds, as a liveness probe
would (not back to back: it would then be a load of its own).

A warm-up of ``--warmup`` s, then a window of ``--seconds`` s; a request counts when it completes in
the window, a round trip when its last call does. Reported per call (count, req/s, p50/p95/p99/max
as the client saw them, and p50/p99 of the server's own request time from its access log) and per
round trip (start→verify, start→unbind). Target (from the issue): p99 < 50 ms, checked against
each API call of the round trip (start, verify, list, unbind); the round-trip p99s are printed
too. Checks: every response has its expected status (201/200/200/204, and 200 for /healthz);
each verify returns the archive its start named (masked name, ID number and phone, the same
public id every time that archive is bound, never another archive's), each list shows that one
binding; every start delivered one SMS; the server's log has no ERROR line and no traceback.
A failed check exits 1 after printing and saving; a missed target prints MISSED and exits 0.

**Floor** — then the same load on ``bench/binding_floor.py``, a server doing the round trip's I/O
(the same statements, Redis calls and SMS post) and nothing else; printed beside the real figures
with their ratios (``--no-floor`` skips it). ``--rate R``: round trips arrive R a second (Poisson)
instead of the closed loop, each to an idle user; waits for a free user are reported.

``--profile`` runs the server under cProfile (its figures are then not comparable) and prints the
top functions. Results go to stdout as a table and to ``bench/results/binding-<UTC timestamp>.json``
and ``binding-latest.json``; progress goes to stderr. Nothing personal (synthetic or not) is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import random
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import binding_floor
import harness
import tornado
from harness import DEFAULT_PG_URL, PROJECT, RESULTS, BenchError, log, ms, percentile, verdict
from machine import machine_info

from wechat_backend.binding.rules import relation_allowed
from wechat_backend.clock import Clock
from wechat_backend.config import Settings, load_settings
from wechat_backend.db import upgrade_url
from wechat_backend.privacy import VisibilityInput, mask_id_number, mask_name, mask_phone, visibility
from wechat_backend.seed import write_jsonl
from wechat_backend.services import build_services

P99_TARGET_MS = 50.0
USERS = 16
ARCHIVES = 2000
RAISED_LIMITS = {
    "resend_after_seconds": 1,  # a user comes back to the same phone after a whole slice, seconds later
    "codes_per_phone_hour": 1_000_000,
    "codes_per_phone_day": 1_000_000,
    "codes_per_day_total": 1_000_000,
    "bind_starts_per_identity_day": 1_000_000,
    "bind_starts_per_ip_hour": 1_000_000,
}
MIN_SLICE = 20  # archives per user: a phone's next code must wait resend_after_seconds
STEPS = ("start", "verify", "list", "unbind")  # the round trip's API calls: the target applies to each
LABELS = {
    "start": "POST /api/v1/bind/start",
    "verify": "POST /api/v1/bind/verify",
    "list": "GET /api/v1/archives",
    "unbind": "DELETE /api/v1/bindings/{id}",
    "healthz": "GET /healthz",
}
EXPECTED = {"start": 201, "verify": 200, "list": 200, "unbind": 204, "healthz": 200}
TRIPS = {"start→verify": "verify", "start→unbind": "unbind"}  # round trip -> the call that ends it
REQUEST_TIMEOUT = 30.0
DRAIN_TIMEOUT = 30.0
BUSY_SERVER = 0.95  # below this share of its CPU, the server was not what limited the run
BUSY_CLIENT = 0.90  # above this, the load generator may have been
MAX_ERRORS = 20  # distinct failure messages kept

_CODE = re.compile(r"验证码(\d{6})")
_ACCESS = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ wechat_backend\.access (\d{3}) (\w+) (\S+) ([\d.]+)ms$"
)


# --------------------------------------------------------------------------- settings


def bench_settings(
    data_dir: Path, db_url: str, key_prefix: str, *, base: str = "http://127.0.0.1:8000", sms_endpoint: str = ""
) -> Settings:
    """Demo-mode settings with the sandbox as WeChat, the bench's inbox as SMS provider, limits raised."""
    return load_settings(
        environ={},
        overrides={
            "server": {"mode": "demo", "data_dir": str(data_dir), "public_base_url": base},
            "database": {"url": db_url},
            "redis": {"url": os.environ.get("REDIS_URL", ""), "key_prefix": key_prefix},
            "sandbox": {"enabled": True},
            "wechat": {"api_base_url": f"{base}/sandbox/", "open_base_url": f"{base}/sandbox/"},
            "sms": {"provider": "console", "endpoint": sms_endpoint},
            "limits": RAISED_LIMITS,
        },
    )


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Person:
    """An archive a user binds as ``self``, with what the masked answers must show."""

    name: str
    id_number: str
    phone: str

    def start_body(self) -> dict[str, str]:
        return {"name": self.name, "id_number": self.id_number, "phone": self.phone, "relation": "self"}


def write_data(path: Path, archives: int, seed: int, today: dt.date) -> tuple[dict[str, int], list[Person]]:
    """The synthetic file, and the archives its people may bind as ``self`` once every county is open."""
    counts = write_jsonl(path, archives, seed, today=today)
    people: list[Person] = []
    phones: set[str] = set()
    ids: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for raw in f:
            o = json.loads(raw)
            if o["type"] != "archive" or not o.get("id_number") or not o.get("phone"):
                continue
            birth = dt.date.fromisoformat(o["birth_date"])
            seen = visibility(
                VisibilityInput(
                    county_open=True,
                    phase="all",
                    open_to_resident=bool(o.get("open_to_resident")),
                    status=o["status"],
                    birth_date=birth,
                    programmes=frozenset(o.get("programmes") or ()),
                    today=today,
                )
            )
            # Unique phones and ID numbers: the inbox keys codes by phone, the checks by ID number.
            fresh = o["phone"] not in phones and o["id_number"] not in ids
            if seen.visible and relation_allowed("self", birth, today) and fresh:
                phones.add(o["phone"])
                ids.add(o["id_number"])
                people.append(Person(o["name"], o["id_number"], o["phone"]))
    return counts, people


async def prepare_database(settings: Settings, path: Path, counts: dict[str, int]) -> float:
    """Migrate, import the file and open every county in phase ``all``; returns the import's seconds."""
    await upgrade_url(settings.database.url)
    services = await build_services(settings, with_redis=False)
    try:
        report = await services.ingest.import_file(path)
        await services.counties.set_all(opening=True, phase="all", actor="bench")
    finally:
        await services.close()
    if report.rejected or report.inserted != sum(counts.values()):
        raise BenchError(f"the import took {report.inserted:,} of {sum(counts.values()):,} lines: {report.errors[:3]}")
    return report.seconds


# --------------------------------------------------------------------------- a shared Redis ($REDIS_URL)


async def forget_keys(url: str, prefix: str) -> int:
    """Delete the run's keys from a shared Redis (rate-limit windows would otherwise stay a day)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    deleted = 0
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.delete(*batch)
                batch = []
        if batch:
            deleted += await client.delete(*batch)
    finally:
        await client.aclose()
    return deleted


# --------------------------------------------------------------------------- the server child


def floor_main(config_path: str) -> int:
    """The floor server (``binding_floor``): settings as the real server's, for its Redis."""
    cfg = harness.child_config(config_path)
    settings = bench_settings(Path(cfg["data_dir"]), cfg["db_url"], cfg["key_prefix"])
    asyncio.run(binding_floor.serve(cfg, settings))
    return 0


def child_main(config_path: str) -> int:
    """The server: pinned first (threads it starts inherit the CPU), logging as ``serve`` sets it up."""
    cfg = harness.child_config(config_path)
    asyncio.run(_serve(cfg))
    return 0


async def _serve(cfg: dict[str, Any]) -> None:
    from tornado.netutil import bind_sockets

    # The port first: the settings point WeChat (the sandbox) at this very server.
    sockets = bind_sockets(0, "127.0.0.1")
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    settings = bench_settings(
        Path(cfg["data_dir"]), cfg["db_url"], cfg["key_prefix"], base=base, sms_endpoint=cfg["sms_endpoint"]
    )
    services = await build_services(settings)
    try:
        redis_pid = harness.pin_embedded_redis(services, cfg["client_cpu"])
        await harness.serve_app(services, sockets, redis_pid, cfg["profile_path"])
    finally:
        await services.close()
    harness.announce({"stopped": True})


# --------------------------------------------------------------------------- HTTP, both ways


class CallFailed(Exception):
    """A request got no complete answer (connection closed, timeout, unframed response)."""


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self._reader, self._writer, self._host = reader, writer, host

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def call(self, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self._host}\r\nAccept: application/json\r\n"
        if token:
            head += f"Authorization: Bearer {token}\r\n"
        data = b""
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode()
            head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        self._writer.write((head + "\r\n").encode() + data)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                raw = await self._reader.readuntil(b"\r\n\r\n")
                status, length = _head(raw)
                return status, await self._reader.readexactly(length) if length else b""
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise CallFailed(f"{method} {_route(path)}: {type(exc).__name__}") from None

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def _head(raw: bytes) -> tuple[int, int]:
    """(status, body length) of a response head; Tornado frames every body with Content-Length."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            return status, int(value)
    if status in (204, 304) or 100 <= status < 200:
        return status, 0
    raise CallFailed(f"response {status} without Content-Length")


def _route(path: str) -> str:
    """The path with ids cut off, for messages."""
    return re.sub(r"/(users|bindings)/[^/?]+", r"/\1/{id}", path.split("?", 1)[0])


class Inbox:
    """The SMS provider as the server sees it (``POST /api/sms {"phone", "text"}``), answering at once."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}
        self.received = 0
        self.problems: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    def take(self, phone: str) -> str | None:
        return self.codes.pop(phone, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                first = raw.split(b"\r\n", 1)[0]
                length = 0
                for line in raw.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if first.startswith(b"POST ") and first.split(b" ")[1].rstrip(b"/").endswith(b"/api/sms"):
                    self._record(body)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                else:
                    self.problems.append(f"inbox: unexpected request {first[:40]!r}")
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _record(self, body: bytes) -> None:
        self.received += 1
        try:
            sms = json.loads(body)
            phone, found = sms["phone"], _CODE.search(sms["text"])
        except (ValueError, KeyError, TypeError):
            self.problems.append("inbox: an SMS that is not {phone, text}")
            return
        if found is None:
            self.problems.append("inbox: an SMS without a 6-digit code")
            return
        if phone in self.codes:
            self.problems.append("inbox: a second code to a phone whose first was never used")
        self.codes[phone] = found[1]


# --------------------------------------------------------------------------- the load


@dataclass
class User:
    conn: Connection
    token: str
    people: list[Person]
    next: int = 0


class Run:
    """What the users saw: latencies of calls completed in the window, statuses of all, failures."""

    def __init__(self) -> None:
        self.window_start = math.inf
        self.window_end = math.inf
        self.stopping = False
        self.latencies: dict[str, list[float]] = {k: [] for k in (*LABELS, *TRIPS)}
        self.statuses: dict[str, Counter[int]] = {k: Counter() for k in LABELS}
        self.trips = 0  # round trips completed, warm-up and drain included
        self.errors: list[str] = []
        self.error_count = 0
        self.archive_ids: dict[str, str] = {}  # ID number -> the public id verify returned
        self.id_owners: dict[str, str] = {}
        self.queued: list[float] = []  # --rate: how long arrivals in the window waited for a free user
        self.offered = 0  # --rate: round trips due in the window
        self.waited = 0  # --rate: of those, how many found no user free

    def in_window(self, ended: float) -> bool:
        return self.window_start <= ended <= self.window_end

    def record(self, step: str, started: float, ended: float, status: int) -> None:
        self.statuses[step][status] += 1
        if self.in_window(ended):
            self.latencies[step].append(ended - started)

    def fail(self, message: str) -> None:
        self.error_count += 1
        if message not in self.errors and len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    async def call(
        self, conn: Connection, step: str, method: str, path: str, body: Any = None, token: str = ""
    ) -> tuple[int, Any, float]:
        """One measured call: (status, decoded JSON or None, completion time)."""
        started = time.perf_counter()
        status, raw = await conn.call(method, path, body, token)
        ended = time.perf_counter()
        self.record(step, started, ended, status)
        if status != EXPECTED[step]:
            self.fail(f"{LABELS[step]}: status {status}, expected {EXPECTED[step]} ({_error_code(raw)})")
            return status, None, ended
        try:
            return status, json.loads(raw) if raw else None, ended
        except ValueError:
            self.fail(f"{LABELS[step]}: the answer is not JSON")
            return 0, None, ended


def _error_code(raw: bytes) -> str:
    """The API's stable error code, never its message (it may name a field's value)."""
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return str(json.loads(raw).get("error", "-"))
    return "-"


async def setup_user(n: int, port: int, people: list[Person]) -> User:
    """A sandbox user logged in to the mini-program with consent given (not measured)."""
    conn = await Connection.open(port)

    async def ok(method: str, path: str, body: Any = None, token: str = "", want: int = 200) -> Any:
        status, raw = await conn.call(method, path, body, token)
        if status != want:
            raise BenchError(f"set-up: {method} {_route(path)} answered {status} ({_error_code(raw)})")
        return json.loads(raw)

    openid = (await ok("POST", "/sandbox/api/users", {"nickname": f"压测用户{n}"}, want=201))["openid"]
    code = (await ok("POST", f"/sandbox/api/users/{openid}/mp-code", {}))["code"]
    token = (await ok("POST", "/api/v1/mp/login", {"code": code}))["token"]
    notice = await ok("GET", "/api/v1/consent", token=token)
    await ok("POST", "/api/v1/consent", {"version": notice["version"]}, token=token)
    return User(conn, token, people)


async def round_trip(user: User, run: Run, inbox: Inbox) -> float:
    """start → code → verify → list → unbind for the user's next archive, every answer checked.
    Returns when the start was sent."""
    person = user.people[user.next % len(user.people)]
    user.next += 1
    conn, token = user.conn, user.token
    began = time.perf_counter()
    _, started, _ = await run.call(conn, "start", "POST", "/api/v1/bind/start", person.start_body(), token)
    if started is None:
        return began
    if started.get("phone") != mask_phone(person.phone):
        run.fail("bind/start: the masked phone is not the archive's")
    code = inbox.take(person.phone)
    if code is None:
        run.fail("bind/start answered 201 but no code reached the inbox")
        return began
    body = {"bind_id": started.get("bind_id"), "code": code}
    _, bound, verified = await run.call(conn, "verify", "POST", "/api/v1/bind/verify", body, token)
    if bound is None:
        return began
    if run.in_window(verified):
        run.latencies["start→verify"].append(verified - began)
    archive_id, binding_id = str(bound.get("id")), str(bound.get("binding_id"))
    if not _is_archive_of(bound, person):
        run.fail("bind/verify: the archive returned is not the one started (masked fields differ)")
    known = run.archive_ids.setdefault(person.id_number, archive_id)
    owner = run.id_owners.setdefault(archive_id, person.id_number)
    if known != archive_id or owner != person.id_number:
        run.fail("bind/verify: an archive came back under another public id than before")
    _, listed, _ = await run.call(conn, "list", "GET", "/api/v1/archives", token=token)
    if listed is not None:
        shown = [(a.get("id"), a.get("binding_id")) for a in listed.get("archives", [])]
        if shown != [(archive_id, binding_id)]:
            run.fail(f"archives: {len(shown)} archives listed, expected just the one bound")
    status, _, unbound = await run.call(conn, "unbind", "DELETE", f"/api/v1/bindings/{binding_id}", token=token)
    if status != EXPECTED["unbind"]:
        return began
    run.trips += 1
    if run.in_window(unbound):
        run.latencies["start→unbind"].append(unbound - began)
    return began


def _is_archive_of(bound: dict[str, Any], person: Person) -> bool:
    return (
        bound.get("name") == mask_name(person.name)
        and bound.get("id_number") == mask_id_number(person.id_number)
        and bound.get("phone") == mask_phone(person.phone)
        and bound.get("relation") == "self"
        and bound.get("open") is True
        and bool(bound.get("binding_id"))
    )


async def user_loop(user: User, run: Run, inbox: Inbox) -> None:
    while not run.stopping:
        try:
            await round_trip(user, run, inbox)
        except CallFailed as exc:
            run.fail(str(exc))
            return  # the connection is no longer usable


async def paced_arrivals(users: list[User], run: Run, inbox: Inbox, rate: float, seed: int) -> None:
    """``--rate``: round trips arrive at ``rate`` a second (Poisson, seeded) and each goes to an idle
    user; with every user busy, arrivals queue in order. An arrival's wait runs from its scheduled
    time to its start call: it is part of what a resident would see, so leaving it out would flatter
    an overloaded server."""
    rng = random.Random(seed)
    idle: asyncio.Queue[User] = asyncio.Queue()
    for user in users:
        idle.put_nowait(user)
    queued: set[asyncio.Task[None]] = set()  # arrivals still waiting for a user: cancelled at the end
    running: set[asyncio.Task[None]] = set()

    async def arrive(due: float) -> None:
        had_to_wait = idle.empty()
        user = await idle.get()
        if run.stopping:  # the window is over: no new round trip
            idle.put_nowait(user)
            return
        queued.discard(task := asyncio.current_task())  # type: ignore[arg-type]
        running.add(task)  # type: ignore[arg-type]
        try:
            began = await round_trip(user, run, inbox)
        except CallFailed as exc:
            run.fail(str(exc))
            return  # the connection is no longer usable: the user is not given back
        if run.in_window(due):
            run.queued.append(max(0.0, began - due))
            run.waited += had_to_wait
        idle.put_nowait(user)

    due = time.perf_counter()
    while not run.stopping:
        due += rng.expovariate(rate)
        while not run.stopping and (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(min(delay, 0.25))  # wakes for the end of the window, whatever the rate
        if run.stopping:
            break
        task = asyncio.create_task(arrive(due))
        queued.add(task)
        task.add_done_callback(queued.discard)
        task.add_done_callback(running.discard)
        if run.in_window(due):
            run.offered += 1
    for task in list(queued):
        task.cancel()
    await asyncio.gather(*queued, *running, return_exceptions=True)


async def healthz_loop(conn: Connection, run: Run, every: float) -> None:
    """A liveness probe: one GET /healthz every ``every`` seconds (at once if the last took longer)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not run.stopping:
        try:
            _, body, _ = await run.call(conn, "healthz", "GET", "/healthz")
        except CallFailed as exc:
            run.fail(str(exc))
            return
        if body is not None and body != {"status": "ok"}:
            run.fail("/healthz: unexpected body")
        due = await harness.next_tick(due, every)


async def drive(
    server: harness.ServerChild, inbox: Inbox, people: list[Person], args: argparse.Namespace
) -> tuple[Run, dict[str, Any]]:
    run = Run()
    slices = [people[i :: args.users] for i in range(args.users)]
    log(f"set-up: {args.users} sandbox users log in to the mini-program and give consent ...")
    users = [await setup_user(i + 1, server.port, slices[i]) for i in range(args.users)]
    probe = await Connection.open(server.port)
    pace = f"{args.rate:g} round trips/s arriving" if args.rate else "binding in a loop"
    log(
        f"load: {args.users} users {pace} + /healthz every {args.healthz_every * 1000:g} ms;"
        f" {args.warmup:g} s warm-up + {args.seconds:g} s ..."
    )
    if args.rate:
        tasks = [asyncio.create_task(paced_arrivals(users, run, inbox, args.rate, args.seed))]
    else:
        tasks = [asyncio.create_task(user_loop(u, run, inbox)) for u in users]
    prober = asyncio.create_task(healthz_loop(probe, run, args.healthz_every))
    await asyncio.sleep(args.warmup)
    cpu0 = (harness.cpu_seconds(server.pid), time.process_time(), harness.cpu_seconds(server.redis_pid))
    wall = [time.time()]
    run.window_start = time.perf_counter()
    run.window_end = run.window_start + args.seconds
    await asyncio.sleep(args.seconds)
    span = time.perf_counter() - run.window_start
    wall.append(time.time())
    cpu1 = (harness.cpu_seconds(server.pid), time.process_time(), harness.cpu_seconds(server.redis_pid))
    run.stopping = True  # each user finishes the round trip it is in: its binding goes
    prober.cancel()  # it may be sleeping until its next probe
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, prober, return_exceptions=True)
    if pending:
        run.fail(f"load still busy {DRAIN_TIMEOUT:.0f} s after the window")
    for task in [*tasks, prober]:
        if not task.cancelled() and task.exception() is not None:
            run.fail(f"a load task stopped: {type(task.exception()).__name__}")
    for conn in [*(u.conn for u in users), probe]:
        await conn.close()
    cpu = {
        "server": (cpu1[0] - cpu0[0]) / span,
        "client": (cpu1[1] - cpu0[1]) / span,
        "redis": (cpu1[2] - cpu0[2]) / span if server.redis_pid else None,
    }
    return run, {"seconds": span, "wall": wall, "cpu": cpu}


# --------------------------------------------------------------------------- the server's view


def server_log(path: Path, wall: list[float]) -> dict[str, Any]:
    """From the server's log: its own request times in the window (Tornado's ``request_time``, from
    the request's headers parsed to its last byte written, so without time queued before that), and
    lines at ERROR, tracebacks and WARNINGs anywhere in the run."""
    times: dict[str, list[float]] = {k: [] for k in LABELS}
    errors: list[str] = []
    warnings = Counter[str]()
    tracebacks = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        parts = line.split(" ", 4)
        level = parts[2] if len(parts) > 3 else ""
        if level in ("ERROR", "CRITICAL"):
            errors.append(line[24:200])  # no timestamp; the logs carry no personal data
        elif level == "WARNING":
            warnings[parts[3]] += 1
        m = _ACCESS.match(line)
        if m is None:
            continue
        stamp = dt.datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # local time, as logged
        step = _step_of(m[3], m[4])
        if step and wall[0] <= stamp <= wall[1]:
            times[step].append(float(m[5]) / 1000)
    return {"times": times, "errors": errors, "tracebacks": tracebacks, "warnings": dict(warnings)}


def _step_of(method: str, path: str) -> str | None:
    if path == "/api/v1/bind/start":
        return "start"
    if path == "/api/v1/bind/verify":
        return "verify"
    if path == "/api/v1/archives" and method == "GET":
        return "list"
    if path.startswith("/api/v1/bindings/") and method == "DELETE":
        return "unbind"
    return "healthz" if path == "/healthz" else None


# --------------------------------------------------------------------------- the run


def summarise(latencies: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "count": len(ordered),
        "per_second": len(ordered) / seconds if seconds else 0.0,
        "p50_ms": percentile(ordered, 0.50),
        "p95_ms": percentile(ordered, 0.95),
        "p99_ms": percentile(ordered, 0.99),
        "max_ms": ordered[-1] * 1000 if ordered else math.nan,
        "mean_ms": sum(ordered) / len(ordered) * 1000 if ordered else math.nan,
    }


def measure(args: argparse.Namespace, tmp: Path, cpus: tuple[int, int], db_url: str) -> dict[str, Any]:
    key_prefix = f"bench{secrets.token_hex(3)}"
    settings = bench_settings(tmp, db_url, key_prefix)
    today = Clock().today()
    data_path = tmp / "archives.jsonl"
    log(f"generating {args.archives:,} synthetic archives (seed {args.seed}) ...")
    counts, people = write_data(data_path, args.archives, args.seed, today)
    if len(people) < args.users * MIN_SLICE:
        raise BenchError(
            f"{len(people):,} bindable archives for {args.users} users: at least {MIN_SLICE} each are needed"
            " (a phone may get its next code only after resend_after_seconds); raise --archives"
        )
    log(f"importing {sum(counts.values()):,} lines; {len(people):,} archives can be bound as 'self' ...")
    import_seconds = asyncio.run(prepare_database(settings, data_path, counts))
    return asyncio.run(_measure(args, tmp, cpus, db_url, key_prefix, people, counts, import_seconds))


async def _measure(
    args: argparse.Namespace,
    tmp: Path,
    cpus: tuple[int, int],
    db_url: str,
    key_prefix: str,
    people: list[Person],
    counts: dict[str, int],
    import_seconds: float,
) -> dict[str, Any]:
    cfg = {
        "server_cpu": cpus[0],
        "client_cpu": cpus[1],
        "data_dir": str(tmp),
        "db_url": db_url,
        "key_prefix": key_prefix,
        "profile_path": str(args.profile_path) if args.profile else "",
    }
    result = await run_phase("--child", cfg, tmp / "server", people, args)
    if args.floor:
        log("floor: the same load on a server that does the round trip's I/O and nothing else ...")
        floor_cfg = cfg | {"data_dir": str(tmp / "floor"), "profile_path": ""}
        (tmp / "floor").mkdir()
        try:
            floor = await run_phase("--floor-child", floor_cfg, tmp / "floor-server", people, args)
        except BenchError as exc:  # the real figures are still printed and saved
            result["failures"].append(f"floor: did not run ({exc})")
        else:
            result["failures"] += [f"floor: {failure}" for failure in floor.pop("failures")]
            result["floor"] = floor
    if os.environ.get("REDIS_URL"):
        await forget_keys(os.environ["REDIS_URL"], key_prefix)
    result["data"] = {
        "lines": counts,
        "bindable": len(people),
        "per_user": len(people) // args.users,
        "import_seconds": import_seconds,
    }
    return result


async def run_phase(
    child: str, cfg: dict[str, Any], stem: Path, people: list[Person], args: argparse.Namespace
) -> dict[str, Any]:
    """One server child (``--child``: the real one, ``--floor-child``: the floor) under the load."""
    inbox = Inbox()
    cfg = cfg | {"sms_endpoint": f"http://127.0.0.1:{await inbox.start()}"}
    server = await asyncio.to_thread(
        harness.start_child, "the server", [str(Path(__file__).resolve()), child], cfg, stem
    )
    try:
        run, window = await drive(server, inbox, people, args)
        await asyncio.to_thread(server.stop)
    finally:
        await asyncio.to_thread(server.kill)
        await inbox.stop()
    seen = server_log(server.stderr_path, window["wall"])
    seconds = window["seconds"]
    starts_ok = run.statuses["start"][EXPECTED["start"]]
    failures = list(run.errors)
    if run.error_count > len(run.errors):
        failures.append(f"{run.error_count:,} failed checks in all ({len(run.errors)} distinct shown)")
    failures += inbox.problems[:5]
    if inbox.received != starts_ok:
        failures.append(f"{starts_ok:,} starts answered 201, the inbox got {inbox.received:,} SMS")
    failures += [f"server log: {line}" for line in seen["errors"][:5]]
    if seen["tracebacks"]:
        failures.append(f"server log: {seen['tracebacks']} tracebacks")
    for step in STEPS:
        if not run.latencies[step]:
            failures.append(f"{LABELS[step]}: no call completed in the window")
    return {
        "steps": {
            step: summarise(run.latencies[step], seconds)
            | {
                "call": LABELS[step],
                "server_p50_ms": percentile(sorted(seen["times"][step]), 0.50),
                "server_p99_ms": percentile(sorted(seen["times"][step]), 0.99),
                "statuses": {str(k): v for k, v in sorted(run.statuses[step].items())},
            }
            for step in LABELS
        },
        "round_trips": {trip: summarise(run.latencies[trip], seconds) for trip in TRIPS},
        "round_trips_all": run.trips,
        "queued": summarise(run.queued, seconds) | {"waited": run.waited, "offered": run.offered},
        "window_seconds": seconds,
        "cpu": window["cpu"],
        "sms_received": inbox.received,
        "server_log": {k: seen[k] for k in ("errors", "tracebacks", "warnings")},
        "failures": failures,
    }


# --------------------------------------------------------------------------- output


def _table(phase: dict[str, Any]) -> None:
    """Per call and per round trip, as the users saw them."""
    print(
        f"{'call':<31}{'count':>8}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'server p50':>12}{'server p99':>12}"
    )
    for step in LABELS:
        s = phase["steps"][step]
        print(
            f"{LABELS[step]:<31}{s['count']:>8,}{s['per_second']:>8.1f}{ms(s['p50_ms']):>8}{ms(s['p95_ms']):>8}"
            f"{ms(s['p99_ms']):>8}{ms(s['max_ms']):>8}{ms(s['server_p50_ms']):>12}{ms(s['server_p99_ms']):>12}"
        )
    print(f"{'round trip':<31}{'count':>8}{'trips/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}")
    for trip, t in phase["round_trips"].items():
        print(
            f"{trip:<31}{t['count']:>8,}{t['per_second']:>8.1f}{ms(t['p50_ms']):>8}{ms(t['p95_ms']):>8}"
            f"{ms(t['p99_ms']):>8}{ms(t['max_ms']):>8}"
        )


def _cpu_per_trip(phase: dict[str, Any]) -> float:
    """Server CPU seconds per completed round trip (nan when none completed)."""
    rate = phase["round_trips"]["start→unbind"]["per_second"]
    return phase["cpu"]["server"] / rate if rate else math.nan


def _floor_report(result: dict[str, Any]) -> dict[str, Any]:
    """The floor's table and the ratios of the real server's figures to it."""
    floor, steps = result["floor"], result["steps"]
    print("floor — the same load on a server doing only the round trip's I/O (bench/binding_floor.py):")
    _table(floor)
    ratios = {step: steps[step]["p99_ms"] / floor["steps"][step]["p99_ms"] for step in STEPS}
    cpu = _cpu_per_trip(result) / _cpu_per_trip(floor)
    print(
        "server ÷ floor, same run: p99 "
        + ", ".join(f"{step} {ratio:.1f}×" for step, ratio in ratios.items())
        + f"; CPU per round trip {_cpu_per_trip(result) * 1000:.1f} ÷ {_cpu_per_trip(floor) * 1000:.1f} ms"
        f" = {cpu:.1f}×; floor's server CPU {floor['cpu']['server']:.0%}"
    )
    floor_ok = all(floor["steps"][step]["p99_ms"] < P99_TARGET_MS for step in STEPS)
    print(f"the floor itself {'meets' if floor_ok else 'misses'} p99 < {P99_TARGET_MS:.0f} ms on this machine")
    return {"p99_ratio": ratios, "cpu_per_trip_ratio": cpu, "floor_meets_target": floor_ok}


def report(result: dict[str, Any], machine: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    steps, trips = result["steps"], result["round_trips"]
    _table(result)
    targets: dict[str, Any] = {}
    for step in STEPS:
        p99 = steps[step]["p99_ms"]
        ok = p99 < P99_TARGET_MS
        targets[step] = {"value": p99, "target": f"< {P99_TARGET_MS}", "met": ok}
    worst = max(STEPS, key=lambda k: steps[k]["p99_ms"] if not math.isnan(steps[k]["p99_ms"]) else math.inf)
    all_ok = all(t["met"] for t in targets.values())
    print(
        f"target: p99 < {P99_TARGET_MS:.0f} ms for each API call of the round trip (start, verify, list, unbind);"
        f" worst {LABELS[worst]} p99 {ms(steps[worst]['p99_ms'])} ms  {verdict(all_ok)}"
    )
    for step in STEPS:
        if not targets[step]["met"]:
            print(f"  {LABELS[step]}: p99 {ms(steps[step]['p99_ms'])} ms  MISSED")
    print(
        f"round-trip p99 (the sum of its calls, not the target): start→verify {ms(trips['start→verify']['p99_ms'])}"
        f" ms, start→unbind {ms(trips['start→unbind']['p99_ms'])} ms;"
        f" /healthz p99 {ms(steps['healthz']['p99_ms'])} ms"
    )
    if "floor" in result:
        result["against_floor"] = _floor_report(result)
    cpu = result["cpu"]
    trip_rate = trips["start→unbind"]["per_second"]
    call_rate = sum(steps[s]["per_second"] for s in STEPS)
    redis = f", embedded redis-server (client's CPU) {cpu['redis']:.0%}" if cpu["redis"] is not None else ""
    per_trip = f"; server CPU per round trip {_cpu_per_trip(result) * 1000:.1f} ms" if trip_rate else ""
    print(
        f"CPU during the window: server {cpu['server']:.0%}, load generator + SMS inbox {cpu['client']:.0%}"
        f"{redis}{per_trip}"
    )
    if args.rate:
        q = result["queued"]
        print(
            f"open loop: {args.rate:g} round trips/s offered (Poisson), {trip_rate:.1f}/s completed, at most"
            f" {args.users} in flight; {q['waited']:,} of {q['count']:,} arrivals found no user free"
            f" (p99 wait {ms(q['p99_ms'])} ms, max {ms(q['max_ms'])} ms)"
        )
        if q["waited"] or q["count"] < 0.95 * q["offered"]:
            print(
                f"WARNING: {q['offered']:,} round trips were due in the window, {q['count']:,} started,"
                f" {q['waited']:,} waited for a free user: {args.rate:g}/s is more than {args.users} users on this"
                " server carry, and the calls' latencies leave the waiting out"
            )
    elif call_rate:
        print(
            f"closed loop: each user sends its next call as soon as the last is answered, so the mean call latency is"
            f" users / calls per second = {args.users} / {call_rate:,.0f} = {args.users / call_rate * 1000:.1f} ms"
        )
    print(
        "server p50/p99: the server's own request time (its access log: request read to response written);"
        " the rest of a call's latency is the connection and the load generator"
    )
    if cpu["server"] < BUSY_SERVER and not args.rate:  # with --rate an idle share is the point
        print(
            f"WARNING: the server process got {cpu['server']:.0%} of its CPU: something else ran on it,"
            " or it waited (database, Redis, locks) rather than computed"
        )
    if cpu["client"] > BUSY_CLIENT:
        print(f"WARNING: the load generator used {cpu['client']:.0%} of its CPU: figures may be client-bound")
    for step in LABELS:
        statuses = ", ".join(f"{s}: {n:,}" for s, n in steps[step]["statuses"].items())
        print(f"  {LABELS[step]}: all calls (warm-up, window, drain) by status: {statuses or 'none'}")
    data = result["data"]
    warnings = ", ".join(f"{k} {v}" for k, v in sorted(result["server_log"]["warnings"].items())) or "none"
    print(
        f"data: {data['lines']['archive']:,} archives ({sum(data['lines'].values()):,} lines) imported in"
        f" {data['import_seconds']:.1f} s; {data['bindable']:,} bindable as 'self', {data['per_user']} per user;"
        f" {result['round_trips_all']:,} round trips, {result['sms_received']:,} SMS; server log warnings: {warnings}"
    )
    if args.profile:
        print("PROFILED RUN: the server ran under cProfile; its figures are not comparable")
    pace = f"at {args.rate:g} round trips/s" if args.rate else "without pause"
    print(
        f"{args.users} users {pace}, /healthz every {args.healthz_every * 1000:g} ms, {args.warmup:g} s warm-up,"
        f" {result['window_seconds']:.1f} s window; limits raised: "
        + ", ".join(f"{k}={v:,}" for k, v in RAISED_LIMITS.items())
    )
    print(
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model'] or 'unknown model'}), server on CPU"
        f" {machine['server_cpu']}, client on CPU {machine['client_cpu']}; Python {machine['python']},"
        f" Tornado {machine['tornado']}; {machine['database']}, Redis {machine['redis']}"
    )
    load = [" / ".join(f"{a:.2f}" for a in machine[k]) for k in ("loadavg_start", "loadavg_end")]
    print(f"load average (1/5/15 min) at start {load[0]}, at end {load[1]}; code: {machine['git'] or 'unknown'}")
    return result | {
        "targets": targets,
        "targets_met": all_ok,
        "machine": machine,
        "options": {
            "users": args.users,
            "rate": args.rate,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "archives": args.archives,
            "seed": args.seed,
            "healthz_every": args.healthz_every,
            "floor": args.floor,
            "pg_url": args.pg_url_shown,
            "profile": args.profile,
            "limits": RAISED_LIMITS,
        },
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seconds", type=float, default=20.0, help="measured window (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="warm-up before the window (default 3)")
    p.add_argument("--users", type=int, default=USERS, help=f"concurrent users binding (default {USERS})")
    p.add_argument("--archives", type=int, default=ARCHIVES, help=f"synthetic archives (default {ARCHIVES:,})")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument(
        "--healthz-every", type=float, default=0.02, help="seconds between two /healthz probes (default 0.02)"
    )
    p.add_argument(
        "--pg-url",
        nargs="?",
        const=os.environ.get("DATABASE_URL_PG") or DEFAULT_PG_URL,
        help="run on PostgreSQL: a fresh wb_bench_* database on this server, dropped afterwards"
        f" (without a value: $DATABASE_URL_PG or {DEFAULT_PG_URL}); default SQLite",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="round trips arriving per second (Poisson), at most --users at once; default: users loop without pause",
    )
    p.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the floor (the same load on a server doing only the round trip's I/O)",
    )
    p.add_argument("--profile", action="store_true", help="run the server under cProfile")
    args = p.parse_args(argv)
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be > 0")
    if args.seconds <= 0 or args.warmup < 0 or args.users < 1 or args.archives < 1 or args.healthz_every <= 0:
        p.error("--seconds, --users, --archives and --healthz-every must be > 0, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1])
    if argv[:1] == ["--floor-child"]:
        return floor_main(argv[1])
    args = parse_args(argv)
    cpus = harness.pin_load_generator("bench/binding.py")
    stamp = harness.utc_stamp()
    args.profile_path = RESULTS / f"binding-{stamp}.pstats"
    machine = machine_info(server_cpu=cpus[0], client_cpu=cpus[1], tornado=tornado.version)
    machine["redis"] = "REDIS_URL" if os.environ.get("REDIS_URL") else "embedded"
    with (
        harness.exits_on_failure("bench/binding.py", OSError, asyncpg.PostgresError),
        tempfile.TemporaryDirectory(prefix="wb-bench-binding-") as tmp,
    ):
        if args.pg_url:
            admin = harness.normalised_url(args.pg_url)
            args.pg_url_shown = admin.render_as_string(hide_password=True)
            with harness.fresh_database(admin) as db:
                machine["database"] = f"PostgreSQL {harness.server_version(admin)}"
                result = measure(args, Path(tmp), cpus, db.render_as_string(hide_password=False))
        else:
            args.pg_url_shown = None
            machine["database"] = "SQLite"
            result = measure(args, Path(tmp), cpus, f"sqlite+aiosqlite:///{Path(tmp).resolve() / 'bench.db'}")
    machine["loadavg_end"] = os.getloadavg()
    result = report(result, machine, args)
    if args.profile:
        harness.print_profile(args.profile_path, "server")
        result["profile"] = str(args.profile_path.relative_to(PROJECT))
    print(f"results: {harness.save(result, 'binding', stamp).relative_to(PROJECT)}")
    return harness.exit_code(result["failures"])


if __name__ == "__main__":
    sys.exit(main())
