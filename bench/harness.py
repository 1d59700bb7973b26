"""What the benchmarks run around the code they measure: the pinned server child, throwaway
PostgreSQL databases, progress on stderr and results in ``bench/results/``."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import json
import logging
import math
import os
import pstats
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:
    from wechat_backend.services import Services

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "bench" / "results"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
READY_TIMEOUT = 60.0  # seconds a server child may take to announce its port


class BenchError(Exception):
    """The benchmark could not measure what it set out to (a server did not start, data did not
    import, an answer was wrong)."""


def log(message: str) -> None:
    """Progress goes to stderr, so that stdout holds the table alone."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def exits_on_failure(script: str, *errors: type[Exception]) -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so children stop and databases are dropped; a run that could not
    measure prints one line and exits 1, an interrupted one exits 130."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        yield
    except (BenchError, *errors) as exc:
        print(f"{script} failed: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print(f"{script} interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def exit_code(failures: list[str]) -> int:
    """1 after listing the failed checks on stderr, else 0 (a missed target is not a failure)."""
    if not failures:
        return 0
    print("FAILED: the responses were not all correct:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------- CPUs


def pin_load_generator(script: str) -> tuple[int, int]:
    """(server CPU, client CPU), the first two this process may use, with this process moved to the
    second so that the server has the first to itself. With fewer, the figures would mean nothing:
    exits 1, saying why."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        print(f"{script} needs two CPUs (server on one, load generator on the other)", file=sys.stderr)
        raise SystemExit(1)
    os.sched_setaffinity(0, {allowed[1]})
    return allowed[0], allowed[1]


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a whole process (all its threads), from /proc."""
    if not pid:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# --------------------------------------------------------------------------- the server child, its side


def child_config(config_path: str) -> dict[str, Any]:
    """The child's config; the child is pinned first (threads it starts inherit the CPU) and logs as
    ``wechat-backend serve`` sets it up (INFO, access log included)."""
    cfg = json.loads(Path(config_path).read_text())
    os.sched_setaffinity(0, {cfg["server_cpu"]})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return cfg


def announce(message: dict[str, Any]) -> None:
    """One JSON line on stdout: how the child tells the benchmark its port, and that it stopped."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def pin_embedded_redis(services: Services, cpu: int) -> int | None:
    """Move an embedded redis-server to ``cpu`` (the client's), keeping the server's CPU for the server."""
    embedded = services.redis.embedded if services.redis else None
    redis_pid = getattr(embedded, "pid", None) if embedded is not None else None
    if redis_pid:
        os.sched_setaffinity(redis_pid, {cpu})
    return redis_pid


async def serve_until_sigterm(port: int, redis_pid: int | None, profile_path: str = "") -> None:
    """Announce the port, then serve until SIGTERM or SIGINT; under cProfile when ``profile_path`` is set."""
    profiler = cProfile.Profile() if profile_path else None
    if profiler is not None:
        profiler.enable()
    announce({"port": port, "pid": os.getpid(), "redis_pid": redis_pid})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if profiler is not None:
        profiler.disable()
        Path(profile_path).parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile_path)


async def next_tick(due: float, every: float) -> float:
    """Sleep until the next tick of a fixed-rate loop (``due`` is the last one, on the loop's
    clock); a loop that fell behind starts again from now instead of bursting to catch up."""
    loop = asyncio.get_running_loop()
    due += every
    delay = due - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
        return due
    return loop.time()


async def serve_real(settings: Any, profile_path: str = "") -> None:
    """``wechat-backend serve`` in a bench's server child: the services built from ``settings``,
    the real application on a fresh loopback port until SIGTERM, then closed and announced."""
    from tornado.netutil import bind_sockets

    from wechat_backend.services import build_services

    sockets = bind_sockets(0, "127.0.0.1")
    services = await build_services(settings)
    try:
        await serve_app(services, sockets, None, profile_path)
    finally:
        await services.close()
    announce({"stopped": True})


async def serve_app(services: Services, sockets: list[Any], redis_pid: int | None, profile_path: str = "") -> None:
    """The real application on ``sockets``, as ``wechat-backend serve`` runs it (heap settled, the
    body cap as max_body_size), until SIGTERM; then drain and close, as ``serve`` does."""
    from tornado.httpserver import HTTPServer

    from wechat_backend.app import make_app, settle_heap

    app = make_app(services)
    settle_heap()
    server = HTTPServer(app, xheaders=False, max_body_size=services.settings.limits.max_body_bytes)
    server.add_sockets(sockets)
    await serve_until_sigterm(sockets[0].getsockname()[1], redis_pid, profile_path)
    server.stop()
    await app.drain(timeout=10.0)
    await server.close_all_connections()


# --------------------------------------------------------------------------- the server child, our side


@dataclass
class ServerChild:
    """A started server child: where it listens, its pid and its embedded redis-server's, its stderr."""

    name: str
    proc: subprocess.Popen[str]
    port: int
    pid: int
    redis_pid: int | None
    stderr_path: Path
    out: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Drained all along: a server that wrote 64 KiB to an unread pipe would stall mid-request.
        self._reader = threading.Thread(target=self._drain, name="server-stdout", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        self.out.extend(self.proc.stdout)

    def stop(self) -> dict[str, Any]:
        """SIGTERM, wait, and return the child's last message; raises unless it shut down cleanly."""
        self._terminate(timeout=60)
        self._reader.join(timeout=10)
        self._reap_redis()
        final = _last_message(self.out)
        if self.proc.returncode != 0 or not final.get("stopped"):
            raise BenchError(f"{self.name} exited with {self.proc.returncode}; {self.stderr_tail()}")
        return final

    def kill(self) -> None:
        """Whatever state the child is in, it and its redis-server are gone afterwards."""
        self._terminate(timeout=20)
        self._reap_redis()

    def _terminate(self, timeout: float) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _reap_redis(self) -> None:
        """The embedded redis-server stops with its owner; if the owner died hard, stop it here."""
        if self.redis_pid and _alive(self.redis_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.redis_pid, signal.SIGTERM)

    def stderr_tail(self) -> str:
        return stderr_tail(self.stderr_path)


def start_child(name: str, argv: list[str], cfg: dict[str, Any], stem: Path) -> ServerChild:
    """``python ARGV... STEM.json`` with ``cfg`` in that file and its stderr in ``STEM.log``; returns
    once the child has announced its port."""
    config_path = stem.with_suffix(".json")
    config_path.write_text(json.dumps(cfg))
    stderr_path = stem.with_suffix(".log")
    with stderr_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, *argv, str(config_path)],
            cwd=PROJECT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    hello = _first_message(proc)
    if "port" not in hello:
        proc.kill()
        proc.wait()
        raise BenchError(f"{name} did not start; {stderr_tail(stderr_path)}")
    return ServerChild(name, proc, hello["port"], hello["pid"], hello["redis_pid"], stderr_path)


def _first_message(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The child's first line on stdout, or {} when none came in READY_TIMEOUT seconds."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    try:
        return json.loads(line)
    except ValueError:
        return {}


def _last_message(lines: list[str]) -> dict[str, Any]:
    """The last JSON object the child wrote on stdout."""
    final: dict[str, Any] = {}
    for line in lines:
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict):
                final = message
    return final


def stderr_tail(path: Path, lines: int = 15) -> str:
    """The end of a child's stderr, for the message that says why it failed."""
    try:
        tail = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "no stderr"
    return "stderr tail:\n" + "\n".join(tail)


# --------------------------------------------------------------------------- throwaway PostgreSQL databases


def normalised_url(url: str) -> URL:
    """``--pg-url`` as a ``postgresql+asyncpg`` URL (a plain ``postgresql://`` one is accepted)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise BenchError(f"--pg-url must be a PostgreSQL URL (postgresql+asyncpg://...), not {parsed.drivername}")
    return parsed


def dsn(url: URL) -> str:
    """asyncpg wants a plain libpq-style URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: URL, *statements: str) -> str:
    """Run ``statements`` on one connection; returns the server's version."""
    conn = await asyncpg.connect(dsn(url))
    try:
        for sql in statements:
            await conn.execute(sql)
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


def server_version(url: URL) -> str:
    """The PostgreSQL server's version, for the results."""
    return asyncio.run(_admin(url))


@contextlib.contextmanager
def fresh_database(admin: URL) -> Iterator[URL]:
    """A new empty database ``wb_bench_<hex>``, dropped on the way out whatever happened."""
    name = f"wb_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name)
    finally:
        try:
            asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            log(f"could not drop database {name}: {exc} — drop it by hand")


# --------------------------------------------------------------------------- figures and results


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted seconds, in milliseconds; nan when there are none."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000


def ms(value: float) -> str:
    """Milliseconds for a table cell: ``-`` when nothing was measured."""
    return "-" if math.isnan(value) else f"{value:.1f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def utc_stamp() -> str:
    """Names a run's files in ``bench/results/``."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def save(result: dict[str, Any], name: str, stamp: str) -> Path:
    """``bench/results/<name>-<stamp>.json``, and the same as ``<name>-latest.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str) + "\n"
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(text)
    (RESULTS / f"{name}-latest.json").write_text(text)
    return path


def print_profile(path: Path, server: str, top: int = 30) -> None:
    """The top functions of a ``--profile`` run, by own time and by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"\n{server} profile (cProfile, whole server lifetime after start-up):")
    print(out.getvalue().rstrip())
    print(f"profile: {path.relative_to(PROJECT)}  (python -m pstats {path.relative_to(PROJECT)})")


def publish_database(admin: URL, building: str, name: str) -> None:
    """Put the freshly built database ``building`` in the place of ``name`` (a build that failed
    never replaces the template it was rebuilding)."""
    asyncio.run(
        _admin(
            admin,
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            f'ALTER DATABASE "{building}" RENAME TO "{name}"',
        )
    )


def drop_database_quietly(admin: URL, name: str) -> None:
    """Drop a half-built database, saying nothing if that fails too (the build's error matters)."""
    with contextlib.suppress(Exception):
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def finish(
    result: dict[str, Any],
    name: str,
    stamp: str,
    report: Callable[[dict[str, Any], Any], dict[str, Any]],
    *,
    machine: dict[str, Any],
    args: Any,
    admin: URL,
    started: float,
) -> int:
    """The end of a PostgreSQL bench run: the machine after it, ``report`` (prints the tables,
    returns the targets), the options (the password hidden), the verdict, the results file; the
    exit code (1 if a check failed)."""
    machine["loadavg_end"] = os.getloadavg()
    result["machine"] = machine
    result["targets"] = report(result, args)
    result["seconds"] = time.perf_counter() - started
    result["options"] = {k: v for k, v in vars(args).items() if k != "pg_url"} | {
        "pg_url": admin.render_as_string(hide_password=True)
    }
    missed = [k for k, t in result["targets"].items() if not t["met"]]
    print(f"targets: {'all met' if not missed else 'MISSED ' + ', '.join(missed)}; run took {result['seconds']:.0f} s")
    print(f"results: {save(result, name, stamp).relative_to(PROJECT)}")
    return exit_code(result["failures"])


async def read_template_meta(admin: URL, name: str, table: str) -> dict[str, Any] | None:
    """A kept template's own record of what it holds (``table``, one JSON row), or None when the
    database does not exist or its build did not finish. ``table`` is the bench's own name."""
    conn = await asyncpg.connect(dsn(admin))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return None
    finally:
        await conn.close()
    conn = await asyncpg.connect(dsn(admin.set(database=name)))
    try:
        if not await conn.fetchval(f"SELECT to_regclass('{table}') IS NOT NULL"):
            return None
        return json.loads(await conn.fetchval(f"SELECT built FROM {table}"))
    finally:
        await conn.close()


def stall_counters() -> dict[str, float]:
    """Seconds some task waited for a CPU / for I/O so far (pressure stall information), and CPU
    steal (time the hypervisor gave this machine's CPUs to others); NaN where the kernel says nothing.
    The difference over a window is what else ran during it."""
    out = {"cpu_wait": math.nan, "io_wait": math.nan, "steal": math.nan}
    for kind in ("cpu", "io"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            some = Path(f"/proc/pressure/{kind}").read_text().splitlines()[0]
            out[f"{kind}_wait"] = int(some.rsplit("total=", 1)[1]) / 1e6
    with contextlib.suppress(OSError, ValueError, IndexError):
        out["steal"] = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8]) / os.sysconf("SC_CLK_TCK")
    return out
