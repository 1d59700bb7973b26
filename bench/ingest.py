"""Import benchmark: how fast ``wechat-backend import`` is, measured against what it cannot avoid.

Run by ``make bench`` as ``.venv/bin/python bench/ingest.py [--quick] [options]``. One run prints,
for the same synthetic JSON Lines file (``wechat_backend.seed.write_jsonl``, cached under
``bench/results/data/``):

* **unavoidable work loop** — one process, no database: read each line, ``json.loads`` it, and do
  the cryptography every import must do for it, with the project's own key ring: an ``archive``
  line gets ``keyring.seal(personal fields, "archive:<upstream_id>")`` (the fields of
  ``ArchiveLine.personal_fields()``) plus its HMAC-SM3 blind indexes (``blind_index.archive_indexes``);
  a ``record`` line gets ``keyring.seal({kind, doctor, diagnosis_codes, payload},
  "record:<upstream_id>")``; an ``institution`` line is only parsed. Validation, privacy labels,
  SQL and the database are deliberately left out: this is the floor no import can go below;
* **import (PostgreSQL)** — the real command ``python -m wechat_backend import FILE`` in a child
  process against a freshly migrated database, wall time measured here. Its memory is the RSS
  summed over the import's process tree (it may run worker processes), sampled from /proc; the
  largest single process is also taken exactly from ``os.wait4`` — ``ru_maxrss``, from wait4 or
  ``RUSAGE_CHILDREN``, is a max over processes, never their sum;
* **re-import (unchanged)** — the same command on the same file again: every line is a no-op;
* **COPY, unencrypted** — asyncpg ``copy_records_to_table`` of the same lines into a plain table
  ``plain_lines(upstream_id text, type text, version bigint, body jsonb)``, from reading the file
  to the commit: what PostgreSQL alone costs for this much data;
* **peak RSS** (summed over its processes) of the import of a ``--memory-lines`` file (default
  1,000,000 lines).

Targets (from the issue): import >= 0.5 x the unavoidable-work loop; peak RSS < 300 MB on the
1,000,000-line import. A missed target is printed as MISSED but is not an error (exit 0): this is
a measurement. A failed import (exit code, row counts) is an error (exit 1).

Each measured import gets its own database ``wb_bench_<hex>``, created from ``--pg-url`` and
dropped afterwards, also on failure. Results go to stdout as a table and to
``bench/results/ingest-<UTC timestamp>.json`` and ``bench/results/ingest-latest.json``; progress
goes to stderr. Nothing personal (synthetic or not) is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import harness
from harness import DEFAULT_PG_URL, PROJECT, RESULTS, BenchError, log, verdict
from machine import machine_info
from sqlalchemy.engine import URL

from wechat_backend.blind_index import archive_indexes
from wechat_backend.config import Settings, load_settings
from wechat_backend.crypto import KeyRing
from wechat_backend.db import upgrade_url
from wechat_backend.ingest.lines import ArchiveLine, parse_line
from wechat_backend.seed import write_jsonl

DATA = RESULTS / "data"
TODAY = dt.date(2026, 11, 25)  # fixed, so a cached file stays valid (dates are checked against today)

RATIO_TARGET = 0.5
MEMORY_TARGET_MB = 300
STANDARD = {"archives": 100_000, "memory_lines": 1_000_000}
QUICK = {"archives": 5_000, "memory_lines": 50_000}

# What the loop seals: the same keys the import seals (checked against the import's own code).
ARCHIVE_FIELDS = (
    "name",
    "id_number",
    "archive_no",
    "gender",
    "birth_date",
    "phone",
    "contact_name",
    "contact_phone",
    "address",
    "household_address",
    "programmes",
    "family_doctor",
    "basic_info",
    "filed_on",
)
RECORD_FIELDS = ("kind", "doctor", "diagnosis_codes", "payload")


@dataclass
class Phase:
    name: str
    lines: int
    seconds: float
    peak_rss_mb: float | None = None  # the import's process tree: RSS summed over its processes, at its peak
    peak_pss_mb: float | None = None  # the same for PSS (shared pages counted once)
    largest_process_mb: float | None = None  # max RSS of any one process of the tree (exact, from wait4)
    processes: int | None = None  # the most processes the tree had at once
    note: str = ""
    output: str = ""  # the import command's own summary line (counts and its own timer; nothing personal)
    code: str = ""  # fingerprint of wechat_backend/ when the phase started

    @property
    def rate(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


@dataclass
class Dataset:
    path: Path
    archives: int
    seed: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def lines(self) -> int:
        return sum(self.counts.values())


def code_fingerprint() -> str:
    """A short hash of wechat_backend/*.py: tells whether phases of one run measured the same code."""
    digest = hashlib.sha256()
    for path in sorted((PROJECT / "wechat_backend").rglob("*.py")):
        digest.update(str(path.relative_to(PROJECT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


CODE_AT_START = code_fingerprint()  # what this process imported (the unavoidable loop runs on it)


# --------------------------------------------------------------------------- memory of a process tree


def _proc_kb(path: str, key: str) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError), open(path) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def _tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc/<pid>/task/*/children."""
    pids = [pid]
    for p in pids:
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                pids.extend(int(c) for c in children.read_text().split())
    return pids


class TreeMemory:
    """Samples the summed RSS and PSS of a process and its descendants every ``interval`` seconds.

    The import may run worker processes: its memory is their sum, while ``ru_maxrss`` (wait4 or
    RUSAGE_CHILDREN) only gives the largest single process. Linux /proc only; elsewhere it stays 0."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid, self.interval = pid, interval
        self.peak_rss_kb = self.peak_pss_kb = self.processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = _tree(self.pid)
            rss = sum(_proc_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
            pss = sum(_proc_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            self.processes = max(self.processes, len(pids))
            self._stop.wait(self.interval)


# --------------------------------------------------------------------------- data


def dataset(archives: int, seed: int) -> Dataset:
    """The synthetic file for (archives, seed), generated once and cached with its line counts."""
    path = DATA / f"archives-{archives}-seed-{seed}.jsonl"
    meta = path.with_suffix(".counts.json")
    if path.exists() and meta.exists():
        counts = json.loads(meta.read_text())
        log(f"using cached {path.relative_to(PROJECT)} ({sum(counts.values()):,} lines)")
        return Dataset(path, archives, seed, counts)
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    log(f"generating {archives:,} archives (seed {seed}) into {path.relative_to(PROJECT)} ...")
    started, done, step = time.perf_counter(), 0, max(archives // 10, 1)

    def progress(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if done // step != before // step or done == archives:
            log(f"  generated {done:,}/{archives:,} archives ({time.perf_counter() - started:.0f} s)")

    counts = write_jsonl(tmp, archives, seed, today=TODAY, progress=progress)
    tmp.replace(path)
    meta.write_text(json.dumps(counts))
    log(f"generated {sum(counts.values()):,} lines in {time.perf_counter() - started:.0f} s")
    return Dataset(path, archives, seed, counts)


def archives_for_lines(lines: int, sample: Dataset) -> int:
    """How many archives give at least ``lines`` lines, from the line mix of an existing file."""
    per_archive = (sample.counts["archive"] + sample.counts["record"]) / sample.counts["archive"]
    return math.ceil((lines - sample.counts["institution"]) / per_archive * 1.01)


# --------------------------------------------------------------------------- database


def migrate(url: URL) -> None:
    asyncio.run(upgrade_url(url.render_as_string(hide_password=False)))


async def _snapshot(url: URL) -> dict[str, Any]:
    """Row counts, and the newest write, of the tables the import fills."""
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        snap: dict[str, Any] = {}
        for table in ("institutions", "archives", "service_records"):
            count, newest = await conn.fetchrow(f"SELECT count(*), max(updated_at) FROM {table}")
            snap[table] = count
            snap[f"{table}_updated"] = newest
        return snap
    finally:
        await conn.close()


def snapshot(url: URL) -> dict[str, Any]:
    return asyncio.run(_snapshot(url))


# --------------------------------------------------------------------------- settings and keys


def bench_settings(data_dir: Path, db_url: URL) -> Settings:
    """Real settings in demo mode: secrets are generated once into data_dir, as the demo does."""
    return load_settings(
        environ={},
        overrides={
            "server": {"mode": "demo", "data_dir": str(data_dir)},
            "database": {"url": db_url.render_as_string(hide_password=False)},
        },
    )


def check_fields_match_import(data: Dataset) -> None:
    """The loop's hard-coded field list must be what the import seals; fail if the code moved on."""
    with data.path.open("rb") as f:
        raw = next((r for r in f if json.loads(r).get("type") == "archive"), None)
    line = parse_line(raw, TODAY) if raw is not None else None
    if not isinstance(line, ArchiveLine):
        raise BenchError(f"{data.path.name} has no valid archive line")
    if tuple(line.personal_fields()) != ARCHIVE_FIELDS:
        raise BenchError("ArchiveLine.personal_fields() changed: update ARCHIVE_FIELDS in bench/ingest.py")


# --------------------------------------------------------------------------- the phases


def unavoidable_work(data: Dataset, keyring: KeyRing) -> Phase:
    """JSON parsing plus the SM4-GCM and HMAC-SM3 calls the import makes, nothing else."""
    loads, seal = json.loads, keyring.seal
    lines = 0
    started = time.perf_counter()
    with data.path.open("rb") as f:
        for raw in f:
            obj = loads(raw)
            lines += 1
            kind = obj["type"]
            if kind == "archive":
                fields = {k: obj.get(k) for k in ARCHIVE_FIELDS}
                seal(fields, f"archive:{obj['upstream_id']}")
                archive_indexes(keyring, fields)
            elif kind == "record":
                seal({k: obj.get(k) for k in RECORD_FIELDS}, f"record:{obj['upstream_id']}")
    seconds = time.perf_counter() - started
    if lines != data.lines:
        raise BenchError(f"the loop read {lines:,} lines, the file has {data.lines:,}")
    return Phase("unavoidable work loop", lines, seconds, code=CODE_AT_START)


def child_env(data_dir: Path, db_url: URL) -> dict[str, str]:
    """The caller's environment without any other backend configuration, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_") and k != "WECHAT_BACKEND_CONFIG"}
    env.update(
        WB_SERVER_MODE="demo",
        WB_SERVER_DATA_DIR=str(data_dir),
        WB_DATABASE_URL=db_url.render_as_string(hide_password=False),
    )
    return env


def run_import(data: Dataset, data_dir: Path, db_url: URL, name: str) -> Phase:
    """``python -m wechat_backend import FILE`` as a child: wall time here; memory of its process
    tree sampled from /proc, and its largest process exactly from wait4.

    The child's progress bar goes straight to our stderr; its summary line is kept."""
    cmd = [sys.executable, "-m", "wechat_backend", "import", str(data.path)]
    code = code_fingerprint()
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=child_env(data_dir, db_url), stdout=out)
        try:
            with TreeMemory(proc.pid) as tree:
                _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - started
        proc.returncode = exit_code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        summary = out.read().decode(errors="replace").strip()
    if exit_code != 0:
        raise BenchError(f"{name}: the import exited with {exit_code}; its output:\n{summary}")
    largest = usage.ru_maxrss / 1024  # kB on Linux
    return Phase(
        name,
        data.lines,
        seconds,
        peak_rss_mb=max(tree.peak_rss_kb / 1024, largest),
        peak_pss_mb=tree.peak_pss_kb / 1024 or None,
        largest_process_mb=largest,
        processes=tree.processes or None,
        output=summary,
        code=code,
    )


def check_counts(data: Dataset, snap: dict[str, Any], name: str) -> None:
    expected = {
        "institutions": data.counts["institution"],
        "archives": data.counts["archive"],
        "service_records": data.counts["record"],
    }
    wrong = {t: (snap[t], n) for t, n in expected.items() if snap[t] != n}
    if wrong:
        details = ", ".join(f"{t}: {got:,} rows, expected {n:,}" for t, (got, n) in wrong.items())
        raise BenchError(f"{name}: wrong row counts after the import — {details}")


def check_untouched(before: dict[str, Any], after: dict[str, Any]) -> None:
    changed = [k for k in before if after[k] != before[k]]
    if changed:
        raise BenchError(f"re-import of an unchanged file changed the database ({', '.join(changed)})")


async def _copy(data: Dataset, url: URL) -> Phase:
    conn = await asyncpg.connect(harness.dsn(url))
    try:
        await conn.execute("CREATE TABLE plain_lines (upstream_id text, type text, version bigint, body jsonb)")
        loads = json.loads

        def rows() -> Iterator[tuple[str, str, int, str]]:
            with data.path.open("rb") as f:
                for raw in f:
                    obj = loads(raw)
                    yield obj["upstream_id"], obj["type"], obj["version"], raw.decode()

        started = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("plain_lines", records=rows())
        seconds = time.perf_counter() - started
        copied = await conn.fetchval("SELECT count(*) FROM plain_lines")
    finally:
        await conn.close()
    if copied != data.lines:
        raise BenchError(f"COPY stored {copied:,} rows, the file has {data.lines:,}")
    return Phase("COPY, unencrypted", data.lines, seconds, note="body jsonb: PostgreSQL parses every line")


def copy_baseline(data: Dataset, url: URL) -> Phase:
    return asyncio.run(_copy(data, url))


# --------------------------------------------------------------------------- the run


def measure_main(data: Dataset, admin: URL, data_dir: Path) -> list[Phase]:
    phases: list[Phase] = []
    with harness.fresh_database(admin) as db:
        keyring = KeyRing.from_settings(bench_settings(data_dir, db).security)
        check_fields_match_import(data)
        log(f"unavoidable work loop over {data.lines:,} lines ...")
        phases.append(unavoidable_work(data, keyring))
        log(f"  {phases[-1].rate:,.0f} lines/s")
        migrate(db)
        log(f"import into fresh database {db.database} ...")
        phases.append(run_import(data, data_dir, db, "import (PostgreSQL)"))
        first = snapshot(db)
        check_counts(data, first, "import")
        log(f"  {phases[-1].rate:,.0f} lines/s")
        log("re-import of the same file (every line unchanged) ...")
        phases.append(run_import(data, data_dir, db, "re-import (unchanged)"))
        check_untouched(first, snapshot(db))
        log(f"  {phases[-1].rate:,.0f} lines/s")
    with harness.fresh_database(admin) as db:
        log(f"COPY into an unencrypted table in {db.database} ...")
        phases.append(copy_baseline(data, db))
        log(f"  {phases[-1].rate:,.0f} lines/s")
    return phases


def measure_memory(lines: int, sample: Dataset, admin: URL, data_dir: Path) -> Phase:
    data = dataset(archives_for_lines(lines, sample), sample.seed)
    with harness.fresh_database(admin) as db:
        migrate(db)
        log(f"memory: import of {data.lines:,} lines into {db.database} (takes a few minutes) ...")
        phase = run_import(data, data_dir, db, f"import of {data.lines:,} lines")
        check_counts(data, snapshot(db), "memory import")
    log(f"  peak RSS {phase.peak_rss_mb:.0f} MB, {phase.rate:,.0f} lines/s")
    return phase


def ingest_machine_info(admin: URL) -> dict[str, Any]:
    from cryptography.hazmat.backends.openssl.backend import backend

    return machine_info(openssl=backend.openssl_version_text(), postgresql=harness.server_version(admin))


# --------------------------------------------------------------------------- output


def report(phases: list[Phase], memory: Phase | None, memory_lines: int, machine: dict[str, Any]) -> dict[str, Any]:
    floor = phases[0].rate
    import_phase = phases[1]
    ratio = import_phase.rate / floor
    ratio_ok = ratio >= RATIO_TARGET
    print(f"{'phase':<26}{'lines':>11}{'seconds':>10}{'lines/s':>10}{'ratio':>8}{'peak RSS':>10}")
    for p in phases:
        rss = f"{p.peak_rss_mb:.0f} MB" if p.peak_rss_mb is not None else "-"
        extra = ""
        if p is import_phase:
            extra = f"   target >= {RATIO_TARGET:.2f}  {verdict(ratio_ok)}"
        elif p.note:
            extra = f"   ({p.note})"
        print(f"{p.name:<26}{p.lines:>11,}{p.seconds:>10.1f}{p.rate:>10,.0f}{p.rate / floor:>8.2f}{rss:>10}{extra}")
    memory_ok = None
    if memory is not None:
        memory_ok = memory.peak_rss_mb < MEMORY_TARGET_MB
        short = "" if memory.lines >= memory_lines else f" (asked for {memory_lines:,})"
        pss = f"{memory.peak_pss_mb:.0f} MB" if memory.peak_pss_mb else "n/a"
        print(
            f"peak RSS, {memory.lines:,}-line import{short}: {memory.peak_rss_mb:.0f} MB"
            f" (target < {MEMORY_TARGET_MB} MB)  {verdict(memory_ok)}"
        )
        print(
            f"  summed over {memory.processes or 1} processes; PSS {pss};"
            f" largest process {memory.largest_process_mb:.0f} MB; {memory.seconds:.0f} s, {memory.rate:,.0f} lines/s"
        )
    else:
        print("peak RSS check skipped (--memory-lines 0)")
    codes = {p.name: p.code for p in [*phases, *([memory] if memory else [])] if p.code}
    if len(set(codes.values())) > 1:
        print(
            "WARNING: wechat_backend/ changed during the run, phases measured different code: "
            + ", ".join(f"{name} {code}" for name, code in codes.items())
        )
    print("peak RSS = RSS summed over the import's processes (sampled every 0.2 s)")
    print("ratio = lines/s / lines/s of the unavoidable work loop (same file, same run)")
    print(f"import settings: {', '.join(f'{k}={v}' for k, v in machine['ingest_settings'].items())}")
    print(
        f"machine: {machine['cpus']} CPUs ({machine['cpu_model'] or 'unknown model'}), Python {machine['python']},"
        f" PostgreSQL {machine['postgresql']}, {machine['openssl']}"
    )
    load = [" / ".join(f"{a:.1f}" for a in machine[k]) for k in ("loadavg_start", "loadavg_end")]
    print(f"load average (1/5/15 min) at start {load[0]}, at end {load[1]}; code: {machine['git'] or 'unknown'}")
    return {
        "phases": [asdict(p) | {"lines_per_second": p.rate, "ratio": p.rate / floor} for p in phases],
        "targets": {
            "import_ratio": {"value": ratio, "target": f">= {RATIO_TARGET}", "met": ratio_ok},
            "peak_rss_mb": None
            if memory is None
            else {"value": memory.peak_rss_mb, "target": f"< {MEMORY_TARGET_MB}", "met": memory_ok},
        },
        "memory_import": None if memory is None else asdict(memory) | {"lines_per_second": memory.rate},
        "machine": machine,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--archives", type=int, help=f"archives in the file (default {STANDARD['archives']:,})")
    p.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    p.add_argument(
        "--memory-lines",
        type=int,
        help=f"lines of the peak-RSS import (default {STANDARD['memory_lines']:,}; 0 skips it)",
    )
    p.add_argument(
        "--pg-url",
        default=os.environ.get("DATABASE_URL_PG") or DEFAULT_PG_URL,
        help="PostgreSQL server to create wb_bench_* databases on (default: $DATABASE_URL_PG or %(default)s)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: {QUICK['archives']:,} archives, memory check on {QUICK['memory_lines']:,} lines",
    )
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else STANDARD
    args.archives = defaults["archives"] if args.archives is None else args.archives
    args.memory_lines = defaults["memory_lines"] if args.memory_lines is None else args.memory_lines
    if args.archives < 1 or args.memory_lines < 0:
        p.error("--archives must be >= 1 and --memory-lines >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with harness.exits_on_failure("bench/ingest.py", OSError, asyncpg.PostgresError):
        admin = harness.normalised_url(args.pg_url)
        machine = ingest_machine_info(admin)
        data = dataset(args.archives, args.seed)
        with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
            data_dir = Path(tmp)
            ingest_settings = asdict(bench_settings(data_dir, admin).ingest)  # what the child reads too
            phases = measure_main(data, admin, data_dir)
            memory = measure_memory(args.memory_lines, data, admin, data_dir) if args.memory_lines else None
    machine["loadavg_end"] = os.getloadavg()
    machine["ingest_settings"] = ingest_settings
    result = report(phases, memory, args.memory_lines, machine)
    result["options"] = {
        "archives": args.archives,
        "seed": args.seed,
        "memory_lines": args.memory_lines,
        "quick": args.quick,
        "pg_url": admin.render_as_string(hide_password=True),
        "file": str(data.path.relative_to(PROJECT)),
        "line_counts": data.counts,
    }
    print(f"results: {harness.save(result, 'ingest', harness.utc_stamp()).relative_to(PROJECT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
