"""``wechat-backend stats [--county C] [--from D] [--to D] [--format table|csv|json]``.

stdout holds the figures alone (``csv`` and ``json`` are meant for pipes); a note about the stock
figures' day goes to stderr. ``--county`` gives that county's institutions and its total, without
the city's total (which would be that county again). ``json`` is a list of rows with exactly the
keys of ``figures.JSON_KEYS``. Every run is audited as ``stats_export`` by ``system``/``cli``.
Exit 0; 2 when it could not run (bad dates, unknown county, no database).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..cli_table import table
from ..config import Settings
from ..errors import AppError
from .export import HEADER, NUMERIC, stock_note, text_rows, to_csv
from .figures import Figures, Scope, StatsService, Viewer
from .period import parse_period


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from ..__main__ import CommandError, _require_schema
    from ..services import build_services

    services = await build_services(settings, with_redis=False)
    try:
        await _require_schema(services)
        stats = StatsService(services.sessions, services.clock)
        try:
            period = parse_period(args.date_from, args.date_to, stats.today)
            scope = Scope(county=(args.county or "").strip() or None)
            figures = await stats.figures(scope, period, Viewer("system", "cli"), export=args.format)
        except AppError as exc:
            raise CommandError(exc.message) from None
    finally:
        await services.close()
    note = stock_note(figures)
    if note:
        print(f"注意：{note}", file=sys.stderr)
    print(render(figures, args.format), end="")
    return 0


def render(figures: Figures, fmt: str) -> str:
    if fmt == "json":
        return json.dumps([row.as_json() for row in figures.rows], ensure_ascii=False, indent=2) + "\n"
    if fmt == "csv":
        return to_csv(figures).decode("utf-8")
    period = f"统计期间 {figures.period.start.isoformat()} 至 {figures.period.end.isoformat()}"
    if not figures.rows:
        return f"{period}：没有机构（请先导入机构和档案）\n"
    return f"{period}\n{table(HEADER, text_rows(figures), right=NUMERIC)}\n"
