"""Mismatch timing: a wrong name, a wrong phone and an unknown ID number must cost the same, so the
bind form cannot be used to learn who has an archive.

Run by ``make bench`` as ``.venv/bin/python bench/mismatch_timing.py [--tries N] [--pg-url [URL]]``.

In one process, pinned to one CPU: the real services (``build_services``) on a fresh database with
``--archives`` synthetic archives imported and every county open (as ``bench/binding.py`` prepares
it), one mini-program identity with consent given, and the limits raised as ``bench/binding.py``
raises them. Then ``BindingService.start`` is called ``--tries`` times for each kind of miss, the
three kinds interleaved in a shuffled order, each on a different archive a person may bind:

- **wrong name** — the archive's ID number and phone, another valid name;
- **wrong phone** — its name and ID number, another valid mobile number;
- **unknown ID** — a valid ID number (check digit right) that no archive has, its name and phone.

Every call must raise ``Mismatch`` (checked). The time of each is ``perf_counter`` around the
call — lookup, decryption, comparison, the audit row and its commit — with nothing sent. Reported
per kind: median, p10, p90, and the median's difference to the wrong name's, against the p10–p90
spread of the wrong name (the noise): a difference larger than that spread prints ``TELLS APART``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness
from binding import ARCHIVES, bench_settings, prepare_database, write_data
from harness import DEFAULT_PG_URL, log, percentile

from wechat_backend.binding import Caller, parse_bind_request
from wechat_backend.clock import Clock
from wechat_backend.errors import Mismatch
from wechat_backend.services import build_services
from wechat_backend.validators import id_check_char

KINDS = ("wrong name", "wrong phone", "unknown ID")
TRIES = 400


def unknown_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        first17 = f"371522{rng.randint(1950, 2000)}0{rng.randint(1, 9)}1{rng.randint(0, 9)}{rng.randint(100, 999)}"
        number = first17 + id_check_char(first17)
        if number not in taken:
            return number


async def measure(db_url: str, tmp: Path, tries: int, archives: int) -> dict[str, list[float]]:
    today = Clock().today()
    settings = bench_settings(tmp, db_url, f"wbmt{secrets.token_hex(3)}")
    counts, people = write_data(tmp / "data.jsonl", archives, 1, today)
    log(f"importing {sum(counts.values()):,} lines")
    await prepare_database(settings, tmp / "data.jsonl", counts)
    services = await build_services(settings)
    try:
        me = await services.identities.upsert("mp", f"timing-{secrets.token_hex(4)}")
        await services.consent.agree(me.id, services.consent.notice()["version"])
        caller = Caller(me.id, "timing", "127.0.0.1")
        rng = random.Random(7)
        taken = {p.id_number for p in people}
        plan = [kind for kind in KINDS for _ in range(tries)]
        rng.shuffle(plan)
        times: dict[str, list[float]] = {k: [] for k in KINDS}
        for i, kind in enumerate(plan):
            p = people[i % len(people)]
            body = p.start_body()
            if kind == "wrong name":
                body["name"] = "欧阳错名" if p.name != "欧阳错名" else "司马错名"
            elif kind == "wrong phone":
                body["phone"] = "13700000000" if p.phone != "13700000000" else "13700000001"
            else:
                body["id_number"] = unknown_id(rng, taken)
            req = parse_bind_request(body, today)
            began = time.perf_counter()
            try:
                await services.binding.start(caller, req)
            except Mismatch:
                times[kind].append(time.perf_counter() - began)
            else:
                raise harness.BenchError(f"{kind}: start did not answer mismatch")
            if (i + 1) % 300 == 0:
                log(f"{i + 1:,} of {len(plan):,} calls")
        return times
    finally:
        await services.close()


def report(times: dict[str, list[float]], backend: str) -> bool:
    base = sorted(times["wrong name"])
    noise = (percentile(base, 0.9) - percentile(base, 0.1)) / 1000
    print(f"{'miss':14s} {'calls':>6s} {'median ms':>10s} {'p10 ms':>8s} {'p90 ms':>8s} {'median - wrong name':>20s}")
    apart = False
    for kind in KINDS:
        t = sorted(times[kind])
        diff = statistics.median(t) - statistics.median(base)
        apart |= abs(diff) > noise
        print(
            f"{kind:14s} {len(t):6d} {statistics.median(t) * 1000:10.3f} {percentile(t, 0.1):8.3f} "
            f"{percentile(t, 0.9):8.3f} {diff * 1000:+19.3f}"
        )
    verdict = "TELLS APART" if apart else "within noise"
    print(f"noise (wrong name p90 - p10): {noise * 1000:.3f} ms; {verdict}; {backend}")
    return not apart


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tries", type=int, default=TRIES, help=f"calls per kind of miss (default {TRIES})")
    ap.add_argument("--archives", type=int, default=ARCHIVES, help=f"synthetic archives (default {ARCHIVES:,})")
    ap.add_argument("--pg-url", nargs="?", const=os.environ.get("DATABASE_URL_PG") or DEFAULT_PG_URL, default=None)
    args = ap.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    with tempfile.TemporaryDirectory(prefix="wb-timing-") as d:
        tmp = Path(d)
        if args.pg_url:
            with harness.fresh_database(harness.normalised_url(args.pg_url)) as url:
                times = asyncio.run(measure(url.render_as_string(hide_password=False), tmp, args.tries, args.archives))
            backend = "PostgreSQL"
        else:
            times = asyncio.run(measure(f"sqlite+aiosqlite:///{tmp}/bench.sqlite", tmp, args.tries, args.archives))
            backend = "SQLite"
    report(times, f"{backend}, {args.archives:,} archives, one process on CPU {cpus[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
