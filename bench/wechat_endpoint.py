"""``/wechat`` benchmark: the safe-mode callback against a bare Tornado handler, same core, same run.

Run by ``make bench`` as ``.venv/bin/python bench/wechat_endpoint.py [options]``. Two server child
processes, one after the other, each pinned to the first CPU this process may use:

* **bare Tornado** — a ``tornado.web.RequestHandler`` whose ``post`` returns a fixed body (a
  safe-mode text reply of the usual size): what Tornado alone costs per request;
* **/wechat** — the real application (``build_services`` + ``make_app``) from real settings in
  demo mode: a temp ``data_dir``, a fresh SQLite database migrated with
  ``wechat_backend.db.upgrade`` holding one institution (imported as upstream sends it), Redis from
  ``$REDIS_URL`` or else the embedded server (empty ``[redis] url``), known WeChat token /
  EncodingAESKey / app_id. Logging is set up as ``wechat-backend serve`` sets it up (INFO, access
  log included) in both children; their stderr goes to a file in the temp dir.

The load generator is this process, pinned to the second CPU: an asyncio client (protocol
callbacks, no streams) keeping ``--connections`` persistent HTTP/1.1 keep-alive connections, each
sending its next request as soon as the previous response (Content-Length framed) is complete.

Only followers can message an official account, so the load comes from a pool of ``--followers``
openids (default 2,000). Each first follows: an unmeasured warm-up sends one ``subscribe`` event per
openid to /wechat (every other one through the bench institution's QR code, ``qrscene_<code>``),
which records the identity as a real follow does; every reply must be 200 and 1 in 10 must be the
right welcome. The measured /wechat phases then send text messages from the followers in turn, each
with its own ``MsgId`` and ``Content`` — nothing is replayed, so dedupe never answers from its
cache. Every request is built before its phase starts, encrypted with wechatpy's
``WeChatCrypto.encrypt_message``, with ``signature``, ``msg_signature``, ``timestamp`` (now),
``nonce``, ``encrypt_type=aes`` and ``openid``, so the client spends no CPU on crypto while
measuring. The bare handler gets requests built the same way (and ignores them).

Phases (warm-up ``--warmup`` s, then ``--seconds`` s measured; requests completed in the window
count): bare Tornado; /wechat with text messages that get the fallback answer (which names the
institution's consultation phone for followers who came through its code); /wechat with 1 in 10
messages a keyword (绑定, 档案, 随访, 体检, 留言, 帮助 in turn). Redis, when embedded, runs on the
client's CPU so that the server's CPU holds the server process only.

Checks: every response must be 200; 1 % of /wechat responses (kept during the run, checked after
it) must decrypt to a text reply to the sender with the expected answer for that follower; the
server's own counts must show every request (follows included) processed once (no retry, no
missing dedupe, nothing in the background).
Any failure exits 1 (after printing and saving the results); a missed target prints MISSED and
exits 0. Targets (from the issue): /wechat >= 0.5 x the bare handler's requests/s; p99 < 20 ms.

``--profile`` runs the /wechat server under cProfile (its figures are then not comparable) and
prints the top functions. Results go to stdout as a table and to
``bench/results/wechat-endpoint-<UTC timestamp>.json`` and ``wechat-endpoint-latest.json``;
progress goes to stderr. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import harness
import tornado
import wechatpy
from harness import PROJECT, RESULTS, BenchError, log, ms, percentile, verdict
from machine import machine_info
from wechatpy.crypto import WeChatCrypto

from wechat_backend.config import Settings, load_settings
from wechat_backend.db import upgrade_url
from wechat_backend.services import build_services
from wechat_backend.wechat import replies

RATIO_TARGET = 0.5
P99_TARGET_MS = 20.0

# Known WeChat values for the bench account (not secrets: a throwaway demo account).
TOKEN = "wbBenchToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_ID = "wx5b6e1c0d2a3f4e71"
ACCOUNT = "gh_0b5e1c0d2a3f"
KEYWORD_EVERY = 10
FOLLOWERS = 2000  # default size of the follower pool
SCENE_EVERY = 2  # every other follower follows through the bench institution's QR code
BENCH_INSTITUTION_CODE = "371522001"
BENCH_INSTITUTION = replies.Contact("莘县燕店镇卫生院", "0635-7123456")
SAMPLE_EVERY = 100  # 1 % of /wechat responses are decrypted and checked after the phase
DRAIN_TIMEOUT = 10.0
BUSY_SERVER = 0.95  # below this share of its CPU, the server was not what limited the phase
BUSY_CLIENT = 0.90  # above this, the load generator may have been

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")
_FIELD = r"<{0}>(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))</{0}>"


# --------------------------------------------------------------------------- settings


def bench_settings(data_dir: Path, key_prefix: str) -> Settings:
    """Real settings in demo mode; Redis from $REDIS_URL, else the embedded server (empty url)."""
    return load_settings(
        environ={},
        overrides={
            "server": {"mode": "demo", "data_dir": str(data_dir)},
            "database": {"url": f"sqlite+aiosqlite:///{(data_dir / 'bench.db').resolve()}"},
            "redis": {"url": os.environ.get("REDIS_URL", ""), "key_prefix": key_prefix},
            "wechat": {"token": TOKEN, "encoding_aes_key": AES_KEY, "app_id": APP_ID},
        },
    )


async def prepare_database(settings: Settings) -> None:
    """Migrate, then import the institution some followers follow through (as upstream sends it)."""
    await upgrade_url(settings.database.url)
    services = await build_services(settings, with_redis=False)
    try:
        line = {
            "type": "institution",
            "upstream_id": "bench-inst-1",
            "version": 1,
            "code": BENCH_INSTITUTION_CODE,
            "name": BENCH_INSTITUTION.institution,
            "county_code": BENCH_INSTITUTION_CODE[:6],
            "county_name": "莘县",
            "consult_phone": BENCH_INSTITUTION.phone,
        }
        report = await services.ingest.import_objects([json.dumps(line, ensure_ascii=False)])
    finally:
        await services.close()
    if report.inserted != 1:
        raise BenchError(f"the bench institution was not imported: {report.errors}")


def home_url(settings: Settings) -> str:
    return f"{settings.server.public_base_url.rstrip('/')}/r/home"


# --------------------------------------------------------------------------- the server children


def child_main(kind: str, config_path: str) -> int:
    """A server child: pinned first (threads it starts inherit the CPU), then serves until SIGTERM."""
    cfg = harness.child_config(config_path)
    serve = _serve_wechat if kind == "wechat" else _serve_bare
    asyncio.run(serve(cfg))
    return 0


async def _serve_bare(cfg: dict[str, Any]) -> None:
    import tornado.web
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    body = cfg["bare_body"].encode()

    class Bare(tornado.web.RequestHandler):
        def post(self) -> None:
            self.set_header("Content-Type", "application/xml; charset=utf-8")
            self.finish(body)

    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(tornado.web.Application([(r"/wechat", Bare)]), xheaders=False)
    server.add_sockets(sockets)
    await harness.serve_until_sigterm(sockets[0].getsockname()[1], None)
    server.stop()
    await server.close_all_connections()
    harness.announce({"stopped": True})


async def _serve_wechat(cfg: dict[str, Any]) -> None:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from wechat_backend.app import make_app, settle_heap

    settings = bench_settings(Path(cfg["data_dir"]), cfg["key_prefix"])
    services = await build_services(settings)
    try:
        redis_pid = harness.pin_embedded_redis(services, cfg["client_cpu"])
        sockets = bind_sockets(0, "127.0.0.1")
        app = make_app(services)
        settle_heap()  # as `wechat-backend serve`
        server = HTTPServer(app, xheaders=False)  # as `wechat-backend serve` (app.listen)
        server.add_sockets(sockets)
        await harness.serve_until_sigterm(sockets[0].getsockname()[1], redis_pid, cfg.get("profile_path", ""))
        server.stop()
        await server.close_all_connections()
        counts = dict(services.callback.counts)
    finally:
        await services.close()
    harness.announce({"stopped": True, "counts": counts})


def start_server(kind: str, cfg: dict[str, Any], tmp: Path) -> harness.ServerChild:
    return harness.start_child(f"{kind} server", [str(Path(__file__).resolve()), "--child", kind], cfg, tmp / kind)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Sent:
    """What a request asked, to check its reply: the sender and the expected answer."""

    openid: str
    expected: str


def _sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _field(xml: str, tag: str) -> str:
    m = re.search(_FIELD.format(tag), xml, re.S)
    if not m:
        raise BenchError(f"no <{tag}> in {xml[:80]!r}")
    return m.group(1) if m.group(1) is not None else m.group(2)


class RequestFactory:
    """Safe-mode pushes as WeChat sends them, from a pool of followers: their follow events, then
    text messages each with its own MsgId and content."""

    def __init__(self, settings: Settings, port: int, first_seq: int, followers: int) -> None:
        self._crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
        self._host = f"127.0.0.1:{port}"
        self._home = home_url(settings)
        self.seq = first_seq
        self._keywords = [word for word, _ in replies.KEYWORDS]
        self.openids = [f"oBench{n:022d}" for n in range(1, followers + 1)]
        # Every other follower came through the bench institution's QR code: its replies name its phone.
        self.contacts = {
            openid: BENCH_INSTITUTION if n % SCENE_EVERY == 0 else replies.Contact()
            for n, openid in enumerate(self.openids)
        }

    def content(self, keyword_every: int | None, contact: replies.Contact) -> tuple[str, str]:
        """(text the resident typed, the answer the account should give)."""
        n = self.seq
        if keyword_every and n % keyword_every == 0:
            word = self._keywords[(n // keyword_every) % len(self._keywords)]
            text = f"{word} {n}"
        else:
            text = f"请问社区医院周末几点开门？第{n}次"
        menu_key = replies.keyword_key(text)
        if keyword_every is None and menu_key is not None:
            raise BenchError(f"fallback text {text!r} matches keyword {menu_key}")
        return text, replies.answer(menu_key or "", self._home, contact)

    def follows(self) -> tuple[list[bytes], list[Sent]]:
        """A ``subscribe`` event from every follower, through the institution's QR code for some."""
        requests: list[bytes] = []
        sent: list[Sent] = []
        for openid in self.openids:
            contact = self.contacts[openid]
            scene = f"<EventKey><![CDATA[qrscene_{BENCH_INSTITUTION_CODE}]]></EventKey>" if contact.phone else ""
            fields = f"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>{scene}"
            requests.append(self._request(openid, fields))
            sent.append(Sent(openid, replies.welcome(self._home, contact.institution)))
        return requests, sent

    def build(self, count: int, keyword_every: int | None) -> tuple[list[bytes], list[Sent]]:
        """``count`` text messages from the followers in turn, each with its own MsgId and content."""
        requests: list[bytes] = []
        sent: list[Sent] = []
        for _ in range(count):
            self.seq += 1
            openid = self.openids[self.seq % len(self.openids)]
            text, expected = self.content(keyword_every, self.contacts[openid])
            fields = (
                f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content>"
                f"<MsgId>{7_000_000_000_000_000_000 + self.seq}</MsgId>"
            )
            requests.append(self._request(openid, fields))
            sent.append(Sent(openid, expected))
        return requests, sent

    def _request(self, openid: str, fields: str) -> bytes:
        """The whole HTTP request: encrypted, signed, timestamped now."""
        now = str(int(time.time()))
        nonce = str(secrets.randbelow(10**10))
        inner = (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{now}</CreateTime>{fields}</xml>"
        )
        envelope = self._crypto.encrypt_message(inner, nonce, now)
        encrypted = _field(envelope, "Encrypt")
        query = (
            f"signature={_sign(TOKEN, now, nonce)}&timestamp={now}&nonce={nonce}&openid={openid}"
            f"&encrypt_type=aes&msg_signature={_field(envelope, 'MsgSignature')}"
        )
        body = (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        ).encode()
        head = (
            f"POST /wechat?{query} HTTP/1.1\r\nHost: {self._host}\r\nUser-Agent: Mozilla/4.0\r\nAccept: */*\r\n"
            f"Pragma: no-cache\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head + body

    def reply_like(self) -> str:
        """A safe-mode text reply of the usual size: the bare handler's fixed body."""
        inner = (
            f"<xml><ToUserName><![CDATA[oBench{0:022d}]]></ToUserName><FromUserName><![CDATA[{ACCOUNT}]]>"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{replies.fallback(replies.Contact())}]]></Content></xml>"
        )
        return self._crypto.encrypt_message(inner, "1234567890", str(int(time.time())))


def check_reply(body: bytes, sent: Sent, crypto: WeChatCrypto) -> str | None:
    """None when ``body`` is a sealed text reply to ``sent.openid`` saying ``sent.expected``."""
    try:
        xml = body.decode("utf-8")
        inner = crypto.decrypt_message(xml, _field(xml, "MsgSignature"), _field(xml, "TimeStamp"), _field(xml, "Nonce"))
        root = ElementTree.fromstring(inner)  # our own server's output, checked for the benchmark
    except Exception as exc:
        return f"reply does not decrypt ({type(exc).__name__})"
    fields = {child.tag: child.text or "" for child in root}
    if fields.get("MsgType") != "text":
        return f"MsgType {fields.get('MsgType')!r}, expected text"
    if fields.get("ToUserName") != sent.openid or fields.get("FromUserName") != ACCOUNT:
        return "reply not addressed to the sender"
    if fields.get("Content") != sent.expected:
        return "unexpected reply text"
    return None


# --------------------------------------------------------------------------- the load generator


class Load:
    """One phase: ``connections`` keep-alive connections, closed loop, window [warm-up end, end]."""

    def __init__(self, requests: list[bytes], limit: int, cycle: bool, sample_every: int | None) -> None:
        self.requests = requests
        self.limit = limit  # most requests this phase may send
        self.cycle = cycle  # the bare phase reuses its requests; /wechat never sends one twice
        self.sample_every = sample_every
        self.next_index = 0
        self.measuring = False
        self.stopping = False
        self.exhausted_at: float | None = None
        self.in_window = 0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.completed = 0
        self.samples: list[tuple[int, bytes]] = []
        self.errors: list[str] = []
        self.window_end = math.inf
        self.idle = asyncio.Event()
        self.open = 0

    def take(self) -> tuple[int, bytes] | None:
        if self.stopping:
            return None
        i = self.next_index
        if i >= self.limit or (not self.cycle and i >= len(self.requests)):
            if self.exhausted_at is None:
                self.exhausted_at = time.perf_counter()
            return None
        self.next_index = i + 1
        return i, self.requests[i % len(self.requests)]

    def done(self, index: int, status: int, started: float, body: bytes) -> None:
        now = time.perf_counter()
        self.completed += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if self.measuring and now <= self.window_end:
            self.in_window += 1
            self.latencies.append(now - started)
        if self.sample_every and index % self.sample_every == 0:
            self.samples.append((index, body))


class Connection(asyncio.Protocol):
    def __init__(self, load: Load) -> None:
        self.load = load
        self.buf = b""
        self.index = -1
        self.started = 0.0
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.load.open += 1

    def send_next(self) -> None:
        item = self.load.take()
        if item is None:
            self.busy = False
            self._maybe_idle()
            return
        self.index, request = item
        self.busy = True
        self.started = time.perf_counter()
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            pos = head.find(b"\r\ncontent-length:")
            if pos < 0:
                self._fail("response without Content-Length")
                return
            eol = head.find(b"\r\n", pos + 2)
            length = int(head[pos + 17 : eol if eol >= 0 else len(head)])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            m = _STATUS.match(self.buf)
            status = int(m.group(1)) if m else 0
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            if not self.busy:
                self._fail("response without a request")
                return
            self.load.done(self.index, status, self.started, body)
            self.send_next()

    def _fail(self, why: str) -> None:
        self.load.errors.append(why)
        self.busy = False
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.open -= 1
        if self.busy:
            self.load.errors.append(f"connection lost mid-request ({type(exc).__name__ if exc else 'closed'})")
            self.busy = False
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        if not self.busy:
            self.load.idle.set()


@dataclass
class Phase:
    name: str
    requests: int  # completed in the measured window
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    sent: int  # all requests of the phase, warm-up and drain included
    statuses: dict[str, int]
    server_cpu: float  # share of one CPU used by the server process during the window
    client_cpu: float  # the same for this load generator
    redis_cpu: float | None
    note: str = ""
    reply_checks: int = 0
    reply_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_200(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != "200")


async def _connect(load: Load, child: harness.ServerChild, connections: int) -> list[Connection]:
    """Open the keep-alive connections, each sending its first request at once."""
    loop = asyncio.get_running_loop()
    conns: list[Connection] = []
    for _ in range(connections):
        _, proto = await loop.create_connection(lambda: Connection(load), "127.0.0.1", child.port)
        conns.append(proto)
    for c in conns:
        c.send_next()
    return conns


async def _wait_while(load: Load, busy: Callable[[], bool], deadline: float) -> None:
    """Wake up each time a connection goes idle, until ``busy()`` is false or the deadline (loop time)."""
    loop = asyncio.get_running_loop()
    while busy() and loop.time() < deadline:
        load.idle.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(load.idle.wait(), max(0.01, deadline - loop.time()))


async def _hang_up(conns: list[Connection]) -> None:
    """Close every connection, and give the closes a moment to be seen."""
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    await asyncio.sleep(0.05)


async def _drive(load: Load, child: harness.ServerChild, args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    loop = asyncio.get_running_loop()
    conns = await _connect(load, child, args.connections)
    await asyncio.sleep(args.warmup)
    cpu0 = (harness.cpu_seconds(child.pid), time.process_time(), harness.cpu_seconds(child.redis_pid))
    started = time.perf_counter()
    load.measuring = True
    load.window_end = started + args.seconds
    await asyncio.sleep(args.seconds)
    ended = time.perf_counter()
    cpu1 = (harness.cpu_seconds(child.pid), time.process_time(), harness.cpu_seconds(child.redis_pid))
    load.stopping = True
    load.measuring = False
    await _wait_while(load, lambda: any(c.busy for c in conns), loop.time() + DRAIN_TIMEOUT)
    stuck = sum(c.busy for c in conns)
    if stuck:
        load.errors.append(f"{stuck} requests unanswered {DRAIN_TIMEOUT:.0f} s after the window")
    await _hang_up(conns)
    if load.exhausted_at is not None and load.exhausted_at < ended:
        ended = max(started, load.exhausted_at)
    span = ended - started
    cpu = {
        "server": (cpu1[0] - cpu0[0]) / args.seconds,
        "client": (cpu1[1] - cpu0[1]) / args.seconds,
        "redis": (cpu1[2] - cpu0[2]) / args.seconds,
    }
    return span, cpu


async def _drive_all(load: Load, child: harness.ServerChild, args: argparse.Namespace) -> None:
    """Every request of ``load`` once, over the same connections, then stop (nothing measured)."""
    loop = asyncio.get_running_loop()
    conns = await _connect(load, child, args.connections)
    deadline = loop.time() + DRAIN_TIMEOUT + len(load.requests) / 100  # at least 100 follows a second
    await _wait_while(load, lambda: any(c.busy for c in conns) or load.next_index < len(load.requests), deadline)
    stuck = len(load.requests) - load.completed
    if stuck:
        load.errors.append(f"{stuck} follows unanswered")
    await _hang_up(conns)


def follow_all(child: harness.ServerChild, requests: list[bytes], sent: list[Sent], args: argparse.Namespace) -> Load:
    """The unmeasured warm-up: every follower follows; each reply must be 200, 1 in 10 is checked."""
    log(f"follow: {len(requests):,} followers subscribe (not measured) ...")
    load = Load(requests, len(requests), False, 10)
    asyncio.run(_drive_all(load, child, args))
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    problems = [f"follow {i}: {p}" for i, body in load.samples if (p := check_reply(body, sent[i], crypto))]
    problems += [f"follow: {n:,} responses with status {s}" for s, n in load.statuses.items() if s != 200]
    problems += [f"follow: {e}" for e in dict.fromkeys(load.errors)]
    if problems:
        raise BenchError("the follows were not all answered correctly: " + "; ".join(problems[:5]))
    log(f"  {load.completed:,} follows answered, {len(load.samples)} welcome replies checked")
    return load


def run_phase(
    name: str, child: harness.ServerChild, requests: list[bytes], args: argparse.Namespace, *, cycle: bool, sample: bool
) -> tuple[Phase, Load]:
    load = Load(requests, args.max_requests, cycle, SAMPLE_EVERY if sample else None)
    log(f"{name}: {args.connections} connections, {args.warmup:g} s warm-up + {args.seconds:g} s ...")
    span, cpu = asyncio.run(_drive(load, child, args))
    ordered = sorted(load.latencies)
    note = ""
    if load.exhausted_at is not None:
        note = f"request pool ran out after {load.next_index:,} requests: window cut to {span:.1f} s"
    phase = Phase(
        name=name,
        requests=load.in_window,
        seconds=span,
        p50_ms=percentile(ordered, 0.50),
        p90_ms=percentile(ordered, 0.90),
        p99_ms=percentile(ordered, 0.99),
        max_ms=ordered[-1] * 1000 if ordered else math.nan,
        sent=load.next_index,
        statuses={str(k): v for k, v in sorted(load.statuses.items())},
        server_cpu=cpu["server"],
        client_cpu=cpu["client"],
        redis_cpu=cpu["redis"] if child.redis_pid else None,
        note=note,
        errors=list(dict.fromkeys(load.errors)),
    )
    log(f"  {phase.rate:,.0f} req/s, p50 {phase.p50_ms:.1f} ms, p99 {phase.p99_ms:.1f} ms")
    return phase, load


def verify_samples(phase: Phase, load: Load, sent: list[Sent]) -> None:
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    for index, body in load.samples:
        phase.reply_checks += 1
        problem = check_reply(body, sent[index], crypto)
        if problem:
            phase.reply_failures.append(f"request {index}: {problem}")


# --------------------------------------------------------------------------- the run


def measure(args: argparse.Namespace, tmp: Path, cpus: tuple[int, int]) -> tuple[list[Phase], dict[str, Any]]:
    settings = bench_settings(tmp, f"bench{secrets.token_hex(3)}")
    asyncio.run(prepare_database(settings))
    cfg: dict[str, Any] = {
        "server_cpu": cpus[0],
        "client_cpu": cpus[1],
        "data_dir": str(tmp),
        "key_prefix": settings.redis.key_prefix,
        "profile_path": str(args.profile_path) if args.profile else "",
    }
    # Phase 1: bare Tornado, with the same requests (a pool reused in turn).
    factory = RequestFactory(settings, 0, first_seq=0, followers=args.followers)
    cfg["bare_body"] = factory.reply_like()
    bare_child = start_server("bare", cfg, tmp)
    try:
        pool, _ = RequestFactory(settings, bare_child.port, first_seq=0, followers=args.followers).build(2000, None)
        bare, _ = run_phase("bare Tornado handler", bare_child, pool, args, cycle=True, sample=False)
        bare_child.stop()
    finally:
        bare_child.kill()
    # Phases 2 and 3: /wechat; a fresh request for every send, sized from the bare rate (it cannot beat it).
    phases = [bare]
    wechat_child = start_server("wechat", cfg, tmp)
    try:
        factory = RequestFactory(settings, wechat_child.port, first_seq=10**9, followers=args.followers)
        processed = follow_all(wechat_child, *factory.follows(), args).completed
        size = min(args.max_requests, int(bare.rate * (args.warmup + args.seconds) * 1.25) + 4 * args.connections)
        for name, every in (("/wechat fallback text", None), (f"/wechat 1 in {KEYWORD_EVERY} keyword", KEYWORD_EVERY)):
            log(f"building {size:,} encrypted requests for {name} ...")
            pool, sent = factory.build(size, every)
            phase, load = run_phase(name, wechat_child, pool, args, cycle=False, sample=True)
            verify_samples(phase, load, sent)
            processed += load.completed
            phases.append(phase)
            del pool, sent
        counts = wechat_child.stop()["counts"]
    finally:
        wechat_child.kill()
    server = {"counts": counts, "responses": processed, "redis": "REDIS_URL" if settings.redis.url else "embedded"}
    return phases, server


def server_problems(server: dict[str, Any]) -> list[str]:
    counts = server["counts"]
    problems = []
    if counts.get("processed", 0) != server["responses"]:
        problems.append(f"server processed {counts.get('processed', 0):,} messages, client got {server['responses']:,}")
    for name in ("retried", "no_dedupe", "background"):
        if counts.get(name):
            problems.append(f"server counted {counts[name]:,} {name}")
    return problems


def endpoint_machine_info(cpus: tuple[int, int]) -> dict[str, Any]:
    return machine_info(server_cpu=cpus[0], client_cpu=cpus[1], tornado=tornado.version, wechatpy=wechatpy.__version__)


# --------------------------------------------------------------------------- output


def report(
    phases: list[Phase], server: dict[str, Any], machine: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    bare = phases[0]
    print(
        f"{'phase':<26}{'requests':>10}{'seconds':>9}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'ratio':>7}"
        f"{'server CPU':>12}{'client CPU':>12}"
    )
    for p in phases:
        print(
            f"{p.name:<26}{p.requests:>10,}{p.seconds:>9.1f}{p.rate:>9,.0f}{ms(p.p50_ms):>8}{ms(p.p99_ms):>8}"
            f"{p.rate / bare.rate:>7.2f}{p.server_cpu:>12.0%}{p.client_cpu:>12.0%}"
        )
    targets: dict[str, Any] = {}
    for p in phases[1:]:
        ratio = p.rate / bare.rate
        ratio_ok, p99_ok = ratio >= RATIO_TARGET, p.p99_ms < P99_TARGET_MS
        print(f"{p.name}: ratio {ratio:.2f} (target >= {RATIO_TARGET:.2f})  {verdict(ratio_ok)}")
        print(f"{p.name}: p99 {p.p99_ms:.1f} ms (target < {P99_TARGET_MS:.0f} ms)  {verdict(p99_ok)}")
        targets[p.name] = {
            "ratio": {"value": ratio, "target": f">= {RATIO_TARGET}", "met": ratio_ok},
            "p99_ms": {"value": p.p99_ms, "target": f"< {P99_TARGET_MS}", "met": p99_ok},
        }
    for p in phases:
        statuses = ", ".join(f"{s}: {n:,}" for s, n in p.statuses.items())
        checked = f"; {p.reply_checks} replies decrypted and checked" if p.reply_checks else ""
        print(f"  {p.name}: {p.sent:,} requests sent (warm-up, window and drain), statuses {statuses}{checked}")
        if p.redis_cpu is not None:
            print(f"    embedded redis-server (on the client's CPU) used {p.redis_cpu:.0%} of a CPU")
        if p.note:
            print(f"    note: {p.note}")
    for p in phases:
        if p.server_cpu < BUSY_SERVER:
            print(
                f"WARNING: {p.name}: the server process got {p.server_cpu:.0%} of its CPU;"
                " something else ran on it (or the client could not keep it busy): figures skewed"
            )
        if p.client_cpu > BUSY_CLIENT:
            print(
                f"WARNING: {p.name}: the load generator used {p.client_cpu:.0%} of its CPU: figures may be client-bound"
            )
    counts = ", ".join(f"{k}={v:,}" for k, v in sorted(server["counts"].items()))
    print(f"/wechat server counts: {counts or 'none'} (client got {server['responses']:,} responses)")
    if args.profile:
        print("PROFILED RUN: /wechat ran under cProfile; its figures are not comparable with the bare handler")
    print(
        f"ratio = req/s / bare Tornado handler's req/s (same run, same core); {args.connections} connections,"
        f" {args.warmup:g} s warm-up, {args.seconds:g} s window; p50/p99 over the window's requests"
    )
    print(
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model'] or 'unknown model'}), server on CPU"
        f" {machine['server_cpu']}, client on CPU {machine['client_cpu']}; Python {machine['python']},"
        f" Tornado {machine['tornado']}, wechatpy {machine['wechatpy']}; SQLite, Redis {server['redis']}"
    )
    load = [" / ".join(f"{a:.1f}" for a in machine[k]) for k in ("loadavg_start", "loadavg_end")]
    print(f"load average (1/5/15 min) at start {load[0]}, at end {load[1]}; code: {machine['git'] or 'unknown'}")
    return {
        "phases": [
            asdict(p) | {"requests_per_second": p.rate, "ratio": p.rate / bare.rate, "non_200": p.non_200}
            for p in phases
        ],
        "targets": targets,
        "server": server,
        "machine": machine,
        "options": {
            "seconds": args.seconds,
            "warmup": args.warmup,
            "connections": args.connections,
            "max_requests": args.max_requests,
            "followers": args.followers,
            "profile": args.profile,
        },
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per phase (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up before each window (default 2)")
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections (default 32)")
    p.add_argument(
        "--max-requests", type=int, default=200_000, help="most requests one phase may send (default 200,000)"
    )
    p.add_argument(
        "--followers", type=int, default=FOLLOWERS, help=f"followers sending the messages (default {FOLLOWERS:,})"
    )
    p.add_argument("--profile", action="store_true", help="run the /wechat server under cProfile")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.connections < 1 or args.max_requests < args.connections:
        p.error("--seconds must be > 0, --warmup >= 0, --connections >= 1, --max-requests >= --connections")
    if args.followers < 1:
        p.error("--followers must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1], argv[2])
    args = parse_args(argv)
    cpus = harness.pin_load_generator("bench/wechat_endpoint.py")
    stamp = harness.utc_stamp()
    args.profile_path = RESULTS / f"wechat-endpoint-{stamp}.pstats"
    machine = endpoint_machine_info(cpus)
    with (
        harness.exits_on_failure("bench/wechat_endpoint.py"),
        tempfile.TemporaryDirectory(prefix="wb-bench-wechat-") as tmp,
    ):
        phases, server = measure(args, Path(tmp), cpus)
    machine["loadavg_end"] = os.getloadavg()
    result = report(phases, server, machine, args)
    if args.profile:
        harness.print_profile(args.profile_path, "/wechat server")
        result["profile"] = str(args.profile_path.relative_to(PROJECT))
    failures = [f"{p.name}: {n:,} non-200 responses {p.statuses}" for p in phases if (n := p.non_200)]
    failures += [f"{p.name}: {e}" for p in phases for e in p.errors]
    failures += [f"{p.name}: {f}" for p in phases for f in p.reply_failures[:5]]
    failures += [f"{p.name}: no reply was sampled" for p in phases[1:] if not p.reply_checks]
    failures += server_problems(server)
    result["failures"] = failures
    print(f"results: {harness.save(result, 'wechat-endpoint', stamp).relative_to(PROJECT)}")
    return harness.exit_code(failures)


if __name__ == "__main__":
    sys.exit(main())
