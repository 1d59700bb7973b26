"""Notify benchmark: pushes sent through one worker, and the daily due scan at 1,000,000 archives.

Run by ``make bench`` as ``.venv/bin/python bench/notify.py``.

**Sending** — ``--pushes`` pending outbox rows (default 100,000; kind ``followup_due``, priority 1,
due now, payload sealed as ``Queuer.row`` seals it, ``archive_id`` NULL so the send-time visibility
check is not part of the figure) for ``--followers`` subscribed official-account identities
(default 2,000), in a copy of the 20,000-archive template of ``bench/records.py``. One
``wechat-backend worker`` process (the real command, its own config file) sends them to the
sandbox: the real application (``build_services`` + ``make_app``, ``[sandbox] enabled``, demo mode)
in a child process pinned to the first CPU, knowing the same openids as followers, with the fault
``{"api": "cgi-bin/message/template/send", "latency_ms": 20, "count": 0}`` on every send; it does
not write its state file (``--sandbox-persist`` lets it: at 100,000 pushes its writes, not the
worker, set the pace). The worker runs on the second CPU. Reported: pushes/s (from the worker's start to the last row
recorded sent), its peak RSS (``VmHWM``), the sandbox's count of send calls (must equal the
pushes: no duplicates, no retries). A second, smaller run (``--visible-pushes``, default 20,000)
does the same with rows about visible archives, each bound to its follower, so that the send-time
check (archive rows read and decrypted, the binding and the mutes read again, per batch) is in the
figure.

**Floor** — the same number of template sends, the same bodies, the same concurrency
(``[notify] concurrency``, default 16) and the same 20 ms, posted straight to the same sandbox with
httpx by this process (no database, no outbox). ``worker ÷ floor`` is what claiming, sealing and
recording cost; concurrency ÷ latency (800/s by default) is the ceiling neither can pass.

**Due scan** — ``DueScanner.scan(day)`` on a copy of a template ``wb_bench_notify_<size>``: the
``bench/records.py`` template of ``--archives`` archives (default 1,000,000, about 3.9 million
records), migrated, with ``due_items`` as the import writes them (each archive's birth date and
every record labelled N decrypted and run through ``notify.schedule`` as ``ingest.prepare`` does),
``--bound-share`` of the archives (default 30 %) bound to a subscribed official-account identity
each, and 2 % of those muting one reminder kind. Run three times: the first scan after the import
(which also rolls forward the child checks and yearly exams whose date passed), the same day again
(must queue nothing) and the next day. **Floor**: the statements the scan reads (the passed items,
the window, then per batch of 1,000 the recipients, the mutes and the archive rows) without
decrypting, deciding, updating or inserting.

Output: a table on stdout, progress on stderr, ``bench/results/notify-<UTC stamp>.json`` and
``notify-latest.json``. A missed target prints MISSED and exits 0; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import itertools
import json
import math
import multiprocessing
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import asyncpg
import harness
import httpx
import records
from binding import forget_keys
from harness import DEFAULT_PG_URL, PROJECT, BenchError, log, verdict
from machine import machine_info
from sqlalchemy.engine import URL

from wechat_backend.config import SecuritySettings, Settings, load_settings
from wechat_backend.crypto import KeyRing
from wechat_backend.db import upgrade_url
from wechat_backend.ids import new_public_id
from wechat_backend.notify.kinds import DUE_KINDS, FOLLOWUP_DUE
from wechat_backend.notify.message import client_msg_id, link, template_data
from wechat_backend.notify.schedule import due_from_birth, due_from_record

PUSHES, QUICK_PUSHES = 100_000, 3_000
FOLLOWERS, QUICK_FOLLOWERS = 2_000, 200
VISIBLE_PUSHES, QUICK_VISIBLE = 20_000, 1_000
ARCHIVES, QUICK_ARCHIVES = 1_000_000, 20_000
SEND_ARCHIVES = 20_000  # the records template the send database is copied from (archives for the visible run)
LATENCY_MS = 20
BOUND_SHARE = 0.30
MUTE_SHARE = 0.02
SEND_TARGET = 500.0  # pushes/s through one worker
SCAN_TARGET = 60.0  # seconds for a due scan at 1,000,000 archives
SEND_API = "cgi-bin/message/template/send"
KIND = FOLLOWUP_DUE
FIELDS = {"thing1": "kind", "time2": "date", "thing3": "institution", "thing4": "name"}  # as the demo's templates
NOTIFY_FORMAT = 1  # bump when what the notify template holds changes: older ones are rebuilt
POLL_SECONDS = 0.5
STALL_SECONDS = 60.0  # no row changed for this long: the worker is stuck
BUSY_WAIT = 0.25  # above this share of a phase with some task waiting for a CPU, other work competed
DUE_RANGE = 20_000  # archives per task of the due-item build
INSTITUTION = "某卫生院"


# --------------------------------------------------------------------------- configuration


def send_config(cfg: dict[str, Any], base: str) -> dict[str, dict[str, Any]]:
    """The settings of the sandbox and the worker (demo mode, the sandbox as WeChat, quiet hours off)."""
    notify: dict[str, Any] = {"quiet_start": "00:00", "quiet_end": "00:00"}  # equal: quiet hours off
    if cfg.get("concurrency"):
        notify["concurrency"] = cfg["concurrency"]
    return {
        "server": {"mode": "demo", "data_dir": cfg["data_dir"], "public_base_url": base},
        "database": {"url": cfg["db_url"]},
        "redis": {"url": cfg["redis_url"], "key_prefix": cfg["key_prefix"]},
        "sandbox": {"enabled": True},
        "wechat": {"api_base_url": f"{base}/sandbox/", "open_base_url": f"{base}/sandbox/"},
        "notify": notify,
        "templates": {KIND: {"template_id": f"bench_{KIND}", "fields": dict(FIELDS)}},
    }


def toml_text(config: dict[str, Any]) -> str:
    """The few shapes a config file needs: tables, sub-tables, strings, numbers, booleans, inline tables."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"no TOML for {type(v).__name__}")

    def inline(v: Any) -> bool:
        return not isinstance(v, dict) or all(not isinstance(x, dict) for x in v.values())

    out: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        out.append(f"[{name}]")
        out.extend(f"{k} = {value(v)}" for k, v in values.items() if inline(v))
        out.append("")
        for k, v in values.items():
            if not inline(v):
                table(f"{name}.{k}", v)

    for section, values in config.items():
        table(section, values)
    text = "\n".join(out)
    tomllib.loads(text)  # what we write must read back
    return text


def scan_settings(data_dir: Path, db_url: str) -> Settings:
    """Demo-mode settings under the templates' keys, a template for every due kind (so they queue)."""
    return load_settings(
        environ={},
        overrides={
            "server": {"mode": "demo", "data_dir": str(data_dir)},
            "database": {"url": db_url},
            "notify": {"quiet_start": "00:00", "quiet_end": "00:00"},
            "templates": {k: {"template_id": f"bench_{k}", "fields": dict(FIELDS)} for k in DUE_KINDS},
        },
    )


# --------------------------------------------------------------------------- the sandbox child


def sandbox_main(config_path: str) -> int:
    """The real application with the sandbox mounted, pinned to the server CPU."""
    cfg = harness.child_config(config_path)
    asyncio.run(_sandbox(cfg))
    return 0


async def _sandbox(cfg: dict[str, Any]) -> None:
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from wechat_backend.app import make_app, settle_heap
    from wechat_backend.services import build_services

    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    settings = load_settings(environ={}, overrides=send_config(cfg, f"http://127.0.0.1:{port}"))
    services = await build_services(settings)
    saves: list[float] = []
    try:
        app = make_app(services)
        state = app.wildcard_router.named_rules["sandbox_calls"].target_kwargs["state"]
        store = state.store
        if store is not None and not cfg["persist"]:
            state.store = None  # as SandboxState.from_settings(keep=False): no state file (--sandbox-persist keeps it)
        elif store is not None:  # time each write of the state file (it runs on the event loop)
            save = store.save

            def timed(st: Any) -> None:
                started = time.perf_counter()
                save(st)
                saves.append(time.perf_counter() - started)

            store.save = timed
        settle_heap()
        server = HTTPServer(app, xheaders=False, max_body_size=settings.limits.max_body_bytes)
        server.add_sockets(sockets)
        await harness.serve_until_sigterm(port, None)
        server.stop()
        await app.drain(timeout=10.0)
        await server.close_all_connections()
    finally:
        await services.close()
    path = settings.data_dir / "sandbox-state.json"
    harness.announce(
        {
            "stopped": True,
            "messages": sum(len(m) for m in state.messages.values()),
            "calls": dict(state.calls),
            "persist": cfg["persist"],
            "saves": len(saves),
            "save_seconds": sum(saves),
            "save_max_seconds": max(saves, default=0.0),
            "state_file_bytes": path.stat().st_size if path.exists() else 0,
            "vm_hwm_mb": proc_status(os.getpid()).get("VmHWM", 0) / 1024,
        }
    )


def write_sandbox_state(settings: Settings, openids: list[str]) -> None:
    """The sandbox's state file with these openids as users who follow the account (loaded at start)."""
    from wechat_backend.sandbox.state import Account, SandboxState, SimUser, new_wechat_id
    from wechat_backend.sandbox.store import FILE_NAME, StateStore

    w, mp = settings.wechat, settings.miniprogram
    state = SandboxState(Account(w.app_id, w.app_secret), Account(mp.app_id, mp.app_secret))
    now = time.time()
    for n, openid in enumerate(openids):
        state.users[openid] = SimUser(
            openid=openid,
            nickname=f"压测关注者{n}",
            mp_openid=new_wechat_id(),
            subscribed=True,
            subscribe_time=int(now),
            subscribe_scene="ADD_SCENE_SEARCH",
            last_interaction=now,
        )
    StateStore(settings.data_dir / FILE_NAME).save(state)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM … of a process in kB (empty once it is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name.startswith("Vm") and rest.strip().endswith("kB"):
                out[name] = int(rest.split()[0])
    return out


class Sandbox:
    """A started sandbox child, its fault set, with the control API at hand."""

    def __init__(self, child: harness.ServerChild) -> None:
        self.child = child
        self.base = f"http://127.0.0.1:{child.port}"
        self.http = httpx.Client(base_url=self.base, timeout=30.0)
        self.cpu_start = harness.cpu_seconds(child.pid)

    @classmethod
    def start(cls, name: str, cfg: dict[str, Any], stem: Path, latency_ms: int) -> Sandbox:
        child = harness.start_child(name, ["bench/notify.py", "--sandbox-child"], cfg, stem)
        box = cls(child)
        try:
            fault = {"api": SEND_API, "latency_ms": latency_ms, "count": 0}
            r = box.http.post("/sandbox/api/faults", json=fault)
            if r.status_code != 201:
                raise BenchError(f"the sandbox refused the fault: {r.status_code} {r.text[:200]}")
        except BaseException:
            box.kill()
            raise
        return box

    def calls(self) -> dict[str, int]:
        return self.http.get("/sandbox/api/calls").json()["calls"]

    def token(self, settings: Settings) -> str:
        w = settings.wechat
        params = {"grant_type": "client_credential", "appid": w.app_id, "secret": w.app_secret}
        body = self.http.get("/sandbox/cgi-bin/token", params=params).json()
        if "access_token" not in body:
            raise BenchError(f"the sandbox gave no access token: {body}")
        return body["access_token"]

    def cpu(self) -> float:
        return harness.cpu_seconds(self.child.pid) - self.cpu_start

    def stop(self) -> dict[str, Any]:
        self.http.close()
        return self.child.stop()

    def kill(self) -> None:
        self.http.close()
        self.child.kill()


# --------------------------------------------------------------------------- sending: data


async def add_followers(dsn: str, n: int) -> list[tuple[int, str]]:
    """``n`` subscribed official-account identities: (id, openid)."""
    from wechat_backend.sandbox.state import new_wechat_id

    now = dt.datetime.now(dt.UTC)
    openids = [new_wechat_id() for _ in range(n)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "identities",
            records=[(new_public_id(), "oa", o, True, now, now, now) for o in openids],
            columns=["public_id", "channel", "openid", "subscribed", "subscribed_at", "created_at", "updated_at"],
        )
        rows = await conn.fetch(
            "SELECT id, openid FROM identities WHERE channel = 'oa' AND openid = ANY($1::text[])", openids
        )
    finally:
        await conn.close()
    by_openid = {r["openid"]: r["id"] for r in rows}
    return [(by_openid[o], o) for o in openids]


async def add_pushes(
    dsn: str, keyring: KeyRing, followers: list[tuple[int, str]], n: int, about: list[tuple[int, str, str]] | None
) -> tuple[int, int]:
    """``n`` pending ``followup_due`` rows, due now, sealed as ``Queuer.row`` seals them, spread evenly
    over the followers; ``about`` (archive id, public id, institution) gives each row an archive,
    which its follower is then bound to. Returns the (first, last) id written."""
    now = dt.datetime.now(dt.UTC)
    date = (now + dt.timedelta(days=3)).date().isoformat()
    tag = secrets.token_hex(3)  # a second run in the same database gets keys of its own
    f = len(followers)
    rows = []
    seen: set[tuple[int, int]] = set()
    for i in range(n):
        identity = followers[i % f][0]
        if about is None:  # what an archive's reminder says, without the archive row
            archive_id, public_id, institution, ref = None, new_public_id(), INSTITUTION, f"b{tag}{i}"
        else:
            archive_id, public_id, institution = about[(i // f + i) % len(about)]
            if (archive_id, identity) in seen:
                raise BenchError("the visible run would repeat an (archive, follower) pair; change --followers")
            seen.add((archive_id, identity))
            ref = str(archive_id)
        key = f"{KIND}:{ref}:{date}:{identity}"  # as queue.dedup_key makes it
        payload = {"archive": public_id, "record": None, "date": date, "institution": institution, "name": None}
        sealed = keyring.seal(payload, f"notification:{key}")
        rows.append((identity, archive_id, KIND, key, "pending", 1, 0, now, sealed, keyring.active_key, now, now))
    conn = await asyncpg.connect(dsn)
    try:
        if seen:  # the outbox sends a push about an archive only to an identity still bound to it
            await conn.copy_records_to_table(
                "bindings",
                records=[(new_public_id(), i, a, "other", now, now) for a, i in sorted(seen)],
                columns=["public_id", "identity_id", "archive_id", "relation", "created_at", "updated_at"],
            )
        first = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM notifications")
        await conn.copy_records_to_table(
            "notifications",
            records=rows,
            columns=[
                "identity_id",
                "archive_id",
                "kind",
                "dedup_key",
                "status",
                "priority",
                "attempts",
                "due_at",
                "sealed",
                "key_id",
                "created_at",
                "updated_at",
            ],
        )
        last = await conn.fetchval("SELECT max(id) FROM notifications")
        await conn.execute("ANALYZE notifications")
    finally:
        await conn.close()
    if last - first + 1 != n:
        raise BenchError(f"wrote ids {first}…{last} for {n} rows")
    return first, last


async def visible_archives(dsn: str) -> list[tuple[int, str, str]]:
    """The template's readers' archives (visible on its build day): id, public id, institution name."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT a.id, a.public_id, i.name FROM bindings b JOIN archives a ON a.id = b.archive_id"
            " JOIN institutions i ON i.code = a.institution_code ORDER BY a.id"
        )
    finally:
        await conn.close()
    return [(r[0], r[1], r[2]) for r in rows]


# --------------------------------------------------------------------------- sending: the floor


async def floor_sends(
    base: str, token: str, openids: list[str], first: int, n: int, concurrency: int, settings: Settings, name: str
) -> dict[str, Any]:
    """``n`` template sends, ``concurrency`` at a time, with the bodies the worker sends."""
    spec = settings.templates.spec(KIND)
    date = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    url = f"{base}/sandbox/{SEND_API}"
    errors: Counter[str] = Counter()
    done = 0
    shown = 0.0
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.wechat.timeout_seconds),
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        headers={"User-Agent": "wechat-backend"},
    )
    todo = iter(range(first, first + n))
    started = time.perf_counter()
    cpu = time.process_time()

    async def lane() -> None:
        nonlocal done, shown
        for i in todo:
            payload = {
                "archive": new_public_id(),
                "record": None,
                "date": date,
                "institution": INSTITUTION,
                "name": None,
            }
            body = {
                "touser": openids[i % len(openids)],
                "template_id": spec.template_id,
                "data": {k: {"value": v} for k, v in template_data(spec, KIND, payload).items()},
                "url": link(settings.server.public_base_url, KIND, payload),
                "client_msg_id": client_msg_id(f"floor:{i}"),
            }
            try:
                r = await client.post(
                    url,
                    params={"access_token": token},
                    content=json.dumps(body, ensure_ascii=False).encode(),
                    headers={"Content-Type": "application/json; charset=utf-8"},
                )
                answer = json.loads(r.content)
                if r.status_code != 200 or answer.get("errcode"):
                    errors[f"{r.status_code} errcode {answer.get('errcode')}"] += 1
            except (httpx.HTTPError, ValueError) as exc:
                errors[type(exc).__name__] += 1
            done += 1
            if done / n - shown >= 0.1:
                shown = done / n
                elapsed = time.perf_counter() - started
                log(f"  {name}: {done:,}/{n:,} sends, {done / elapsed:.0f}/s")

    try:
        await asyncio.gather(*(lane() for _ in range(concurrency)))
    finally:
        seconds = time.perf_counter() - started
        await client.aclose()
    return {
        "sends": n,
        "seconds": seconds,
        "per_second": n / seconds,
        "client_cpu_seconds": time.process_time() - cpu,
        "errors": dict(errors),
    }


# --------------------------------------------------------------------------- sending: the worker


def _logged_at(line: str) -> dt.datetime | None:
    """The time of a log line (``logging``'s asctime: local time, milliseconds)."""
    with contextlib.suppress(ValueError):
        return dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").astimezone(dt.UTC)
    return None


async def run_worker(
    name: str, dsn: str, config_path: Path, ids: tuple[int, int], n: int, tmp: Path, profile: Path | None
) -> dict[str, Any]:
    """``wechat-backend worker`` until every row in ``ids`` is no longer pending; its figures."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_") and k != "WECHAT_BACKEND_CONFIG"}
    command = ["-m", "wechat_backend", "--config", str(config_path), "worker"]
    if profile is not None:
        command = ["-m", "cProfile", "-o", str(profile), *command]
    log_path = tmp / f"worker-{name}.log"
    conn = await asyncpg.connect(dsn)
    spawned = dt.datetime.now(dt.UTC)
    with log_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, *command], cwd=PROJECT, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
        )
    rss: list[int] = []
    cpu_at_start: float | None = None  # the worker's CPU time once it logged "worker started"
    try:
        last_change, last_done, shown = time.monotonic(), -1, 0.0
        while True:
            await asyncio.sleep(POLL_SECONDS if cpu_at_start is not None else 0.02)
            if proc.poll() is not None:
                raise BenchError(f"the worker exited with {proc.returncode}; {harness.stderr_tail(log_path)}")
            if cpu_at_start is None:
                if "worker started" not in log_path.read_text(errors="replace"):
                    if time.monotonic() - last_change > harness.READY_TIMEOUT:
                        raise BenchError(f"the worker did not start; {harness.stderr_tail(log_path)}")
                    continue
                cpu_at_start = harness.cpu_seconds(proc.pid)
            status = proc_status(proc.pid)
            if status.get("VmRSS"):
                rss.append(status["VmRSS"])
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) AS total"
                " FROM notifications WHERE id BETWEEN $1 AND $2",
                *ids,
            )
            done = row["total"] - row["pending"]
            if row["pending"] == 0:
                break
            if done != last_done:
                last_change, last_done = time.monotonic(), done
            elif time.monotonic() - last_change > STALL_SECONDS:
                raise BenchError(f"the worker sent nothing for {STALL_SECONDS:.0f} s ({done:,}/{n:,} done)")
            if done / n - shown >= 0.1:
                shown = done / n
                log(f"  worker [{name}]: {done:,}/{n:,} pushes out of the outbox")
        status = proc_status(proc.pid)
        cpu = harness.cpu_seconds(proc.pid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        outcome = await conn.fetch(
            "SELECT status, count(*) AS n, count(DISTINCT msgid) AS msgids, min(attempts) AS min_attempts,"
            " max(attempts) AS max_attempts, min(sent_at) AS first, max(sent_at) AS last"
            " FROM notifications WHERE id BETWEEN $1 AND $2 GROUP BY status",
            *ids,
        )
    finally:
        await conn.close()
    lines = log_path.read_text(errors="replace").splitlines()
    started = next((t for line in lines if "worker started" in line and (t := _logged_at(line))), spawned)
    statuses = {r["status"]: dict(r) for r in outcome}
    sent = statuses.get("sent", {})
    last = sent.get("last") or started
    seconds = (last - started).total_seconds()
    return {
        "pushes": n,
        "startup_seconds": (started - spawned).total_seconds(),
        "seconds": seconds,
        "per_second": sent.get("n", 0) / seconds if seconds > 0 else math.nan,
        "statuses": {
            k: {"rows": v["n"], "msgids": v["msgids"], "attempts": [v["min_attempts"], v["max_attempts"]]}
            for k, v in statuses.items()
        },
        "rss_peak_mb": status.get("VmHWM", 0) / 1024,
        "rss_last_mb": (rss[-1] if rss else 0) / 1024,
        "cpu_seconds": cpu - (cpu_at_start or 0.0),  # from "worker started" on
        "startup_cpu_seconds": cpu_at_start,
        "exit_code": proc.returncode,
        "log_errors": sum(" ERROR " in line or line.startswith("Traceback") for line in lines),
        "log_warnings": sum(" WARNING " in line for line in lines),
        "log": str(log_path),
        "batches": _batches(lines),
    }


def _batches(lines: list[str]) -> dict[str, Any]:
    """The worker's rhythm, from its ``outbox: N sent`` lines (one per ``run_once``): how many
    passes, and the time between two full ones (claim, sends, record)."""
    times = [t for line in lines if "wechat_backend.notify outbox: " in line and (t := _logged_at(line))]
    gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(times))
    return {
        "passes": len(times),
        "period_p50_ms": harness.percentile(gaps, 0.5),
        "period_p90_ms": harness.percentile(gaps, 0.9),
        "period_max_ms": harness.percentile(gaps, 1.0),
    }


def measure_send(
    args: argparse.Namespace, admin: URL, template: records.Template, tmp: Path, server_cpu: int
) -> dict[str, Any]:
    """Floor, then the worker on rows without an archive, then (``--visible-pushes``) rows about visible archives."""
    out: dict[str, Any] = {"failures": []}
    failures: list[str] = out["failures"]
    data_dir = records.run_data_dir(tmp, "send")
    prefix = f"wbnotify{secrets.token_hex(3)}"
    with records.cloned(admin, template.name) as (url, clone_seconds), _forgetting(args.redis_url, prefix):
        dsn = harness.dsn(url)
        asyncio.run(upgrade_url(records.url_text(url)))
        cfg = {
            "server_cpu": server_cpu,
            "data_dir": str(data_dir),
            "db_url": records.url_text(url),
            "redis_url": args.redis_url,
            "key_prefix": prefix,
            "concurrency": args.concurrency,
            "persist": args.sandbox_persist,
        }
        settings = load_settings(environ={}, overrides=send_config(cfg, "http://127.0.0.1:1"))
        keyring = KeyRing.from_settings(settings.security)
        concurrency = settings.notify.concurrency
        out["concurrency"] = concurrency
        out["batch_size"] = settings.notify.batch_size
        out["latency_ms"] = args.latency_ms
        out["ceiling_per_second"] = concurrency / (args.latency_ms / 1000)
        log(f"send: {args.followers:,} followers, {args.pushes:,} pending pushes (copy of {template.name}) ...")
        followers = asyncio.run(add_followers(dsn, args.followers))
        openids = [o for _, o in followers]
        started = time.perf_counter()
        ids = asyncio.run(add_pushes(dsn, keyring, followers, args.pushes, None))
        out["insert_seconds"] = time.perf_counter() - started

        def sandbox(phase: str) -> Sandbox:
            write_sandbox_state(settings, openids)  # every phase starts from the same state
            return Sandbox.start(f"the sandbox ({phase})", cfg, tmp / f"sandbox-{phase}", args.latency_ms)

        # The floor in two halves, before and after the worker: what else runs on the machine
        # meanwhile falls on both alike.
        halves = [args.pushes // 2, args.pushes - args.pushes // 2]
        parts = [_floor_phase("floor-1", halves[0], 0, settings, sandbox, openids, concurrency, args)]
        out["main"] = _worker_phase("main", args.pushes, ids, args.profile, cfg, dsn, tmp, sandbox, failures)
        parts.append(_floor_phase("floor-2", halves[1], halves[0], settings, sandbox, openids, concurrency, args))
        out["floor"] = floor = _combined(parts)
        if floor["errors"] or floor["sandbox_calls"] != args.pushes:
            failures.append(
                f"floor: {floor['sandbox_calls']:,} send calls for {args.pushes:,}, errors {floor['errors']}"
            )
        if args.visible_pushes:  # the same with the send-time visibility check: rows about visible archives
            about = asyncio.run(visible_archives(dsn))
            log(f"send: {args.visible_pushes:,} pending pushes about {len(about):,} visible archives ...")
            ids = asyncio.run(add_pushes(dsn, keyring, followers, args.visible_pushes, about))
            out["visible"] = _worker_phase("visible", args.visible_pushes, ids, False, cfg, dsn, tmp, sandbox, failures)
        out["clone_seconds"] = clone_seconds
    return out


def _floor_phase(
    name: str,
    n: int,
    first: int,
    settings: Settings,
    sandbox: Any,
    openids: list[str],
    concurrency: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """``n`` sends straight to a fresh sandbox with httpx: no database, no outbox."""
    log(f"{name}: {n:,} sends straight to the sandbox, {concurrency} at a time, {args.latency_ms} ms each ...")
    box: Sandbox = sandbox(name)
    try:
        token = box.token(settings)
        before = box.calls().get(SEND_API, 0)
        stalls = Stalls()
        part = asyncio.run(floor_sends(box.base, token, openids, first, n, concurrency, settings, name))
        part["stalls"] = stalls.since()
        part["sandbox_cpu_seconds"] = box.cpu()
        part["sandbox_calls"] = box.calls().get(SEND_API, 0) - before
    except BaseException:
        box.kill()
        raise
    part["sandbox"] = box.stop()
    log(f"  {name}: {part['per_second']:.0f}/s")
    return part


def _combined(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The floor's halves as one run."""
    out: dict[str, Any] = {"parts": parts}
    for key in ("sends", "seconds", "client_cpu_seconds", "sandbox_cpu_seconds", "sandbox_calls"):
        out[key] = sum(p[key] for p in parts)
    out["per_second"] = out["sends"] / out["seconds"]
    out["errors"] = dict(sum((Counter(p["errors"]) for p in parts), Counter()))
    out["stalls"] = {k: sum(p["stalls"][k] for p in parts) for k in parts[0]["stalls"]}
    out["sandbox"] = parts[-1]["sandbox"] | {
        "messages": sum(p["sandbox"]["messages"] for p in parts),
        "saves": sum(p["sandbox"]["saves"] for p in parts),
        "save_seconds": sum(p["sandbox"]["save_seconds"] for p in parts),
        "save_max_seconds": max(p["sandbox"]["save_max_seconds"] for p in parts),
        "vm_hwm_mb": max(p["sandbox"]["vm_hwm_mb"] for p in parts),
    }
    return out


class Stalls:
    """Seconds some task waited for a CPU / for I/O (pressure stall information) and CPU steal since
    it was made: what else ran on the machine during a phase."""

    def __init__(self) -> None:
        self.start = self._now()

    @staticmethod
    def _now() -> dict[str, float]:
        return {"wall": time.monotonic(), **harness.stall_counters()}

    def since(self) -> dict[str, float]:
        """Seconds of each since the start (and the wall seconds, ``wall``)."""
        end = self._now()
        return {k: end[k] - self.start[k] for k in end}


@contextlib.contextmanager
def _forgetting(redis_url: str, prefix: str) -> Iterator[None]:
    """The run's Redis keys (the access token, the quota flag) are deleted on the way out."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            asyncio.run(forget_keys(redis_url, prefix))


def _worker_phase(
    name: str,
    n: int,
    ids: tuple[int, int],
    profile: bool,
    cfg: dict[str, Any],
    dsn: str,
    tmp: Path,
    sandbox: Any,
    failures: list[str],
) -> dict[str, Any]:
    # The access token cached by an earlier phase belongs to an earlier sandbox: start without it.
    asyncio.run(forget_keys(cfg["redis_url"], cfg["key_prefix"]))
    box: Sandbox = sandbox(name)
    try:
        config_path = tmp / f"worker-{name}.toml"
        config_path.write_text(toml_text(send_config(cfg, box.base)))
        prof = tmp / f"worker-{name}.prof" if profile else None
        log(f"worker [{name}]: one `wechat-backend worker` sending {n:,} pushes ...")
        stalls = Stalls()
        result = asyncio.run(run_worker(name, dsn, config_path, ids, n, tmp, prof))
        result["stalls"] = stalls.since()
        result["sandbox_cpu_seconds"] = box.cpu()
        calls = box.calls()
    except BaseException:
        box.kill()
        raise
    result["sandbox_calls"] = calls
    result["sandbox"] = box.stop()
    sent = result["statuses"].get("sent", {"rows": 0, "msgids": 0, "attempts": [0, 0]})
    skipped = result["statuses"].get("skipped", {"rows": 0})["rows"]
    others = {k: v["rows"] for k, v in result["statuses"].items() if k not in ("sent", "skipped")}
    send_calls = calls.get(SEND_API, 0)
    where = f"worker [{name}]"
    if name == "main" and sent["rows"] != n:
        failures.append(f"{where}: {sent['rows']:,} of {n:,} rows sent ({result['statuses']})")
    if others or sent["rows"] + skipped != n:
        failures.append(f"{where}: rows left {others or result['statuses']}")
    if send_calls != sent["rows"] or result["sandbox"]["messages"] != sent["rows"]:
        failures.append(
            f"{where}: {send_calls:,} send calls and {result['sandbox']['messages']:,} messages in the sandbox"
            f" for {sent['rows']:,} rows sent"
        )
    if sent["rows"] and (sent["msgids"] != sent["rows"] or sent["attempts"] != [1, 1]):
        failures.append(f"{where}: {sent['msgids']:,} distinct msgids, attempts {sent['attempts']} (duplicates)")
    if result["exit_code"] != 0 or result["log_errors"]:
        failures.append(
            f"{where}: exit code {result['exit_code']}, {result['log_errors']} ERROR lines ({result['log']})"
        )
    prof = tmp / f"worker-{name}.prof"
    if profile and prof.exists():
        kept = harness.RESULTS / "notify-worker.prof"
        kept.write_bytes(prof.read_bytes())
        harness.print_profile(kept, "the worker")
        result["profile"] = str(kept.relative_to(PROJECT))
    return result


# --------------------------------------------------------------------------- the due scan: its template


_due: dict[str, Any] = {}


def init_due(security: SecuritySettings, dsn: str, today: dt.date) -> None:
    """Process-pool initializer: the templates' keys, once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _due.update(keys=KeyRing.from_settings(security), dsn=dsn, today=today)


def due_range(bounds: tuple[int, int]) -> dict[str, Any]:
    return asyncio.run(_due_range(*bounds))


async def _due_range(lo: int, hi: int) -> dict[str, Any]:
    """The due items of archives ``lo <= id < hi`` as the import writes them: the birth date's
    (``add_if_missing``), then each record labelled N's (``apply_changes``: the latest basis wins,
    a closing one removes the item)."""
    keys: KeyRing = _due["keys"]
    today: dt.date = _due["today"]
    items: dict[tuple[int, str], tuple[dt.date, dt.date]] = {}
    changes: dict[tuple[int, str], tuple[dt.date | None, dt.date]] = {}
    conn = await asyncpg.connect(_due["dsn"])
    try:
        archives = await conn.fetch("SELECT id, upstream_id, sealed FROM archives WHERE id >= $1 AND id < $2", lo, hi)
        for r in archives:
            birth = dt.date.fromisoformat(keys.open(r["sealed"], f"archive:{r['upstream_id']}")["birth_date"])
            for kind, due_on in due_from_birth(birth, today):
                items.setdefault((r["id"], kind), (due_on, dt.date.min))
        rows = await conn.fetch(
            "SELECT upstream_id, archive_id, date, next_due_date, sealed FROM service_records"
            " WHERE archive_id >= $1 AND archive_id < $2 AND date IS NOT NULL ORDER BY id",
            lo,
            hi,
        )
        for r in rows:
            fields = keys.open(r["sealed"], f"record:{r['upstream_id']}")
            due = due_from_record(fields["kind"], r["date"], r["next_due_date"], fields.get("payload"))
            if due is None:
                continue
            key = (r["archive_id"], due[0])
            mine = changes.get(key)
            if mine is None or r["date"] >= mine[1]:
                changes[key] = (due[1], r["date"])
        for key, (due_on, basis) in changes.items():
            if due_on is None:
                items.pop(key, None)
            else:
                items[key] = (due_on, basis)
        out = [(a, k, d, b) for (a, k), (d, b) in sorted(items.items())]
        await conn.copy_records_to_table("due_items", records=out, columns=["archive_id", "kind", "due_on", "basis_on"])
    finally:
        await conn.close()
    return {"archives": len(archives), "records": len(rows), "items": dict(Counter(k for _, k, _, _ in out))}


def notify_template_name(archives: int, seed: int) -> str:
    return f"wb_bench_notify_{records.size_label(archives)}" + (f"_s{seed}" if seed != 1 else "")


def ensure_notify_template(
    admin: URL, base: records.Template, args: argparse.Namespace, keyring: KeyRing
) -> records.Template:
    """``wb_bench_notify_<size>``: kept from an earlier run when it was made from the same records
    template, with the same share bound; else built now."""
    name = notify_template_name(base.meta["archives"], args.seed)
    meta = None if args.fresh else asyncio.run(harness.read_template_meta(admin, name, "bench_notify_meta"))
    wanted = {
        "format": NOTIFY_FORMAT,
        "archives": base.meta["archives"],
        "records_built_at": base.meta["built_at"],
        "keys": records.key_fingerprint(keyring),
        "bound_share": args.bound_share,
        "seed": args.seed,
    }
    if meta is not None and all(meta.get(k) == v for k, v in wanted.items()):
        log(
            f"using template {name}: {meta['due_items']:,} due items, {meta['bound']:,} bound archives,"
            f" built {meta['built_at']} in {meta['build_seconds']:.0f} s"
        )
        return records.Template(name, meta)
    why = "--fresh" if args.fresh else ("it does not match" if meta is not None else "none kept")
    log(f"building template {name} from {base.name} ({why}) ...")
    started = time.perf_counter()
    building = f"wb_bench_notify_build_{secrets.token_hex(4)}"
    asyncio.run(harness._admin(admin, f'CREATE DATABASE "{building}" TEMPLATE "{base.name}" STRATEGY FILE_COPY'))
    try:
        url = admin.set(database=building)
        asyncio.run(upgrade_url(records.url_text(url)))
        today = dt.date.fromisoformat(base.meta["today"])
        settings = records.bench_settings(records.CACHE, records.url_text(url))
        items = _build_due_items(url, settings, base.meta["archives"], today, args)
        meta = asyncio.run(_bind_followers(url, args))
        meta.update(wanted)
        meta["due_items"] = sum(items.values())
        meta["due_items_by_kind"] = items
        meta["today"] = base.meta["today"]
        meta["build_seconds"] = time.perf_counter() - started
        meta["built_at"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        asyncio.run(_write_notify_meta(url, meta))
        harness.publish_database(admin, building, name)
    except BaseException:
        harness.drop_database_quietly(admin, building)
        raise
    log(
        f"built {name}: {meta['due_items']:,} due items, {meta['bound']:,} bound archives in"
        f" {meta['build_seconds']:.0f} s"
    )
    return records.Template(name, meta)


def _build_due_items(
    url: URL, settings: Settings, archives: int, today: dt.date, args: argparse.Namespace
) -> dict[str, int]:
    """The due items, computed from the decrypted rows in ``--build-workers`` processes."""
    workers = max(1, args.build_workers)
    ranges = [(lo, lo + DUE_RANGE) for lo in range(1, archives + 1, DUE_RANGE)]
    log(f"  due items of {archives:,} archives (birth dates and records labelled N decrypted), {workers} processes ...")
    totals: Counter[str] = Counter()
    done_archives = done_records = 0
    shown = 0.0
    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_due,
        initargs=(settings.security, harness.dsn(url), today),
    ) as pool:
        pending = {pool.submit(due_range, r) for r in ranges}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    totals.update(result["items"])
                    done_archives += result["archives"]
                    done_records += result["records"]
                if done_archives / archives - shown >= 0.1 or not pending:
                    shown = done_archives / archives
                    elapsed = time.perf_counter() - started
                    log(
                        f"  {done_archives:,}/{archives:,} archives, {done_records:,} records labelled N,"
                        f" {sum(totals.values()):,} due items, {elapsed:.0f} s"
                    )
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    if done_archives != archives:
        raise BenchError(f"the due-item build read {done_archives:,} archives, the template has {archives:,}")
    return dict(totals)


async def _bind_followers(url: URL, args: argparse.Namespace) -> dict[str, Any]:
    """``--bound-share`` of the archives bound to a subscribed official-account identity each; 2 % of
    those mute one due kind; then VACUUM ANALYZE of what changed."""
    rng = random.Random(args.seed)
    now = dt.datetime.now(dt.UTC)
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        ids = [r[0] for r in await conn.fetch("SELECT id FROM archives ORDER BY id")]
        bound = sorted(rng.sample(ids, int(len(ids) * args.bound_share)))
        first = await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM identities")
        log(f"  {len(bound):,} subscribed official-account identities, one bound archive each ...")
        async with conn.transaction():
            await conn.copy_records_to_table(
                "identities",
                records=[
                    (first + n, new_public_id(), "oa", "o" + secrets.token_urlsafe(21)[:27], True, now, now, now)
                    for n in range(len(bound))
                ],
                columns=[
                    "id",
                    "public_id",
                    "channel",
                    "openid",
                    "subscribed",
                    "subscribed_at",
                    "created_at",
                    "updated_at",
                ],
            )
            await conn.execute("SELECT setval('identities_id_seq', (SELECT max(id) FROM identities))")
            relations = rng.choices(["self", "child", "parent", "spouse"], weights=[70, 15, 10, 5], k=len(bound))
            await conn.copy_records_to_table(
                "bindings",
                records=[(new_public_id(), first + n, a, relations[n], now, now) for n, a in enumerate(bound)],
                columns=["public_id", "identity_id", "archive_id", "relation", "created_at", "updated_at"],
            )
            muted = rng.sample(range(len(bound)), int(len(bound) * MUTE_SHARE))
            await conn.copy_records_to_table(
                "notify_mutes",
                records=[(first + n, bound[n], rng.choice(DUE_KINDS)) for n in muted],
                columns=["identity_id", "archive_id", "kind"],
            )
        log("  VACUUM ANALYZE of the new rows ...")
        for table in ("due_items", "identities", "bindings", "notify_mutes"):
            await conn.execute(f"VACUUM ANALYZE {table}")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    return {"bound": len(bound), "mutes": len(muted), "bytes": size}


async def _write_notify_meta(url: URL, meta: dict[str, Any]) -> None:
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        await conn.execute("CREATE TABLE bench_notify_meta (built text)")
        await conn.execute("INSERT INTO bench_notify_meta VALUES ($1)", json.dumps(meta))
    finally:
        await conn.close()


# --------------------------------------------------------------------------- the due scan: measuring


async def scan_floor(services: Any, day: dt.date) -> dict[str, Any]:
    """What the scan reads, the way it reads it (the schedule-by-age items whose date passed with
    their archives, the window, then per batch the recipients, the mutes and the archive rows), and
    nothing else: no decryption, decision, update or insert."""

    from wechat_backend.notify import scan as scan_module
    from wechat_backend.notify.queue import ARCHIVES_WITH_PLACE, MUTED, RECIPIENTS
    from wechat_backend.notify.scan import BATCH

    started = time.perf_counter()
    passed = 0
    if (stmt := getattr(scan_module, "_PASSED", None)) is not None:  # the roll-forward's read
        async with services.sessions() as s:
            passed = len((await s.execute(stmt, {"day": day})).all())
    until = day + dt.timedelta(days=services.settings.notify.lead_days)
    async with services.sessions() as s:
        items = (await s.execute(scan_module.window(day, until))).all()
    window_seconds = time.perf_counter() - started
    recipients = archives = mutes = 0
    for start in range(0, len(items), BATCH):
        ids = sorted({r.archive_id for r in items[start : start + BATCH]})
        async with services.sessions.begin() as s:
            rows = (await s.execute(RECIPIENTS, {"ids": ids})).all()
            if rows:
                bound = sorted({r.archive_id for r in rows})
                mutes += len((await s.execute(MUTED, {"ids": bound})).all())
                archives += len((await s.execute(ARCHIVES_WITH_PLACE, {"ids": bound})).all())
            recipients += len(rows)
    return {
        "seconds": time.perf_counter() - started,
        "window_seconds": window_seconds,
        "items": len(items),
        "passed_rows": passed,
        "recipient_rows": recipients,
        "archive_rows": archives,
        "mute_rows": mutes,
    }


async def timed_scan(services: Any, day: dt.date, label: str) -> dict[str, Any]:
    shown = [0.0]

    def progress(done: int, total: int) -> None:
        if total and (done / total - shown[0] >= 0.25 or done == total):
            shown[0] = done / total
            log(f"  {label}: {done:,}/{total:,} items")

    started = time.perf_counter()
    report = await services.due_scan.scan(day, progress=progress)
    return {
        "day": day.isoformat(),
        "seconds": time.perf_counter() - started,
        "items": report.items,
        "queued": report.queued,
        "rolled": getattr(report, "rolled", 0),  # schedule-by-age items moved past a passed date
    }


async def _count(url: URL, sql: str) -> int:
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _scans(url: URL, data_dir: Path, day: dt.date) -> dict[str, Any]:
    from wechat_backend.services import build_services

    services = await build_services(scan_settings(data_dir, records.url_text(url)), with_redis=False)
    try:
        log("scan floor: the scan's reads alone ...")
        floor = await scan_floor(services, day)
        log(f"  {floor['seconds']:.2f} s, {floor['items']:,} items in the window, {floor['passed_rows']:,} passed")
        log(f"scan 1: DueScanner.scan({day}), the first after the import ...")
        first = await timed_scan(services, day, "scan 1")
        log(f"  {first['seconds']:.2f} s, {first['rolled']:,} items rolled forward, {first['queued']:,} queued")
        log("scan 2: the same day again (must queue nothing) ...")
        second = await timed_scan(services, day, "scan 2")
        log(f"  {second['seconds']:.2f} s, {second['queued']:,} reminders queued")
        outbox = await _count(url, "SELECT count(*) FROM notifications")
        conn = await asyncpg.connect(harness.dsn(url))
        try:  # the window the same day's two runs saw
            window = await conn.fetchrow(
                "SELECT count(*) AS items, count(DISTINCT d.archive_id) AS archives,"
                " count(DISTINCT d.archive_id) FILTER (WHERE EXISTS (SELECT 1 FROM bindings b JOIN identities i"
                " ON i.id = b.identity_id WHERE b.archive_id = d.archive_id AND i.channel = 'oa')) AS bound"
                " FROM due_items d WHERE d.due_on > $1 AND d.due_on <= $2",
                day,
                day + dt.timedelta(days=services.settings.notify.lead_days),
            )
        finally:
            await conn.close()
        log(f"scan 3: the next day, {day + dt.timedelta(days=1)} (a daily scan after a daily scan) ...")
        third = await timed_scan(services, day + dt.timedelta(days=1), "scan 3")
        log(f"  {third['seconds']:.2f} s, {third['rolled']:,} items rolled forward, {third['queued']:,} queued")
        conn = await asyncpg.connect(harness.dsn(url))
        try:
            rows = await conn.fetchval("SELECT count(*) FROM notifications")
            by_kind = dict(await conn.fetch("SELECT kind, count(*) FROM notifications GROUP BY kind"))
            total_items = await conn.fetchval("SELECT count(*) FROM due_items")
        finally:
            await conn.close()
    finally:
        await services.close()
    return {
        "day": day.isoformat(),
        "lead_days": services.settings.notify.lead_days,
        "due_items": total_items,
        "window": dict(window),
        "floor": floor,
        "first": first,
        "second": second,
        "third": third,
        "notifications": rows,
        "notifications_after_two": outbox,
        "queued_by_kind": by_kind,
    }


def measure_scan(
    args: argparse.Namespace, admin: URL, base: records.Template, template: records.Template, tmp: Path
) -> dict[str, Any]:
    data_dir = records.run_data_dir(tmp, "scan")
    log(f"scan: copying {template.name} ...")
    with records.cloned(admin, template.name) as (url, clone_seconds):
        log(f"  copied in {clone_seconds:.0f} s")
        asyncio.run(upgrade_url(records.url_text(url)))
        out = asyncio.run(_scans(url, data_dir, dt.date.fromisoformat(template.meta["today"])))
    out["clone_seconds"] = clone_seconds
    out["archives"] = base.meta["archives"]
    out["records"] = base.meta["records"]
    out["template"] = {"name": template.name, **template.meta}
    failures = []
    if out["second"]["queued"]:
        failures.append(f"scan: the second run queued {out['second']['queued']:,} reminders (must be 0)")
    if out["notifications_after_two"] != out["first"]["queued"]:
        failures.append(f"scan: {out['notifications_after_two']:,} outbox rows for {out['first']['queued']:,} queued")
    if out["notifications"] != out["first"]["queued"] + out["third"]["queued"]:
        failures.append(f"scan: {out['notifications']:,} outbox rows after the next day's scan")
    if out["second"]["items"] != out["first"]["items"]:
        failures.append("scan: the same day's two runs saw different windows")
    out["failures"] = failures
    return out


# --------------------------------------------------------------------------- report


def _x(v: float) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.2f}×"


def report(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    send = result.get("send")
    if send:
        floor = send["floor"]
        print(
            f"\n== sending: {send['concurrency']} sends in flight, {send['latency_ms']} ms each (sandbox fault),"
            f" batches of {send['batch_size']}; ceiling {send['ceiling_per_second']:.0f}/s (concurrency ÷ latency)"
        )
        print(
            f"  {'phase':<30}{'pushes':>9}{'seconds':>9}{'per s':>7}{'÷ floor':>9}{'peak RSS':>10}"
            f"{'CPU/push':>10}{'sandbox CPU':>13}{'CPU wait':>10}"
        )

        def row(label: str, p: dict[str, Any], ratio: str, rss: str, cpu: float) -> None:
            wait = p["stalls"]["cpu_wait"] / p["stalls"]["wall"]
            if not p["seconds"] > 0:  # nothing was sent (the checks say why)
                print(f"  {label:<30}{p['pushes']:>9,}  nothing sent")
                return
            print(
                f"  {label:<30}{p['pushes']:>9,}{p['seconds']:>9.1f}{p['per_second']:>7.0f}{ratio:>9}{rss:>10}"
                f"{cpu * 1000 / p['pushes']:>8.2f}ms{p['sandbox_cpu_seconds'] / p['seconds']:>13.0%}{wait:>10.0%}"
            )
            if wait > BUSY_WAIT:
                warnings.append(
                    f"{label}: some task waited for a CPU {wait:.0%} of the time (other work on the machine competed)"
                )

        warnings: list[str] = []
        floor["pushes"] = floor["sends"]
        row("floor (httpx, no database)", floor, "1.00×", "-", floor["client_cpu_seconds"])
        for name, label in (("main", "worker, archive_id NULL"), ("visible", "worker, send-time checks")):
            w = send.get(name)
            if w:
                w["ratio"] = w["per_second"] / floor["per_second"] if w["seconds"] > 0 else math.nan
                row(label, w, _x(w["ratio"]), f"{w['rss_peak_mb']:.0f} MB", w["cpu_seconds"])
        print(
            "  (the floor: two halves, before and after the main worker run: "
            + ", ".join(f"{p['per_second']:.0f}/s" for p in floor["parts"])
            + "; CPU/push: the worker process, or this process's httpx client for the floor)"
        )
        lane = send["concurrency"] / floor["per_second"]  # one send's time at the floor
        waves = math.ceil(send["batch_size"] / send["concurrency"])  # sends one after the other in a lane
        for name in ("main", "visible"):
            if name in send:
                bt = send[name]["batches"]
                print(
                    f"  worker [{name}]: {bt['passes']:,} passes of {send['batch_size']}, one every"
                    f" {bt['period_p50_ms']:.0f} ms (p50; p90 {bt['period_p90_ms']:.0f}, max"
                    f" {bt['period_max_ms']:.0f}); {waves} sends in a row per lane at the floor's"
                    f" {lane * 1000:.1f} ms = {waves * lane * 1000:.0f} ms: the rest is claiming and recording"
                )
        for line in warnings:
            print(f"  WARNING {line}")
        main = send["main"]
        calls = main["sandbox_calls"]
        print(
            f"  sandbox send calls (main): {calls.get(SEND_API, 0):,} for {main['pushes']:,} pushes; token calls"
            f" {calls.get('cgi-bin/token', 0)}; messages kept {main['sandbox']['messages']:,}; worker start-up"
            f" {main['startup_seconds']:.1f} s (not counted); RSS at the end {main['rss_last_mb']:.0f} MB"
        )
        if "visible" in send:
            v = send["visible"]["statuses"]
            print(
                f"  visible run: {v.get('sent', {}).get('rows', 0):,} sent, {v.get('skipped', {}).get('rows', 0):,}"
                " skipped (archive hidden, unbound or muted since)"
            )
        else:
            print("  the send-time check (archive visible, still bound, not muted) is not in these figures")
        for label, phase in (("floor", floor), ("worker", main)):
            s = phase["sandbox"]
            if s["persist"]:
                print(
                    f"  sandbox state file ({label}): {s['saves']} writes, {s['save_seconds']:.1f} s on its event"
                    f" loop (longest {s['save_max_seconds'] * 1000:.0f} ms), {s['state_file_bytes'] / 2**20:.0f} MB"
                    " at the end;"
                    f" sandbox peak RSS {s['vm_hwm_mb']:.0f} MB"
                )
            else:
                print(
                    f"  sandbox ({label}): state file not written (as keep=False; --sandbox-persist writes it);"
                    f" peak RSS {s['vm_hwm_mb']:.0f} MB"
                )
        ok = main["per_second"] >= SEND_TARGET
        targets["send_rate"] = {
            "value": main["per_second"],
            "floor": floor["per_second"],
            "ratio": main["ratio"],
            "target": f">= {SEND_TARGET:g}",
            "met": ok,
        }
        print(
            f"  target ≥ {SEND_TARGET:.0f} pushes/s through one worker: {main['per_second']:.0f}/s"
            f" (floor {floor['per_second']:.0f}/s, ratio {_x(main['ratio'])})  {verdict(ok).replace('met', 'OK')}"
        )
    scan = result.get("scan")
    if scan:
        f, one, two = scan["floor"], scan["first"], scan["second"]
        t = scan["template"]
        print(
            f"\n== due scan: {scan['archives']:,} archives, {scan['records']:,} records,"
            f" {t['due_items']:,} due items, {t['bound']:,} archives bound (template {t['name']};"
            f" copied in {scan['clone_seconds']:.0f} s)"
        )
        w = scan["window"]
        print(
            f"  day {scan['day']}, window of {scan['lead_days']} days: {w['items']:,} items,"
            f" {w['archives']:,} archives, {w['bound']:,} of them bound to an official-account identity"
        )
        print(f"  {'run':<44}{'seconds':>9}{'rolled':>9}{'items':>9}{'queued':>9}{'÷ floor':>9}")
        print(
            f"  {'floor (the reads alone)':<44}{f['seconds']:>9.2f}{f['passed_rows']:>9,}{f['items']:>9,}{'-':>9}"
            f"{'1.00×':>9}"
        )
        three = scan["third"]
        for label, run in (
            ("scan 1 (the first after the import)", one),
            ("scan 2 (the same day again)", two),
            (f"scan 3 (the next day, {three['day']})", three),
        ):
            run["ratio"] = run["seconds"] / f["seconds"] if f["seconds"] else math.nan
            print(
                f"  {label:<44}{run['seconds']:>9.2f}{run['rolled']:>9,}{run['items']:>9,}{run['queued']:>9,}"
                f"{_x(run['ratio']):>9}"
            )
        print(
            "  rolled: child checks and yearly exams whose date had passed, moved to the next one (each"
            " archive's birth date decrypted); the floor reads them (column: rows read) and the window"
            " before they move"
        )
        print(f"  queued by kind: {scan['queued_by_kind']}")
        ok = one["seconds"] < SCAN_TARGET
        targets["scan_seconds"] = {
            "value": one["seconds"],
            "floor": f["seconds"],
            "second_run": two["seconds"],
            "next_day": three["seconds"],
            "target": f"< {SCAN_TARGET:g}",
            "archives": scan["archives"],
            "met": ok,
        }
        print(
            f"  target < {SCAN_TARGET:.0f} s at {scan['archives']:,} archives: {one['seconds']:.2f} s"
            f"  {verdict(ok).replace('met', 'OK')}"
        )
    m = result["machine"]
    print(
        f"\nmachine: {m['cpus']} CPUs ({m['cpu_model'] or 'unknown'}), sandbox on CPU {m['server_cpu']}, worker and"
        f" load generator on CPU {m['client_cpu']}; Python {m['python']}; {m['database']}; Redis {m['redis']};"
        f" load average {m['loadavg_start'][0]:.2f} → {m['loadavg_end'][0]:.2f}; code {m['git'] or 'unknown'}"
    )
    return targets


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--pushes", type=int, default=None, help=f"pushes through the worker (default {PUSHES:,})")
    p.add_argument("--followers", type=int, default=None, help=f"followers they go to (default {FOLLOWERS:,})")
    p.add_argument(
        "--visible-pushes",
        type=int,
        default=None,
        help=f"a second run with pushes about visible archives (default {VISIBLE_PUSHES:,}; 0 skips it)",
    )
    p.add_argument("--latency-ms", type=int, default=LATENCY_MS, help="the sandbox's added latency per send")
    p.add_argument("--concurrency", type=int, default=None, help="[notify] concurrency (default: the setting's, 16)")
    p.add_argument("--archives", type=int, default=None, help=f"archives for the due scan (default {ARCHIVES:,})")
    p.add_argument("--bound-share", type=float, default=BOUND_SHARE, help="share of archives bound (default 0.30)")
    p.add_argument("--only", choices=("send", "scan"), help="one of the two measurements")
    p.add_argument(
        "--sandbox-persist",
        action="store_true",
        help="let the sandbox write its state file as mounted (it rewrites every message kept, twice a second:"
        " at 100,000 pushes the sandbox, not the worker, sets the pace)",
    )
    p.add_argument("--profile", action="store_true", help="the main worker run under cProfile")
    p.add_argument("--fresh", action="store_true", help="rebuild the notify template (not the records templates)")
    p.add_argument("--build-workers", type=int, default=os.cpu_count() or 2, help="processes building the data")
    p.add_argument("--seed", type=int, default=1, help="data seed (default 1)")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("DATABASE_URL_PG") or DEFAULT_PG_URL,
        help="PostgreSQL server (default: $DATABASE_URL_PG or %(default)s)",
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/7", help="Redis for the worker and the sandbox")
    p.add_argument("--quick", action="store_true", help="a smoke run: 3,000 + 1,000 pushes, 20,000 archives")
    args = p.parse_args(argv)
    defaults = {
        "pushes": QUICK_PUSHES if args.quick else PUSHES,
        "followers": QUICK_FOLLOWERS if args.quick else FOLLOWERS,
        "visible_pushes": QUICK_VISIBLE if args.quick else VISIBLE_PUSHES,
        "archives": QUICK_ARCHIVES if args.quick else ARCHIVES,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.pushes < 1 or args.followers < 1 or args.visible_pushes < 0 or args.latency_ms < 0:
        p.error("--pushes and --followers must be >= 1, --visible-pushes and --latency-ms >= 0")
    if args.archives < 1000 or not 0 < args.bound_share <= 1:
        p.error("--archives must be >= 1000 and --bound-share in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--sandbox-child"]:
        return sandbox_main(argv[1])
    args = parse_args(argv)
    stamp = harness.utc_stamp()
    started = time.perf_counter()
    result: dict[str, Any] = {"failures": []}
    with harness.exits_on_failure("bench/notify.py", OSError, asyncpg.PostgresError, httpx.HTTPError):
        admin = harness.normalised_url(args.pg_url)
        records.CACHE.mkdir(parents=True, exist_ok=True)
        keyring = KeyRing.from_settings(records.bench_settings(records.CACHE, records.url_text(admin)).security)

        def template(archives: int) -> records.Template:
            return records.ensure_template(
                admin, archives, records.parse_args(["--archives", str(archives), "--seed", str(args.seed)]), keyring
            )

        # The data first: building it uses every CPU.
        send_template = template(SEND_ARCHIVES) if args.only != "scan" else None
        scan_base = template(args.archives) if args.only != "send" else None
        scan_template = ensure_notify_template(admin, scan_base, args, keyring) if scan_base else None
        cpus = harness.pin_load_generator("bench/notify.py")
        machine = machine_info(server_cpu=cpus[0], client_cpu=cpus[1])
        machine["database"] = f"PostgreSQL {harness.server_version(admin)}"
        machine["redis"] = args.redis_url
        with tempfile.TemporaryDirectory(prefix="wb-bench-notify-") as tmp:
            if send_template is not None:
                result["send"] = measure_send(args, admin, send_template, Path(tmp), cpus[0])
                result["failures"] += result["send"].pop("failures")
            if scan_template is not None and scan_base is not None:
                result["scan"] = measure_scan(args, admin, scan_base, scan_template, Path(tmp))
                result["failures"] += result["scan"].pop("failures")
    return harness.finish(result, "notify", stamp, report, machine=machine, args=args, admin=admin, started=started)


if __name__ == "__main__":
    sys.exit(main())
