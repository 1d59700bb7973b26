"""The figures as a table for people: the columns, and CSV and XLSX files of them (the CLI's
``--format table|csv`` and the page's downloads).

Rates are fractions in the XLSX (formatted as percentages, so they sum and sort as numbers) and
written as ``91.7%`` in the CSV and the terminal. Names come from the upstream system: a text cell
that a spreadsheet would take for a formula (``= + - @``, or a tab or carriage return first) is
defused — prefixed with ``'`` in the CSV, stored as a string cell in the XLSX.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from .chart import percent
from .figures import Figures, Row

# (header, value, kind): kind "text", "int", "rate" or "hours".
COLUMNS: tuple[tuple[str, Callable[[Row], Any], str], ...] = (
    ("县代码", lambda r: r.county_code or "", "text"),
    ("机构代码", lambda r: r.institution_code or "", "text"),
    ("名称", lambda r: r.name, "text"),
    ("建档数", lambda r: r.archives, "int"),
    ("重点人群建档数", lambda r: r.key_group_archives, "int"),
    ("已开放", lambda r: r.opened, "int"),
    ("开放率", lambda r: r.open_rate, "rate"),
    ("已绑定", lambda r: r.bound, "int"),
    ("绑定率", lambda r: r.bind_rate, "rate"),
    ("查看档案的居民", lambda r: r.readers, "int"),
    ("推送已送达", lambda r: r.pushes_sent, "int"),
    ("推送已跳过", lambda r: r.pushes_skipped, "int"),
    ("推送失败", lambda r: r.pushes_dead, "int"),
    ("收到留言", lambda r: r.questions, "int"),
    ("已回复", lambda r: r.answered, "int"),
    ("回复用时中位数（小时）", lambda r: r.median_reply_hours, "hours"),
    ("扫码关注", lambda r: r.qr_follows, "int"),
)
HEADER = tuple(c[0] for c in COLUMNS)
NUMERIC = tuple(i for i, c in enumerate(COLUMNS) if c[2] != "text")

DEFINITIONS = (
    ("开放率", "已开放 ÷ 建档数"),
    ("绑定率", "已绑定 ÷ 已开放"),
    ("已开放", "“是否开放给居民”为是、档案状态正常，且所在县已打开开放开关的档案"),
    ("已绑定", "已开放的档案中，至少有一位居民用微信绑定的档案"),
    ("重点人群建档数", "0—6岁儿童、65岁及以上老年人、孕产妇、高血压和糖尿病患者的档案"),
    ("查看档案的居民", "期间内查看过本机构所建档案的微信用户（去重）；县、全市合计另行去重"),
    ("推送", "期间内送达、因未关注等原因跳过、多次重试后放弃的推送消息"),
    ("留言", "期间内收到、期间内回复的居民留言；发往全市信箱的只计入全市合计"),
    ("扫码关注", "期间内通过机构二维码关注公众号的微信用户"),
)


def defused(text: str) -> str:
    """Text a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def cell_text(value: Any, kind: str) -> str:
    """How a value reads in the terminal and the CSV."""
    if kind == "rate":
        return percent(value)
    if value is None:
        return "—"
    if kind == "hours":
        return f"{value:.1f}"
    return defused(value) if kind == "text" else str(value)


def text_rows(figures: Figures) -> list[list[str]]:
    return [[cell_text(get(row), kind) for _, get, kind in COLUMNS] for row in figures.rows]


def stock_note(figures: Figures) -> str | None:
    """What the reader must know about the stock figures' day, or None when they are today's."""
    if figures.stock_missing:
        return (
            f"{figures.period.end.isoformat()} 及以前没有每日统计快照（由推送进程每天生成），"
            "建档、开放和绑定数无法给出，显示为“—”"
        )
    if figures.stock_from_earlier_day:
        return (
            f"{figures.period.end.isoformat()} 没有每日统计快照，"
            f"建档、开放和绑定数取自此前最近的 {figures.stock_day.isoformat()} 的快照"
        )
    if figures.stock_day is not None and figures.stock_day < figures.today:
        return f"建档、开放和绑定数为 {figures.stock_day.isoformat()} 的每日统计快照（当日凌晨生成）"
    return None


def to_csv(figures: Figures, *, bom: bool = False) -> bytes:
    """A header row and one row per line of figures, UTF-8 (with a BOM for Excel when ``bom``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(text_rows(figures))
    return out.getvalue().encode("utf-8-sig" if bom else "utf-8")


def to_xlsx(figures: Figures) -> bytes:
    """Sheet 统计 (the rows, numbers as numbers) and sheet 说明 (period, stock day, definitions)."""
    book = Workbook()
    sheet = book.active
    sheet.title = "统计"
    bold = Font(bold=True)
    for col, header in enumerate(HEADER, start=1):
        sheet.cell(row=1, column=col, value=header).font = bold
    for r, row in enumerate(figures.rows, start=2):
        for c, (_, get, kind) in enumerate(COLUMNS, start=1):
            value = get(row)
            cell = sheet.cell(row=r, column=c, value=value)
            if kind == "text":
                cell.data_type = "s"  # never a formula, whatever the text starts with
            elif kind == "rate":
                cell.number_format = "0.0%"
            elif kind == "hours":
                cell.number_format = "0.0"
            if row.level != "institution":
                cell.font = bold
    sheet.freeze_panes = "D2"
    for c, header in enumerate(HEADER, start=1):
        sheet.column_dimensions[get_column_letter(c)].width = 28 if header == "名称" else max(10, len(header) * 2 + 2)

    notes = book.create_sheet("说明")
    lines = [
        ("统计期间", f"{figures.period.start.isoformat()} 至 {figures.period.end.isoformat()}（含首尾两天，北京时间）"),
        ("建档、开放、绑定数截至", figures.stock_day.isoformat() if figures.stock_day else "无快照"),
        *(("注意", note) for note in [stock_note(figures)] if note),
        *DEFINITIONS,
    ]
    for r, (key, value) in enumerate(lines, start=1):
        notes.cell(row=r, column=1, value=key).font = bold
        notes.cell(row=r, column=2, value=value).data_type = "s"
    notes.column_dimensions["A"].width = 24
    notes.column_dimensions["B"].width = 90
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def filename(figures: Figures, extension: str) -> str:
    """``stats_2026-11-01_2026-11-30.csv``: ASCII, so every browser keeps it as it is."""
    return f"stats_{figures.period.start.isoformat()}_{figures.period.end.isoformat()}.{extension}"
