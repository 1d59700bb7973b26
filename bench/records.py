"""Records benchmark: a resident reading a bound archive, at 1,000,000 and at 100,000 archives.

Run by ``make bench`` as ``.venv/bin/python bench/records.py --find-rate``.

**Data** — PostgreSQL databases of ``--archives`` synthetic archives (default 1,000,000) and, for
the comparison, 100,000 (``--no-small`` skips it), each with ``--readers`` residents (default
10,000, at most a tenth of the archives) who bound one visible archive each. Built once and kept as
template databases ``wb_bench_records_<size>`` (``--fresh`` rebuilds); each run measures a copy
(``CREATE DATABASE … TEMPLATE``), dropped afterwards. The fast path that builds them writes the rows
the import writes: ``wechat_backend.seed.generate`` makes the lines, ``ingest.prepare.Preparer``
(the import's own CPU stage) parses, labels, encrypts and indexes them, and the rows go in with
asyncpg ``copy_records_to_table``, chunk by chunk in ``--build-workers`` processes. Institutions go
through the import itself (``IngestService.import_objects``) and every county is opened in phase
``all`` (``CountyService.set_all``). Each run checks the copy before measuring it: row counts, and
100 of the bound archives imported again from the same lines by ``IngestService.import_file`` into
a fresh database — their rows must hold the same columns and decrypt to the same fields, and
``RecordsService`` must answer the same cover, record list, records and trends from both.

**Phase (a), one reader at a time** — the real application (``build_services`` + ``make_app``,
served and logging as ``wechat-backend serve``) in a child process pinned to the first CPU, one
per size, all up at once beside their floors; the servers take turns in ``--blocks`` blocks, so
that whatever else runs on the machine falls on all of them alike. On each, one client connection
(on the second CPU) reads ``--views`` views one after the other, a quarter each
cover (``GET /api/v1/archives/{id}``), record list (``…/records``), one record
(``GET /api/v1/records/{id}``) and trends (``…/trends``), each for a random reader's archive with
that reader's session (``Authorization: Bearer``, opened by ``SessionStore.open``); ``/healthz`` is
probed on its own connection. Target: p99 < 20 ms per route, and at 1,000,000 archives within 1.2×
of the 100,000 figure.

**Phase (b), arrivals** (at ``--archives`` only) — views arrive ``--rate`` a second (Poisson), each
to an idle simulated user, at most ``--users`` at once; the latency that counts is from the
scheduled arrival to the answer. ``--find-rate`` steps the rate up (25, 50, 75, 100, 150, 200, …,
``--seconds`` each, the real server and the floor in turn at each rate) until a route's p99
reaches 50 ms or arrivals find no user free; the last passing rate is what one serve process
sustains. Target: ≥ 100 views/s. Without ``--rate`` or ``--find-rate`` one step runs, at 100 views/s.

**Floor** — every phase runs on ``bench/records_floor.py`` too, with the same views in the same
order: a server doing each view's I/O (the session GET in Redis, the service's own SELECTs, one
audit row INSERT and the commit) and nothing else. ``server ÷ floor`` is what the application adds.

Output: a table on stdout, progress on stderr, ``bench/results/records-<UTC stamp>.json`` and
``records-latest.json``. A missed target prints MISSED and exits 0; a failed check exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import json
import math
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import harness
import records_floor
import tornado
from binding import CallFailed, Connection, forget_keys, summarise
from harness import DEFAULT_PG_URL, PROJECT, RESULTS, BenchError, log, ms, percentile, verdict
from machine import machine_info
from sqlalchemy.engine import URL

from wechat_backend.archives import decide, open_fields, place_from
from wechat_backend.binding.rules import relation_allowed
from wechat_backend.clock import Clock
from wechat_backend.config import Settings, load_settings
from wechat_backend.crypto import KeyRing
from wechat_backend.db import upgrade_url
from wechat_backend.errors import AppError
from wechat_backend.ids import new_public_id
from wechat_backend.ingest.prepare import Preparer
from wechat_backend.privacy import Label, VisibilityInput, visibility
from wechat_backend.records.sections import RESIDENT_KINDS
from wechat_backend.seed import generate
from wechat_backend.seed.places import build_institutions, institution_line
from wechat_backend.web_sessions import SessionStore

ARCHIVES = 1_000_000
SMALL = 100_000
QUICK_ARCHIVES, QUICK_SMALL = 20_000, 2_000
READERS = 10_000
CHECK_ARCHIVES = 100  # bound archives compared with a real import of the same lines
ROUTES = ("cover", "records", "record", "trends")
LABELS = {
    "cover": "GET /api/v1/archives/{id}",
    "records": "GET /api/v1/archives/{id}/records",
    "record": "GET /api/v1/records/{id}",
    "trends": "GET /api/v1/archives/{id}/trends",
    "healthz": "GET /healthz",
}
SINGLE_P99_MS = 20.0
SCALE_RATIO = 1.2
RATE_P99_MS = 50.0
RATE_TARGET = 100.0
RATE_STEPS = (25, 50, 75, 100, 150, 200, 300, 400, 500, 600, 800, 1000, 1200, 1600, 2000)
# Bump when what the template holds changes: older templates are rebuilt. 2: dates in clear only
# on records labelled N.
BUILD_FORMAT = 2
CACHE = RESULTS / "data" / "records"  # secrets.toml: the keys every template is encrypted under
DRAIN_TIMEOUT = 30.0
MAX_ERRORS = 20
# Sources whose change may change the rows a template holds: a mismatch prints a WARNING.
FINGERPRINTED = (
    "wechat_backend/ingest",
    "wechat_backend/seed",
    "wechat_backend/db/migrations/versions",
    "wechat_backend/crypto.py",
    "wechat_backend/blind_index.py",
    "wechat_backend/privacy",  # a package now; privacy.py before
    "wechat_backend/privacy.py",
)
_ACCESS_PREFIX = " INFO wechat_backend.access "


# --------------------------------------------------------------------------- settings


def bench_settings(data_dir: Path, db_url: str, *, redis_url: str = "", key_prefix: str = "wb") -> Settings:
    """Demo-mode settings (secrets from ``data_dir/secrets.toml``) on the bench's database and Redis."""
    return load_settings(
        environ={},
        overrides={
            "server": {"mode": "demo", "data_dir": str(data_dir)},
            "database": {"url": db_url},
            "redis": {"url": redis_url, "key_prefix": key_prefix},
        },
    )


def run_data_dir(tmp: Path, name: str) -> Path:
    """A data_dir of its own for a process, holding a copy of the templates' secrets (the keys)."""
    path = tmp / name
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(CACHE / "secrets.toml", path / "secrets.toml")
    return path


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def key_fingerprint(keyring: KeyRing) -> str:
    return f"{keyring.active_key}:{keyring.blind_fingerprint}"


def code_fingerprint() -> str:
    digest = hashlib.sha256()
    files = []
    for name in FINGERPRINTED:  # what does not exist (moved, renamed) is left out
        path = PROJECT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
    for path in files:
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def size_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def template_name(archives: int, seed: int) -> str:
    return f"wb_bench_records_{size_label(archives)}" + (f"_s{seed}" if seed != 1 else "")


# --------------------------------------------------------------------------- building: the worker side

_builder: dict[str, Any] = {}


@dataclass(frozen=True)
class Chunk:
    """Archives ``first_id …`` generated with their own seed (``arc-s<seed>-…``: unique ids)."""

    index: int
    archives: int
    seed: int
    first_id: int
    check: int  # visible archives whose lines are kept for the import check


def init_builder(settings: Settings, dsn: str, today: dt.date) -> None:
    """Process-pool initializer: the import's own preparer, under the templates' keys."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keyring = KeyRing.from_settings(settings.security)
    _builder.update(
        preparer=Preparer(keyring, settings.privacy, settings.ingest),
        dsn=dsn,
        today=today,
        counties={inst.code: inst.county.code for inst in build_institutions()},
        batch=1000,
    )


def build_chunk(chunk: Chunk) -> dict[str, Any]:
    return asyncio.run(_build_chunk(chunk))


def _relation(birth: dt.date, today: dt.date) -> str:
    """How the reader is bound: as the person, or under 14 as the child's parent (its owner)."""
    return "self" if relation_allowed("self", birth, today) else "child"


def _visible(obj: dict[str, Any], today: dt.date) -> bool:
    """Visible with every county open in phase ``all`` (the build's day)."""
    return visibility(
        VisibilityInput(
            county_open=True,
            phase="all",
            open_to_resident=bool(obj.get("open_to_resident")),
            status=obj["status"],
            birth_date=dt.date.fromisoformat(obj["birth_date"]),
            programmes=frozenset(obj.get("programmes") or ()),
            today=today,
        )
    ).visible


async def _build_chunk(chunk: Chunk) -> dict[str, Any]:
    """Generate, prepare (the import's CPU stage) and COPY one chunk, in one transaction."""
    started = time.perf_counter()
    preparer: Preparer = _builder["preparer"]
    today: dt.date = _builder["today"]
    counties: dict[str, str] = _builder["counties"]
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode  # as write_jsonl
    out: dict[str, Any] = {"index": chunk.index, "archives": 0, "records": 0, "visible": [], "check": []}
    kept: dict[int, tuple[str, list[bytes]]] = {}  # archive id -> (relation, lines) of visible archives
    next_id = chunk.first_id
    conn = await asyncpg.connect(_builder["dsn"])
    try:
        async with conn.transaction():
            batch: list[tuple[dict[str, Any], list[bytes]]] = []

            async def flush() -> None:
                nonlocal next_id
                if not batch:
                    return
                raw = [(no, line, len(line)) for no, line in enumerate((x for _, ls in batch for x in ls), 1)]
                prepared = preparer.prepare(raw, today)
                if prepared.errors or prepared.institutions:
                    raise BenchError(f"chunk {chunk.index}: the preparer refused lines: {prepared.errors[:3]}")
                by_upstream = {obj["upstream_id"]: (obj, lines) for obj, lines in batch}
                ids: dict[str, int] = {}
                archive_rows, record_rows = [], []
                for _, meta, row in prepared.archives:
                    county = counties[meta.institution_code]
                    if meta.archive_county != county:  # the import's write stage would reject it
                        raise BenchError(f"chunk {chunk.index}: an archive number outside its county")
                    row["id"], row["county_code"] = next_id, county
                    ids[meta.upstream_id] = next_id
                    obj, lines = by_upstream[meta.upstream_id]
                    if _visible(obj, today):
                        relation = _relation(dt.date.fromisoformat(obj["birth_date"]), today)
                        out["visible"].append((next_id, relation))
                        kept[next_id] = (relation, lines)
                    next_id += 1
                    archive_rows.append(row)
                for _, meta, row in prepared.records:
                    row["archive_id"] = ids[meta.archive_upstream_id]
                    record_rows.append(row)
                for table, rows in (("archives", archive_rows), ("service_records", record_rows)):
                    if rows:
                        columns = list(rows[0])
                        await conn.copy_records_to_table(
                            table, records=[tuple(r[c] for c in columns) for r in rows], columns=columns
                        )
                out["archives"] += len(archive_rows)
                out["records"] += len(record_rows)
                batch.clear()

            for obj in generate(chunk.archives, chunk.seed, today):
                kind = obj["type"]
                if kind == "institution":  # the same 42 in every chunk: imported once, by the import
                    continue
                line = encode(obj).encode()
                if kind == "archive":
                    if len(batch) >= _builder["batch"]:
                        await flush()
                    batch.append((obj, [line]))
                else:
                    batch[-1][1].append(line)
            await flush()
    finally:
        await conn.close()
    rng = random.Random(chunk.seed)
    for archive_id in rng.sample(sorted(kept), min(chunk.check, len(kept))):
        relation, lines = kept[archive_id]
        out["check"].append((archive_id, relation, b"\n".join(lines).decode()))
    out["seconds"] = time.perf_counter() - started
    return out


# --------------------------------------------------------------------------- building: the template


@dataclass
class Template:
    """A built database kept between runs, and what it holds."""

    name: str
    meta: dict[str, Any]


def ensure_template(admin: URL, archives: int, args: argparse.Namespace, keyring: KeyRing) -> Template:
    """The template for ``archives``: kept from an earlier run if it matches, else built now."""
    name = template_name(archives, args.seed)
    meta = None if args.fresh else asyncio.run(harness.read_template_meta(admin, name, "bench_records_meta"))
    wanted = {"format": BUILD_FORMAT, "archives": archives, "seed": args.seed, "keys": key_fingerprint(keyring)}
    if meta is not None and all(meta.get(k) == v for k, v in wanted.items()):
        log(
            f"using template {name}: {meta['archives']:,} archives, {meta['records']:,} records,"
            f" {meta['readers']:,} readers, built {meta['built_at']} in {meta['build_seconds']:.0f} s"
        )
        if meta.get("code") != code_fingerprint():
            log(
                f"WARNING: {name} was built by other import/seed/crypto code ({meta.get('code')} vs"
                f" {code_fingerprint()}); --fresh rebuilds it (the import check below still compares)"
            )
        return Template(name, meta)
    why = "--fresh" if args.fresh else ("it does not match" if meta is not None else "none kept")
    log(f"building template {name} ({why}) ...")
    return Template(name, build_template(admin, name, archives, args, keyring))


def build_template(admin: URL, name: str, archives: int, args: argparse.Namespace, keyring: KeyRing) -> dict[str, Any]:
    """Build into ``wb_bench_records_build_<hex>``, renamed to ``name`` once complete (an interrupted
    build leaves nothing behind)."""
    started = time.perf_counter()
    today = Clock().today()
    code = code_fingerprint()  # of the code that builds it (and fails early, not after the rows)
    building = f"wb_bench_records_build_{secrets.token_hex(4)}"
    asyncio.run(harness._admin(admin, f'CREATE DATABASE "{building}"'))
    try:
        url = admin.set(database=building)
        settings = bench_settings(CACHE, url_text(url))
        asyncio.run(_schema_and_institutions(url, settings))
        results = _load_chunks(url, settings, archives, args, today)
        meta = asyncio.run(_finish(url, results, archives, args, today, keyring))
        meta["code"] = code
        meta["build_seconds"] = time.perf_counter() - started
        asyncio.run(_write_meta(url, meta))
        harness.publish_database(admin, building, name)
    except BaseException:
        harness.drop_database_quietly(admin, building)
        raise
    log(
        f"built {name}: {meta['archives']:,} archives, {meta['records']:,} records, {meta['readers']:,} readers"
        f" in {meta['build_seconds']:.0f} s (rows {meta['load_seconds']:.0f} s, vacuum {meta['vacuum_seconds']:.0f} s)"
    )
    return meta


async def _schema_and_institutions(url: URL, settings: Settings) -> None:
    """Migrate; the institutions through the import itself; every county open in phase ``all``."""
    from wechat_backend.services import build_services

    await upgrade_url(url_text(url))
    services = await build_services(settings, with_redis=False)
    try:
        lines = [json.dumps(institution_line(inst), ensure_ascii=False) for inst in build_institutions()]
        report = await services.ingest.import_objects(lines)
        if report.rejected or report.inserted != len(lines):
            raise BenchError(f"the institutions did not import: {report.errors[:3]}")
        await services.counties.set_all(opening=True, phase="all", actor="bench")
    finally:
        await services.close()


def _load_chunks(
    url: URL, settings: Settings, archives: int, args: argparse.Namespace, today: dt.date
) -> list[dict[str, Any]]:
    workers = max(1, args.build_workers)
    size = max(250, min(5000, archives // (workers * 4) or 1))
    chunks = []
    for index, first in enumerate(range(0, archives, size)):
        n = min(size, archives - first)
        chunks.append(Chunk(index, n, args.seed * 100_000 + index, first + 1, 0))
    per_chunk = math.ceil(2 * CHECK_ARCHIVES / len(chunks))
    chunks = [Chunk(c.index, c.archives, c.seed, c.first_id, per_chunk) for c in chunks]
    log(f"  {len(chunks)} chunks of up to {size:,} archives in {workers} worker processes ...")
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    done_archives = done_records = 0
    shown = 0.0
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_builder,
        initargs=(settings, harness.dsn(url), today),
    ) as pool:
        pending = {pool.submit(build_chunk, c) for c in chunks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    results.append(result)
                    done_archives += result["archives"]
                    done_records += result["records"]
                elapsed = time.perf_counter() - started
                if done_archives / archives - shown >= 0.05 or not pending:
                    shown = done_archives / archives
                    eta = elapsed / done_archives * (archives - done_archives)
                    log(
                        f"  {done_archives:,}/{archives:,} archives ({shown:.0%}), {done_records:,} records,"
                        f" {elapsed:.0f} s, about {eta:.0f} s to go"
                    )
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return sorted(results, key=lambda r: r["index"])


async def _finish(
    url: URL, results: list[dict[str, Any]], archives: int, args: argparse.Namespace, today: dt.date, keyring: KeyRing
) -> dict[str, Any]:
    """The readers (one identity and one binding each), the check lines, VACUUM ANALYZE."""
    load_seconds = sum(r["seconds"] for r in results)
    rng = random.Random(args.seed)
    visible = [v for r in results for v in r["visible"]]
    check = [c for r in results for c in r["check"]]
    check = rng.sample(check, min(CHECK_ARCHIVES, len(check)))
    readers = min(args.readers or READERS, archives // 10, len(visible))
    checked = {c[0] for c in check}
    rest = [v for v in visible if v[0] not in checked]
    chosen = [(c[0], c[1]) for c in check][:readers] + rng.sample(rest, readers - min(readers, len(check)))
    now = dt.datetime.now(dt.UTC)
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT setval('archives_id_seq', (SELECT max(id) FROM archives))")
            identities = [
                (i, new_public_id(), "mp", f"bench-reader-{i:07d}", None, False, now, now)
                for i in range(1, len(chosen) + 1)
            ]
            await conn.copy_records_to_table(
                "identities",
                records=identities,
                columns=["id", "public_id", "channel", "openid", "unionid", "subscribed", "created_at", "updated_at"],
            )
            await conn.execute("SELECT setval('identities_id_seq', (SELECT max(id) FROM identities))")
            bindings = [(new_public_id(), i, a, rel, now, now) for i, (a, rel) in enumerate(chosen, start=1)]
            await conn.copy_records_to_table(
                "bindings",
                records=bindings,
                columns=["public_id", "identity_id", "archive_id", "relation", "created_at", "updated_at"],
            )
            await conn.execute(
                "CREATE TABLE bench_records_check (archive_id int PRIMARY KEY, relation text, lines text)"
            )
            await conn.copy_records_to_table("bench_records_check", records=check)
        counts = {
            "archives": await conn.fetchval("SELECT count(*) FROM archives"),
            "records": await conn.fetchval("SELECT count(*) FROM service_records"),
        }
        vacuum = time.perf_counter()
        log("  VACUUM ANALYZE ...")
        await conn.execute("VACUUM ANALYZE")
        vacuum = time.perf_counter() - vacuum
        revision = await conn.fetchval("SELECT version_num FROM alembic_version")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await conn.close()
    if counts["archives"] != archives or counts["records"] != sum(r["records"] for r in results):
        raise BenchError(f"the build wrote {counts} rows, the workers reported other counts")
    return {
        "format": BUILD_FORMAT,
        "archives": archives,
        "records": counts["records"],
        "readers": len(chosen),
        "visible_archives": len(visible),
        "check_archives": len(check),
        "seed": args.seed,
        "today": today.isoformat(),
        "keys": key_fingerprint(keyring),
        "alembic": revision,
        "bytes": size,
        "workers": args.build_workers,
        "chunks": len(results),
        "load_seconds": load_seconds / max(1, args.build_workers),
        "vacuum_seconds": vacuum,
        "built_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_after": os.getloadavg(),
    }


async def _write_meta(url: URL, meta: dict[str, Any]) -> None:
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        await conn.execute("CREATE TABLE bench_records_meta (built text)")
        await conn.execute("INSERT INTO bench_records_meta VALUES ($1)", json.dumps(meta))
    finally:
        await conn.close()


@contextlib.contextmanager
def cloned(admin: URL, template: str) -> Iterator[tuple[URL, float]]:
    """A copy ``wb_bench_<hex>`` of the template (file copy), dropped on the way out."""
    name = f"wb_bench_{secrets.token_hex(4)}"
    started = time.perf_counter()
    asyncio.run(harness._admin(admin, f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'))
    try:
        yield admin.set(database=name), time.perf_counter() - started
    finally:
        try:
            asyncio.run(harness._admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except Exception as exc:
            log(f"could not drop database {name}: {exc} — drop it by hand")


# --------------------------------------------------------------------------- the check against the import


@dataclass(frozen=True)
class Caller:
    identity_id: int
    request_id: str | None = "bench-check"
    client_ip: str | None = "127.0.0.1"


def check_against_import(admin: URL, clone: URL, meta: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """Row counts of the copy, then the check archives imported by the real import into a fresh
    database and compared: rows, decrypted fields, and RecordsService's answers."""
    failures: list[str] = []
    tmp.mkdir(parents=True, exist_ok=True)
    with harness.fresh_database(admin) as imported:
        result = asyncio.run(_compare(clone, imported, meta, tmp, failures))
    result["failures"] = failures
    return result


async def _compare(clone: URL, imported: URL, meta: dict[str, Any], tmp: Path, failures: list[str]) -> dict[str, Any]:
    from wechat_backend.services import build_services

    conn = await asyncpg.connect(harness.dsn(clone))
    try:
        counts = {
            "archives": await conn.fetchval("SELECT count(*) FROM archives"),
            "records": await conn.fetchval("SELECT count(*) FROM service_records"),
            "readers": await conn.fetchval("SELECT count(*) FROM bindings"),
        }
        check = [tuple(r) for r in await conn.fetch("SELECT archive_id, relation, lines FROM bench_records_check")]
    finally:
        await conn.close()
    for key, n in counts.items():
        if n != meta[key]:
            failures.append(f"data: {n:,} {key} in the copy, the template was built with {meta[key]:,}")
    path = tmp / "check.jsonl"
    lines = [json.dumps(institution_line(inst), ensure_ascii=False) for inst in build_institutions()]
    lines += [text for _, _, text in check]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data_dir = run_data_dir(tmp, "check")
    await upgrade_url(url_text(imported))
    ours = await build_services(bench_settings(data_dir, url_text(clone)), with_redis=False)
    theirs = await build_services(bench_settings(data_dir, url_text(imported)), with_redis=False)
    try:
        report = await theirs.ingest.import_file(path)
        expected = sum(len(text.split("\n")) for text in lines)
        if report.rejected or report.inserted != expected:
            failures.append(f"check: the import took {report.inserted} of {expected} lines: {report.errors[:3]}")
        await theirs.counties.set_all(opening=True, phase="all", actor="bench")
        upstream = await _bind_like(imported, check)
        views = 0
        for archive_id, _, _ in check:
            views += await _compare_archive(ours, theirs, clone, imported, archive_id, upstream, failures)
    finally:
        await ours.close()
        await theirs.close()
    return {"counts": counts, "archives_compared": len(check), "answers_compared": views}


async def _bind_like(imported: URL, check: list[tuple[Any, ...]]) -> dict[int, str]:
    """In the imported database, an identity and a binding per check archive, as the build made them.
    Returns template archive id -> upstream id."""
    upstream = {a: json.loads(text.split("\n", 1)[0])["upstream_id"] for a, _, text in check}
    conn = await asyncpg.connect(harness.dsn(imported))
    try:
        ids = dict(await conn.fetch("SELECT upstream_id, id FROM archives"))
        now = dt.datetime.now(dt.UTC)
        for n, (archive_id, relation, _) in enumerate(check, start=1):
            identity = await conn.fetchval(
                "INSERT INTO identities (public_id, channel, openid, subscribed, created_at, updated_at)"
                " VALUES ($1, 'mp', $2, false, $3, $3) RETURNING id",
                new_public_id(),
                f"bench-check-{n}",
                now,
            )
            await conn.execute(
                "INSERT INTO bindings (public_id, identity_id, archive_id, relation, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $5)",
                new_public_id(),
                identity,
                ids[upstream[archive_id]],
                relation,
                now,
            )
    finally:
        await conn.close()
    return upstream


ROW_SKIP = {"id", "public_id", "archive_id", "sealed", "created_at", "updated_at"}


async def _rows(url: URL, upstream_id: str, keyring: KeyRing) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """An archive's row and its records' rows (ids left out, sealed columns decrypted), the caller's
    identity id, and public id -> upstream id for the archive, its records and its binding."""
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        archive = dict(await conn.fetchrow("SELECT * FROM archives WHERE upstream_id = $1", upstream_id))
        records = [
            dict(r) for r in await conn.fetch("SELECT * FROM service_records WHERE archive_id = $1", archive["id"])
        ]
        binding = await conn.fetchrow(
            "SELECT public_id, identity_id FROM bindings WHERE archive_id = $1", archive["id"]
        )
    finally:
        await conn.close()
    names = {archive["public_id"]: upstream_id, binding["public_id"]: "binding"}
    names |= {r["public_id"]: r["upstream_id"] for r in records}
    rows = {"archive": _plain(archive, keyring.open(archive["sealed"], f"archive:{upstream_id}"))}
    for r in records:
        rows[r["upstream_id"]] = _plain(r, keyring.open(r["sealed"], f"record:{r['upstream_id']}"))
    return rows, {"identity": binding["identity_id"], "archive": archive["public_id"]}, names


def _plain(row: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ROW_SKIP} | {"sealed": fields}


async def _compare_archive(
    ours: Any, theirs: Any, clone: URL, imported: URL, archive_id: int, upstream: dict[int, str], failures: list[str]
) -> int:
    """One check archive: its rows, then every read a resident makes of it, from both databases."""
    up = upstream[archive_id]
    rows_a, who_a, names_a = await _rows(clone, up, ours.keyring)
    rows_b, who_b, names_b = await _rows(imported, up, theirs.keyring)
    if rows_a != rows_b:
        differ = sorted(k for k in rows_a.keys() | rows_b.keys() if rows_a.get(k) != rows_b.get(k))
        failures.append(f"check: archive {up}: rows differ from the import's ({', '.join(differ[:3])})")
    answers_a = await _reads(ours.records, who_a)
    answers_b = await _reads(theirs.records, who_b)
    where = _difference(_canonical(answers_a, names_a), _canonical(answers_b, names_b))
    if where:
        failures.append(f"check: archive {up}: RecordsService answers differ from the import's at {where}")
    if answers_a.get("records", {}).get("error") is not None:
        failures.append(f"check: archive {up}: the bound archive does not open ({answers_a['records']['error']})")
    return len(answers_a)


async def _reads(service: Any, who: dict[str, Any]) -> dict[str, Any]:
    caller = Caller(who["identity"])

    async def read(call: Any, *a: Any) -> Any:
        try:
            return await call(caller, *a)
        except AppError as exc:
            return {"error": exc.code}

    out = {
        "cover": await read(service.cover, who["archive"]),
        "records": await read(service.records, who["archive"]),
        "trends": await read(service.trends, who["archive"]),
    }
    for item in out["records"].get("records", []):
        out[f"record {item['id']}"] = await read(service.record, item["id"])
    return out


def _difference(a: Any, b: Any, path: str = "") -> str:
    """Where two answers first differ ('' when they are equal): a path of keys, never a value."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                return f"{path}/{key} (only in one)"
            found = _difference(a[key], b[key], f"{path}/{key}")
            if found:
                return found
        return ""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} ({len(a)} vs {len(b)} items)"
        return next(
            (d for i, (x, y) in enumerate(zip(a, b, strict=True)) if (d := _difference(x, y, f"{path}[{i}]"))), ""
        )
    return "" if a == b else path or "/"


def _canonical(answers: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Answers with upstream ids for public ids, and records of one day in upstream order: the
    service orders a day's records by public id, which each import draws anew."""
    out = _named(answers, names)
    listed = out["records"].get("records")
    if isinstance(listed, list):
        listed.sort(key=lambda item: (item.get("date", ""), item.get("id", "")), reverse=True)
    return out


def _cursor(value: Any, names: dict[str, str]) -> Any:
    """A page cursor names its last record by public id (``base64(date|id)``)."""
    if not isinstance(value, str):
        return value
    day, _, record = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().partition("|")
    return f"{day}|{names.get(record, record)}"


def _named(value: Any, names: dict[str, str]) -> Any:
    """``value`` with public ids replaced by upstream ids (the import draws new public ids)."""
    if isinstance(value, dict):
        return {
            _named(k, names): _cursor(v, names) if k == "next_cursor" else _named(v, names) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_named(v, names) for v in value]
    if isinstance(value, str):
        if value in names:
            return names[value]
        if value.startswith("record "):
            return "record " + names.get(value[7:], value[7:])
    return value


# --------------------------------------------------------------------------- readers


@dataclass
class Reader:
    """A bound resident: the archive and the records a resident may open (public ids), a session."""

    identity_id: int
    archive: str
    records: tuple[str, ...]  # resident-visible
    all_records: frozenset[str]
    token: str = ""


def _normal(label: object) -> bool:
    try:
        return Label.from_json(label).is_normal  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError):
        return False


async def load_readers(url: URL, keyring: KeyRing, today: dt.date) -> tuple[list[Reader], int]:
    """The readers whose archive is visible today (decided as the service decides), with the ids of
    the records a resident may open. Returns (readers, readers whose archive is hidden now)."""
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT b.identity_id, a.id, a.public_id, a.upstream_id, a.sealed, a.status, a.open_to_resident,"
            " a.open_override,"
            " c.opening AS county_open, c.phase, i.name AS institution, i.consult_phone"
            " FROM bindings b JOIN archives a ON a.id = b.archive_id"
            " LEFT JOIN counties c ON c.code = a.county_code LEFT JOIN institutions i ON i.code = a.institution_code"
            " ORDER BY b.identity_id"
        )
        shown = []
        for r in rows:
            row = SimpleNamespace(**dict(r))
            if decide(row, open_fields(keyring, row), place_from(row), today).visible:
                shown.append(row)
        records = await conn.fetch(
            "SELECT archive_id, public_id, upstream_id, sealed FROM service_records WHERE archive_id = ANY($1::int[])",
            [r.id for r in shown],
        )
    finally:
        await conn.close()
    visible: dict[int, list[str]] = {}
    every: dict[int, set[str]] = {}
    for r in records:
        every.setdefault(r["archive_id"], set()).add(r["public_id"])
        head = keyring.open(r["sealed"], f"record:{r['upstream_id']}")
        if head.get("kind") in RESIDENT_KINDS and _normal(head.get("label")):
            visible.setdefault(r["archive_id"], []).append(r["public_id"])
    readers = [
        Reader(r.identity_id, r.public_id, tuple(sorted(visible.get(r.id, ()))), frozenset(every.get(r.id, ())))
        for r in shown
    ]
    return readers, len(rows) - len(shown)


async def open_sessions(settings: Settings, readers: list[Reader]) -> None:
    """A fresh login session per reader (``SessionStore.open``, as a login makes it)."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.redis.url)
    store = SessionStore(settings.session, client, Clock(), key_prefix=settings.redis.key_prefix)
    try:
        for i in range(0, len(readers), 50):  # the client's connection pool is bounded
            part = readers[i : i + 50]
            for reader, token in zip(
                part, await asyncio.gather(*(store.open(r.identity_id) for r in part)), strict=True
            ):
                reader.token = token
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- the server children


def child_main(config_path: str) -> int:
    cfg = harness.child_config(config_path)
    asyncio.run(_serve(cfg))
    return 0


def floor_main(config_path: str) -> int:
    cfg = harness.child_config(config_path)
    settings = bench_settings(
        Path(cfg["data_dir"]), cfg["db_url"], redis_url=cfg["redis_url"], key_prefix=cfg["key_prefix"]
    )
    asyncio.run(records_floor.serve(cfg, settings))
    return 0


async def _serve(cfg: dict[str, Any]) -> None:
    """The real server, as ``wechat-backend serve`` runs it."""
    settings = bench_settings(
        Path(cfg["data_dir"]), cfg["db_url"], redis_url=cfg["redis_url"], key_prefix=cfg["key_prefix"]
    )
    await harness.serve_real(settings, cfg["profile_path"])


# --------------------------------------------------------------------------- the load


@dataclass(frozen=True)
class View:
    route: str
    reader: Reader
    record: str = ""

    @property
    def path(self) -> str:
        if self.route == "record":
            return f"/api/v1/records/{self.record}"
        tail = {"cover": "", "records": "/records", "trends": "/trends"}[self.route]
        return f"/api/v1/archives/{self.reader.archive}{tail}"


class Mix:
    """A quarter of each route, each for a random reader (one with a record for ``record``); the
    same seed gives the real server and the floor the same views in the same order."""

    def __init__(self, readers: list[Reader], seed: int) -> None:
        self._rng = random.Random(seed)
        self._readers = readers
        self._with_records = [r for r in readers if r.records]

    def next(self) -> View:
        route = self._rng.choice(ROUTES)
        if route == "record":
            reader = self._rng.choice(self._with_records)
            return View(route, reader, self._rng.choice(reader.records))
        return View(route, self._rng.choice(self._readers))


class Run:
    """What the client saw in one window: latencies per route (call, and from the arrival), statuses, failures."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict  # the real server: answers are checked in full; the floor: ids only
        self.window_start = math.inf
        self.window_end = math.inf
        self.stopping = False
        self.latencies: dict[str, list[float]] = {k: [] for k in LABELS}
        self.from_arrival: dict[str, list[float]] = {k: [] for k in ROUTES}
        self.statuses: dict[str, Counter[int]] = {k: Counter() for k in LABELS}
        self.errors: list[str] = []
        self.error_count = 0
        self.queued: list[float] = []
        self.offered = 0
        self.waited = 0

    def in_window(self, t: float) -> bool:
        return self.window_start <= t <= self.window_end

    def fail(self, message: str) -> None:
        self.error_count += 1
        if message not in self.errors and len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    async def view(self, conn: Connection, view: View) -> float:
        """One view, its answer checked; returns when it was sent."""
        started = time.perf_counter()
        status, raw = await conn.call("GET", view.path, token=view.reader.token)
        ended = time.perf_counter()
        self.statuses[view.route][status] += 1
        if self.in_window(ended):
            self.latencies[view.route].append(ended - started)
        if status != 200:
            self.fail(f"{LABELS[view.route]}: status {status}")
            return started
        try:
            body = json.loads(raw)
        except ValueError:
            self.fail(f"{LABELS[view.route]}: the answer is not JSON")
            return started
        problem = self._check(view, body)
        if problem:
            self.fail(f"{LABELS[view.route]}: {problem}")
        return started

    def _check(self, view: View, body: dict[str, Any]) -> str:
        reader = view.reader
        if view.route == "record":
            if body.get("id") != view.record or body.get("archive_id") != reader.archive:
                return "another record or archive than asked for"
            return "no sections" if self.strict and not isinstance(body.get("sections"), list) else ""
        if view.route == "records":
            ids = [item.get("id") for item in body.get("records", [])]
            allowed = set(reader.records) if self.strict else reader.all_records
            if any(i not in allowed for i in ids) or (self.strict and reader.records and not ids):
                return "a record that is not the archive's (or not a resident's) listed, or none"
            return ""
        if body.get("id") != reader.archive:
            return "another archive than asked for"
        if self.strict and view.route == "cover" and "sections" not in body:
            return "no sections"
        if self.strict and view.route == "trends" and not isinstance(body.get("series"), list):
            return "no series"
        return ""


async def healthz_loop(conn: Connection, run: Run, every: float) -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    while not run.stopping:
        started = time.perf_counter()
        try:
            status, raw = await conn.call("GET", "/healthz")
        except CallFailed as exc:
            run.fail(str(exc))
            return
        ended = time.perf_counter()
        run.statuses["healthz"][status] += 1
        if run.in_window(ended):
            run.latencies["healthz"].append(ended - started)
        if status != 200 or json.loads(raw or b"{}") != {"status": "ok"}:
            run.fail("/healthz: unexpected answer")
        due = await harness.next_tick(due, every)


@dataclass
class Meter:
    """CPU seconds of the server process, this process and the database's backends, summed over
    the windows of one phase (``begin`` … ``end``, as often as needed), with what else ran."""

    server_pid: int
    admin: asyncpg.Connection
    database: str
    start: dict[str, Any] = field(default_factory=dict)
    totals: Counter[str] = field(default_factory=Counter)
    walls: list[tuple[float, float]] = field(default_factory=list)
    loadavg: list[tuple[float, float, float]] = field(default_factory=list)

    @staticmethod
    def _stalls() -> dict[str, float]:
        """Seconds some task waited for a CPU / for I/O (pressure stall information), and CPU steal
        (time the hypervisor gave this machine's CPUs to others): what else ran during a window."""
        return harness.stall_counters()

    async def _sample(self) -> dict[str, Any]:
        pids = [
            r[0] for r in await self.admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", self.database)
        ]
        # Connections opened to the database so far: a pool that opens and closes connections under
        # a burst (SQLAlchemy's overflow beyond pool_size) shows here.
        sessions = await self.admin.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = $1", self.database)
        return {
            "seconds": time.perf_counter(),
            "wall": time.time(),
            "server": harness.cpu_seconds(self.server_pid),
            "client": time.process_time(),
            "db": {pid: harness.cpu_seconds(pid) for pid in pids},
            "loadavg": os.getloadavg(),
            "connections": float(sessions or 0),
            **self._stalls(),
        }

    async def begin(self) -> None:
        self.start = await self._sample()
        if not self.loadavg:
            self.loadavg.append(self.start["loadavg"])

    async def end(self) -> None:
        end, start = await self._sample(), self.start
        for key in ("seconds", "server", "client", "cpu_wait", "io_wait", "steal", "connections"):
            self.totals[key] += end[key] - start[key]
        # Backends alive at the end (a connection closed meanwhile takes its CPU time with it).
        self.totals["database"] += sum(v - start["db"].get(pid, 0.0) for pid, v in end["db"].items())
        self.walls.append((start["wall"], end["wall"]))
        self.loadavg[1:] = [end["loadavg"]]

    def result(self) -> dict[str, Any]:
        """Shares of the windows' time: CPU of the server, the load generator and the database's
        backends; some task waiting for a CPU / for I/O; CPU stolen (all CPUs)."""
        span = self.totals["seconds"]
        out: dict[str, Any] = {k: self.totals[k] / span for k in self.totals if k not in ("seconds", "connections")}
        return out | {
            "connections_opened": int(self.totals["connections"]),
            "seconds": span,
            "loadavg_start": self.loadavg[0],
            "loadavg_end": self.loadavg[-1],
            "walls": self.walls,
        }


@dataclass
class Target:
    """A server child under measurement, on one database size, and what it saw."""

    name: str  # "server" (the real one) or "floor"
    size: str
    child: harness.ServerChild
    database: str
    readers: list[Reader]
    single: tuple[Run, Meter] | None = None
    steps: list[tuple[float, Run, Meter]] = field(default_factory=list)

    @property
    def strict(self) -> bool:
        return self.name == "server"

    def __str__(self) -> str:
        return f"{self.name} [{self.size}]"


async def one_at_a_time(targets: list[Target], admin: asyncpg.Connection, args: argparse.Namespace) -> None:
    """Phase (a) on every server in turn, block by block, so that whatever else runs on the machine
    falls on all of them alike: one connection, one view after the other, /healthz on a connection
    of its own during the server's own blocks. A real server and its floor on the same size get the
    same views in the same order."""
    state = []
    for t in targets:
        conn, probe = await Connection.open(t.child.port), await Connection.open(t.child.port)
        t.single = (Run(t.strict), Meter(t.child.pid, admin, t.database))
        state.append((t, conn, probe, Mix(t.readers, args.seed)))
    try:
        for t, conn, _, mix in state:
            for _ in range(args.warmup_views):
                await t.single[0].view(conn, mix.next())
        per_block = math.ceil(args.views / args.blocks)
        for block in range(args.blocks):
            n = min(per_block, args.views - block * per_block)
            for t, conn, probe, mix in state[block % len(state) :] + state[: block % len(state)]:
                run, meter = t.single
                run.stopping = False
                prober = asyncio.create_task(healthz_loop(probe, run, args.healthz_every))
                await meter.begin()
                run.window_start, run.window_end = time.perf_counter(), math.inf
                for _ in range(n):
                    await run.view(conn, mix.next())
                run.window_end = time.perf_counter()
                await meter.end()
                run.stopping = True
                prober.cancel()
                await asyncio.gather(prober, return_exceptions=True)
            log(f"  block {block + 1}/{args.blocks}: {n:,} views on each of {len(state)} servers")
    finally:
        for _, conn, probe, _ in state:
            await conn.close()
            await probe.close()


async def at_rates(
    targets: list[Target], admin: asyncpg.Connection, rates: list[float], args: argparse.Namespace
) -> None:
    """Phase (b): the rates in turn, each on every server still passing (the real one, then its
    floor, so that both see the same moment's machine), until each has failed once."""
    state = []
    for t in targets:
        conns = [await Connection.open(t.child.port) for _ in range(args.users)]
        state.append((t, conns, await Connection.open(t.child.port), Mix(t.readers, args.seed + 1)))
    failed: set[str] = set()
    try:
        for rate in rates:
            for t, conns, probe, mix in state:
                if str(t) in failed:
                    continue
                run, meter = Run(t.strict), Meter(t.child.pid, admin, t.database)
                await at_rate(conns, probe, mix, run, meter, rate, args)
                t.steps.append((rate, run, meter))
                why = _step_verdict(run)
                log(f"  {t}: {rate:g} views/s for {args.seconds:g} s — {why or 'passes'}")
                if why:
                    failed.add(str(t))
            if len(failed) == len(state):
                break
    finally:
        for _, conns, probe, _ in state:
            for conn in [*conns, probe]:
                await conn.close()


async def at_rate(
    conns: list[Connection],
    probe: Connection,
    mix: Mix,
    run: Run,
    meter: Meter,
    rate: float,
    args: argparse.Namespace,
) -> None:
    """One rate step: views arrive ``rate`` a second (Poisson) and each goes to an idle user; with
    every user busy, arrivals queue in order. What counts is the time from the scheduled arrival to
    the answer (the load generator's own delay of a few milliseconds included)."""
    rng = random.Random(args.seed)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in conns:
        idle.put_nowait(conn)
    tasks: set[asyncio.Task[None]] = set()

    async def arrive(due: float) -> None:
        had_to_wait = idle.empty()
        conn = await idle.get()
        if run.stopping:
            idle.put_nowait(conn)
            return
        view = mix.next()
        try:
            began = await run.view(conn, view)
        except CallFailed as exc:
            run.fail(str(exc))
            return  # the connection is no longer usable
        ended = time.perf_counter()
        if run.in_window(due):
            run.queued.append(max(0.0, began - due))
            run.waited += had_to_wait
            run.from_arrival[view.route].append(ended - due)
        idle.put_nowait(conn)

    async def arrivals() -> None:
        due = time.perf_counter()
        while not run.stopping:
            due += rng.expovariate(rate)
            while not run.stopping and (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(min(delay, 0.25))
            if run.stopping:
                break
            task = asyncio.create_task(arrive(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if run.in_window(due):
                run.offered += 1

    feeder = asyncio.create_task(arrivals())
    prober = asyncio.create_task(healthz_loop(probe, run, args.healthz_every))
    await asyncio.sleep(args.warmup)
    await meter.begin()
    run.window_start = time.perf_counter()
    run.window_end = run.window_start + args.seconds
    await asyncio.sleep(args.seconds)
    await meter.end()
    run.stopping = True
    await feeder
    prober.cancel()
    await asyncio.gather(prober, return_exceptions=True)
    _, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    if pending:
        run.fail(f"views still waiting {DRAIN_TIMEOUT:.0f} s after the window")


# --------------------------------------------------------------------------- a server under load


def server_times(path: Path, walls: list[tuple[float, float]]) -> dict[str, Any]:
    """The server's own request times per route in the windows (its access log), ERROR lines, tracebacks."""
    times: dict[str, list[float]] = {k: [] for k in LABELS}
    errors: list[str] = []
    tracebacks = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        if " ERROR " in line[:40] or " CRITICAL " in line[:40]:
            errors.append(line[24:200])
        if _ACCESS_PREFIX not in line:
            continue
        try:
            stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            status, _, route_path, took = line.split(_ACCESS_PREFIX, 1)[1].split(" ")
        except ValueError:
            continue
        route = _route_of(route_path)
        if route and status == "200" and any(start <= stamp <= end for start, end in walls):
            times[route].append(float(took.removesuffix("ms")) / 1000)
    return {"times": times, "errors": errors, "tracebacks": tracebacks}


def _route_of(path: str) -> str | None:
    if path == "/healthz":
        return "healthz"
    if path.startswith("/api/v1/records/"):
        return "record"
    if path.startswith("/api/v1/archives/"):
        return {(): "cover", ("records",): "records", ("trends",): "trends"}.get(tuple(path.split("/")[5:]))
    return None


def figures(run: Run, cpu: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any]:
    seconds = cpu["seconds"]
    views = sum(len(run.latencies[r]) for r in ROUTES)
    out: dict[str, Any] = {
        "routes": {
            k: summarise(run.latencies[k], seconds)
            | {
                "server_p50_ms": percentile(sorted(seen["times"][k]), 0.50),
                "server_p99_ms": percentile(sorted(seen["times"][k]), 0.99),
                "statuses": {str(s): n for s, n in sorted(run.statuses[k].items())},
            }
            for k in LABELS
        },
        "views": views,
        "views_per_second": views / seconds if seconds else 0.0,
        "cpu": cpu,
        "cpu_per_view_ms": cpu["server"] * seconds / views * 1000 if views else math.nan,
        "db_cpu_per_view_ms": cpu["database"] * seconds / views * 1000 if views else math.nan,
    }
    if any(run.from_arrival.values()):
        for k in ROUTES:
            arrived = sorted(run.from_arrival[k])
            out["routes"][k] |= {
                "arrival_p50_ms": percentile(arrived, 0.5),
                "arrival_p99_ms": percentile(arrived, 0.99),
            }
        out["queued"] = summarise(run.queued, seconds) | {"waited": run.waited, "offered": run.offered}
    return out


def _failures(run: Run) -> list[str]:
    failures = list(run.errors)
    if run.error_count > len(run.errors):
        failures.append(f"{run.error_count:,} failed checks in all ({len(run.errors)} distinct shown)")
    return failures


def _step_verdict(run: Run) -> str:
    """Why a rate step fails ('' when it passes): a route's p99 from arrival, waits, errors."""
    worst = []
    for k in ROUTES:
        p99 = percentile(sorted(run.from_arrival[k]), 0.99)
        if not p99 < RATE_P99_MS:
            worst.append(f"{k} p99 {ms(p99)} ms")
    if run.waited or (run.offered and sum(len(v) for v in run.from_arrival.values()) < 0.95 * run.offered):
        worst.append(f"{run.waited} arrivals found no user free")
    if run.error_count:
        worst.append(f"{run.error_count} failed checks")
    return ", ".join(worst)


def _passes(step: dict[str, Any]) -> bool:
    q = step["queued"]
    return (
        all(step["routes"][k]["arrival_p99_ms"] < RATE_P99_MS for k in ROUTES)
        and not q["waited"]
        and q["count"] >= 0.95 * q["offered"]
        and not step["failures"]
    )


def collect(t: Target) -> dict[str, Any]:
    """A stopped server's figures: what the client saw, with the server's own times from its log
    (complete once it stopped), and its ERROR lines and tracebacks as failures."""
    path = t.child.stderr_path
    assert t.single is not None
    run, meter = t.single
    cpu = meter.result()
    out: dict[str, Any] = {
        "one_at_a_time": figures(run, cpu, server_times(path, cpu["walls"])) | {"failures": _failures(run)}
    }
    steps = []
    for rate, run, meter in t.steps:
        cpu = meter.result()
        step = {"rate": rate} | figures(run, cpu, server_times(path, cpu["walls"])) | {"failures": _failures(run)}
        steps.append(step | {"passed": _passes(step)})
    out["rates"] = steps
    out["failures"] = [f"{t.name}: {f}" for phase in [out["one_at_a_time"], *steps] for f in phase["failures"]]
    whole = server_times(path, [])
    out["failures"] += [f"{t.name} log: {line}" for line in whole["errors"][:5]]
    if whole["tracebacks"]:
        out["failures"].append(f"{t.name} log: {whole['tracebacks']} tracebacks")
    return out


# --------------------------------------------------------------------------- the run


def measure(
    sizes: list[int],
    templates: dict[int, Template],
    admin: URL,
    args: argparse.Namespace,
    tmp: Path,
    cpus: tuple[int, int],
) -> dict[str, Any]:
    """Copy and check every size's template, then measure them all together (see ``_measure``)."""
    results: dict[str, Any] = {}
    copies: dict[str, dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        for n in sizes:
            label, template = size_label(n), templates[n]
            result: dict[str, Any] = {"archives": n, "template": template.name, "data": template.meta}
            log(f"[{label}] copying template {template.name} ...")
            url, clone_seconds = stack.enter_context(cloned(admin, template.name))
            result["clone_seconds"] = clone_seconds
            log(
                f"[{label}] copied in {clone_seconds:.0f} s; migrating (a no-op at head),"
                " checking against the import ..."
            )
            asyncio.run(upgrade_url(url_text(url)))
            check_started = time.perf_counter()
            result["check"] = check_against_import(admin, url, template.meta, tmp / f"check-{label}")
            result["check"]["seconds"] = time.perf_counter() - check_started
            keyring = KeyRing.from_settings(bench_settings(run_data_dir(tmp, "keys"), url_text(url)).security)
            readers, hidden = asyncio.run(load_readers(url, keyring, Clock().today()))
            result["readers"] = {
                "visible": len(readers),
                "hidden_today": hidden,
                "with_records": sum(1 for r in readers if r.records),
                "records_visible": sum(len(r.records) for r in readers),
            }
            log(
                f"[{label}] check: {result['check']['archives_compared']} archives,"
                f" {result['check']['answers_compared']} answers compared with the import,"
                f" {len(result['check']['failures'])} differences; {len(readers):,} readers ({hidden} hidden today)"
            )
            if not readers or not any(r.records for r in readers):
                raise BenchError("no reader has a visible archive with a record a resident may read")
            results[label] = result
            copies[label] = {"url": url, "readers": readers}
        key_prefix = f"benchrec{secrets.token_hex(3)}"
        try:
            found = asyncio.run(_measure(copies, admin, args, tmp, cpus, key_prefix))
        finally:
            asyncio.run(forget_keys(args.redis_url, key_prefix))
    for label, figures_of in found.items():
        results[label] |= figures_of
    return results


async def _measure(
    copies: dict[str, dict[str, Any]],
    admin: URL,
    args: argparse.Namespace,
    tmp: Path,
    cpus: tuple[int, int],
    key_prefix: str,
) -> dict[str, dict[str, Any]]:
    """A real server and a floor per size, all started at once (idle, a server costs nothing).
    Phase (a) on all of them, interleaved; then the other sizes' servers stop and phase (b) runs
    on the main size's real server and floor, alternately."""
    main = next(iter(copies))
    targets: list[Target] = []
    admin_conn = await asyncpg.connect(harness.dsn(admin))
    try:
        for label, copy in copies.items():
            for kind, name in (("--child", "server"), ("--floor-child", "floor")):
                data_dir = run_data_dir(tmp, f"{name}-{label}")
                cfg = {
                    "server_cpu": cpus[0],
                    "client_cpu": cpus[1],
                    "db_url": url_text(copy["url"]),
                    "redis_url": args.redis_url,
                    "key_prefix": key_prefix,
                    "profile_path": "",
                    "data_dir": str(data_dir),
                }
                argv = [str(Path(__file__).resolve()), kind]
                child = await asyncio.to_thread(
                    harness.start_child, f"{name} [{label}]", argv, cfg, tmp / f"{name}-{label}"
                )
                targets.append(Target(name, label, child, copy["url"].database, copy["readers"]))
        sessions = bench_settings(run_data_dir(tmp, "sessions"), "", redis_url=args.redis_url, key_prefix=key_prefix)
        for copy in copies.values():  # fresh, so that no idle timeout runs out during the run
            await open_sessions(sessions, copy["readers"])
        log(
            f"phase (a): {len(targets)} servers, {args.warmup_views} warm-up + {args.views:,} views each,"
            f" in {args.blocks} interleaved blocks ..."
        )
        await one_at_a_time(targets, admin_conn, args)
        for t in targets:
            if t.size != main:
                await asyncio.to_thread(t.child.stop)
        rates = rate_plan(args)
        if rates:
            await open_sessions(sessions, copies[main]["readers"])
            log(f"phase (b) at {main}: {'stepping the rate up' if args.find_rate else f'{rates[0]:g} views/s'} ...")
            await at_rates([t for t in targets if t.size == main], admin_conn, rates, args)
        for t in targets:
            if t.size == main:
                await asyncio.to_thread(t.child.stop)
    finally:
        for t in targets:
            await asyncio.to_thread(t.child.kill)
        await admin_conn.close()
    out: dict[str, dict[str, Any]] = {label: {} for label in copies}
    for t in targets:
        out[t.size][t.name] = collect(t)
    return out


# --------------------------------------------------------------------------- report


def _route_table(phase: dict[str, Any], arrival: bool = False) -> None:
    extra = f"{'arr p50':>9}{'arr p99':>9}" if arrival else ""
    print(
        f"  {'route':<36}{'count':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'max ms':>8}"
        f"{'srv p50':>9}{'srv p99':>9}{extra}"
    )
    for k in LABELS:
        s = phase["routes"][k]
        extra = f"{ms(s['arrival_p50_ms']):>9}{ms(s['arrival_p99_ms']):>9}" if arrival and k in ROUTES else ""
        print(
            f"  {LABELS[k]:<36}{s['count']:>7,}{ms(s['p50_ms']):>8}{ms(s['p95_ms']):>8}{ms(s['p99_ms']):>8}"
            f"{ms(s['max_ms']):>8}{ms(s['server_p50_ms']):>9}{ms(s['server_p99_ms']):>9}{extra}"
        )


def _load(cpu: dict[str, Any]) -> str:
    return (
        f"load {cpu['loadavg_start'][0]:.2f}→{cpu['loadavg_end'][0]:.2f}, CPU wait {cpu['cpu_wait']:.0%},"
        f" I/O wait {cpu['io_wait']:.0%}, steal {cpu['steal']:.0%}"
    )


def _cpu_line(phase: dict[str, Any]) -> str:
    cpu = phase["cpu"]
    opened = f", {cpu['connections_opened']} database connections opened" if cpu["connections_opened"] else ""
    return (
        f"{phase['views_per_second']:.1f} views/s; CPU server {cpu['server']:.0%}, PostgreSQL backends"
        f" {cpu['database']:.0%}, load generator {cpu['client']:.0%}; server CPU per view"
        f" {phase['cpu_per_view_ms']:.2f} ms, database CPU per view {phase['db_cpu_per_view_ms']:.2f} ms{opened};"
        f" {_load(cpu)}"
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _x(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2f}×"


def report(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    sizes = result["sizes"]
    for label, size in sizes.items():
        d = size["data"]
        print(
            f"\n== {size['archives']:,} archives ({d['records']:,} records, {d['readers']:,} readers, template"
            f" {size['template']}, {d['bytes'] / 2**30:.1f} GiB; built in {d['build_seconds']:.0f} s; copied in"
            f" {size['clone_seconds']:.0f} s)"
        )
        print(
            f"check against the import: {size['check']['archives_compared']} archives, "
            f"{size['check']['answers_compared']} RecordsService answers, {len(size['check']['failures'])} differences"
        )
        for name in ("server", "floor"):
            phase = size[name]["one_at_a_time"]
            print(f"(a) one reader at a time — {name}:")
            _route_table(phase)
            print(f"  {_cpu_line(phase)}")
        real, floor = size["server"]["one_at_a_time"], size["floor"]["one_at_a_time"]
        ratios = {k: _ratio(real["routes"][k]["p99_ms"], floor["routes"][k]["p99_ms"]) for k in ROUTES}
        cpu_ratio = _ratio(real["cpu_per_view_ms"], floor["cpu_per_view_ms"])
        size["against_floor"] = {"p99": ratios, "cpu_per_view": cpu_ratio}
        print(
            "  server ÷ floor: p99 "
            + ", ".join(f"{k} {_x(v)}" for k, v in ratios.items())
            + f"; CPU per view {real['cpu_per_view_ms']:.2f} ÷ {floor['cpu_per_view_ms']:.2f} ms = {_x(cpu_ratio)}"
        )
        ok = {k: real["routes"][k]["p99_ms"] < SINGLE_P99_MS for k in ROUTES}
        targets[f"single_p99_{label}"] = {
            "value": {k: real["routes"][k]["p99_ms"] for k in ROUTES},
            "met": all(ok.values()),
        }
        print(
            f"  target p99 < {SINGLE_P99_MS:.0f} ms per route at {size['archives']:,}: "
            + ", ".join(f"{k} {ms(real['routes'][k]['p99_ms'])}" for k in ROUTES)
            + f"  {verdict(all(ok.values())).replace('met', 'OK')}"
        )
    labels = list(sizes)
    if len(labels) == 2:
        big, small = sizes[labels[0]]["server"]["one_at_a_time"], sizes[labels[1]]["server"]["one_at_a_time"]
        r99 = {k: _ratio(big["routes"][k]["p99_ms"], small["routes"][k]["p99_ms"]) for k in ROUTES}
        r50 = {k: _ratio(big["routes"][k]["p50_ms"], small["routes"][k]["p50_ms"]) for k in ROUTES}
        ok = all(v <= SCALE_RATIO for v in r99.values())
        targets["scale"] = {"p99_ratio": r99, "p50_ratio": r50, "met": ok}
        print(
            f"\nscale: {labels[0]} ÷ {labels[1]} p99 "
            + ", ".join(f"{k} {_x(v)}" for k, v in r99.items())
            + " (p50 "
            + ", ".join(f"{k} {_x(v)}" for k, v in r50.items())
            + f"); target ≤ {SCALE_RATIO}× on p99  {verdict(ok).replace('met', 'OK')}"
        )
    main = sizes[labels[0]]
    real_steps, floor_steps = main["server"]["rates"], main["floor"]["rates"]
    if real_steps:
        print(f"\n(b) arrivals at {main['archives']:,} archives, {args.users} users, {args.seconds:g} s a step:")
        for name, steps in (("server", real_steps), ("floor", floor_steps)):
            for step in steps:
                q = step["queued"]
                print(
                    f"  {name} at {step['rate']:g}/s: "
                    + ", ".join(f"{k} p99 {ms(step['routes'][k]['arrival_p99_ms'])}" for k in ROUTES)
                    + f" ms from arrival; {q['waited']} of {q['count']:,} waited; {_cpu_line(step)}"
                    + ("" if step["passed"] else "  — fails")
                )
        passing = [s for s in real_steps if s["passed"]]
        best = passing[-1]["rate"] if passing and passing == real_steps[: len(passing)] else 0.0
        floor_passing = [s for s in floor_steps if s["passed"]]
        floor_best = floor_passing[-1]["rate"] if floor_passing else 0.0
        detail = f"at {best:g}/s" if best else "at none of the rates"
        if best:
            _route_table(passing[-1], arrival=True)
            same = next((s for s in floor_steps if s["rate"] == best), None)
            if same is not None:
                r = {
                    k: _ratio(passing[-1]["routes"][k]["arrival_p99_ms"], same["routes"][k]["arrival_p99_ms"])
                    for k in ROUTES
                }
                c = _ratio(passing[-1]["cpu_per_view_ms"], same["cpu_per_view_ms"])
                main["rate_against_floor"] = {"rate": best, "p99": r, "cpu_per_view": c}
                print(
                    f"  server ÷ floor at {best:g}/s: p99 "
                    + ", ".join(f"{k} {_x(v)}" for k, v in r.items())
                    + f"; CPU per view {_x(c)}"
                )
        searched = args.find_rate
        ok = best >= RATE_TARGET
        targets["rate"] = {
            "value": best,
            "floor": floor_best,
            "target": f">= {RATE_TARGET:g}",
            "met": ok,
            "searched": searched,
        }
        last = real_steps[-1]
        why = "" if last["passed"] else f" (the next step, {last['rate']:g}/s, failed: {_why(last)})"
        print(
            f"  highest passing rate {detail}{why}; the floor passed up to {floor_best:g}/s"
            f"{'' if floor_steps and not floor_steps[-1]['passed'] else ' (it was not pushed further)'};"
            f" target ≥ {RATE_TARGET:g} views/s with every route's p99 < {RATE_P99_MS:.0f} ms"
            f"  {verdict(ok).replace('met', 'OK')}"
        )
    print(f"\nmachine: {_machine_line(result['machine'])}")
    return targets


def _why(step: dict[str, Any]) -> str:
    parts = [
        f"{k} p99 {ms(step['routes'][k]['arrival_p99_ms'])} ms"
        for k in ROUTES
        if not step["routes"][k]["arrival_p99_ms"] < RATE_P99_MS
    ]
    q = step["queued"]
    if q["waited"]:
        parts.append(f"{q['waited']} arrivals found no user free")
    if step["failures"]:
        parts.append(f"{len(step['failures'])} failed checks")
    return ", ".join(parts) or "fewer views completed than offered"


def _machine_line(m: dict[str, Any]) -> str:
    load = [" / ".join(f"{a:.2f}" for a in m[k]) for k in ("loadavg_start", "loadavg_end")]
    return (
        f"{m['cpus']} CPUs ({m['cpu_model'] or 'unknown'}), server on CPU {m['server_cpu']}, client on CPU"
        f" {m['client_cpu']}; Python {m['python']}, Tornado {m['tornado']}; {m['database']}; Redis {m['redis']};"
        f" load average at start {load[0]}, at end {load[1]}; code {m['git'] or 'unknown'}"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument(
        "--archives", type=int, default=None, help=f"archives (default {ARCHIVES:,}; --quick {QUICK_ARCHIVES:,})"
    )
    p.add_argument("--no-small", dest="small", action="store_false", help=f"skip the {SMALL:,}-archive comparison")
    p.add_argument(
        "--readers", type=int, default=None, help=f"bound residents (default {READERS:,}, at most archives / 10)"
    )
    p.add_argument("--views", type=int, default=None, help="phase (a): measured views per server (default 3,000)")
    p.add_argument("--warmup-views", type=int, default=None, help="phase (a): views before measuring (default 300)")
    p.add_argument(
        "--blocks", type=int, default=None, help="phase (a): blocks the views are interleaved in (default 6)"
    )
    p.add_argument("--seconds", type=float, default=None, help="phase (b): window per rate (default 20)")
    p.add_argument("--warmup", type=float, default=None, help="phase (b): seconds before each window (default 3)")
    p.add_argument(
        "--rate", type=float, default=None, help=f"phase (b): views arriving per second (default {RATE_TARGET:g})"
    )
    p.add_argument("--find-rate", action="store_true", help="phase (b): step the rate up until a step fails")
    p.add_argument("--users", type=int, default=32, help="phase (b): simulated users at most at once (default 32)")
    p.add_argument("--healthz-every", type=float, default=0.05, help="seconds between /healthz probes (default 0.05)")
    p.add_argument("--seed", type=int, default=1, help="generator and load seed (default 1)")
    p.add_argument("--fresh", action="store_true", help="rebuild the template databases")
    p.add_argument("--build-workers", type=int, default=os.cpu_count() or 2, help="processes building the data")
    p.add_argument(
        "--pg-url",
        default=os.environ.get("DATABASE_URL_PG") or DEFAULT_PG_URL,
        help="PostgreSQL server for the templates and the copies (default: $DATABASE_URL_PG or %(default)s)",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/10",
        help="Redis for the sessions (default: $REDIS_URL or %(default)s)",
    )
    p.add_argument("--quick", action="store_true", help="a smoke run: 20,000 + 2,000 archives, short windows")
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "archives": QUICK_ARCHIVES if quick else ARCHIVES,
        "views": 300 if quick else 3000,
        "warmup_views": 50 if quick else 300,
        "blocks": 2 if quick else 6,
        "seconds": 3.0 if quick else 20.0,
        "warmup": 1.0 if quick else 3.0,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.small_archives = (QUICK_SMALL if quick else SMALL) if args.small else 0
    if args.small_archives >= args.archives:
        args.small_archives = 0
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be > 0")
    if args.archives < 100 or args.views < 1 or args.users < 1 or args.seconds <= 0:
        p.error("--archives must be >= 100; --views, --users and --seconds > 0")
    return args


def rate_plan(args: argparse.Namespace) -> list[float]:
    if args.find_rate:
        return [float(r) for r in RATE_STEPS]
    return [args.rate or RATE_TARGET]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1])
    if argv[:1] == ["--floor-child"]:
        return floor_main(argv[1])
    args = parse_args(argv)
    stamp = harness.utc_stamp()
    started = time.perf_counter()
    with harness.exits_on_failure("bench/records.py", OSError, asyncpg.PostgresError):
        admin = harness.normalised_url(args.pg_url)
        CACHE.mkdir(parents=True, exist_ok=True)
        keyring = KeyRing.from_settings(bench_settings(CACHE, url_text(admin)).security)  # makes secrets.toml once
        sizes = [args.archives] + ([args.small_archives] if args.small_archives else [])
        templates = {n: ensure_template(admin, n, args, keyring) for n in sizes}
        cpus = harness.pin_load_generator("bench/records.py")  # after the build, which uses every CPU
        machine = machine_info(server_cpu=cpus[0], client_cpu=cpus[1], tornado=tornado.version)
        machine["database"] = f"PostgreSQL {harness.server_version(admin)}"
        machine["redis"] = args.redis_url
        result: dict[str, Any] = {"sizes": {}, "failures": []}
        with tempfile.TemporaryDirectory(prefix="wb-bench-records-") as tmp:
            result["sizes"] = measure(sizes, templates, admin, args, Path(tmp), cpus)
        for label, size in result["sizes"].items():
            result["failures"] += [f"{label}: {f}" for f in size["check"]["failures"]]
            for name in ("server", "floor"):
                result["failures"] += [f"{label}: {f}" for f in size[name].pop("failures")]
    return harness.finish(result, "records", stamp, report, machine=machine, args=args, admin=admin, started=started)


if __name__ == "__main__":
    sys.exit(main())
