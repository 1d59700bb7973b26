"""One audit row as the viewer shows it (a table row, a CSV line): pure, no I/O.

The CSV is UTF-8 with a BOM, so that Excel opens the Chinese right, and a cell a spreadsheet would
take for a formula (one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) gets
a leading apostrophe: a ``detail`` or a reason cannot run anything on the auditor's machine.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass

BOM = "\ufeff"
HEADER = ("时间", "操作者", "操作", "操作代码", "档案", "建档机构", "结果", "原因", "详情", "请求编号", "客户端 IP")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: str  # local time, Asia/Shanghai
    actor: str  # e.g. 王医生（staff:…）, 居民 identity:…, 系统（cli）
    actor_filter: str | None  # the actor filter that selects this actor's rows
    action: str  # the stored code
    action_label: str  # in Chinese where known
    archive: str | None  # the archive's public id (never its number or the person's name)
    archive_gone: bool  # the row names an archive that is no longer there
    institution: str | None  # the archive's institution
    result: str  # 成功 / 拒绝 / 失败
    reason: str  # opened when sealed; staff may see precise reasons
    detail: str  # the row's detail (ids and codes, never personal data), as key=value
    request_id: str | None
    client_ip: str | None

    def cells(self) -> tuple[str | None, ...]:
        return (
            self.at,
            self.actor,
            self.action_label,
            self.action,
            "已不存在的档案" if self.archive_gone else self.archive,
            self.institution,
            self.result,
            self.reason,
            self.detail,
            self.request_id,
            self.client_ip,
        )


def detail_text(detail: object) -> str:
    """``{"county": "371522", "opening": true}`` as ``county=371522 opening=true``."""
    if not isinstance(detail, dict):
        return "" if detail is None else json.dumps(detail, ensure_ascii=False)
    parts = []
    for key, value in detail.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(lines: Iterable[AuditLine], *, header: bool = False) -> str:
    """CSV lines (CRLF, as Excel writes them); with ``header``, the BOM and the header first."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        out.write(BOM)
        writer.writerow(HEADER)
    writer.writerows([safe_cell(v) for v in line.cells()] for line in lines)
    return out.getvalue()
