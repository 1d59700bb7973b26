"""The audit viewer's filters and labels: pure, no I/O.

Filters travel in the query string (``archive`` as the archive's public id, ``actor``, ``action``,
``from``, ``to``, ``before``), so a page can be bookmarked and the CSV link carries the same ones.
A 健康档案编号 is personal data and never travels there: it is typed into the form, posted, and
turned into the archive's public id before the redirect (``service.AuditViewer.submit``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from ..clock import LOCAL_ZONE
from ..errors import BadInput

PER_PAGE = 100

# What the audit log's actions mean, in the words of the people who read it. An action not here
# is shown as it is stored (a part added later names its own actions; add them here).
# fmt: off
ACTION_LABELS: dict[str, str] = {
    "archive_list":         "居民查看档案列表",
    "archive_read":         "居民查看档案",
    "bind_start":           "居民发起绑定",
    "bind_code":            "发送绑定验证码",
    "bind_resend":          "重发绑定验证码",
    "bind_verify":          "居民校验验证码",
    "bind":                 "绑定档案",
    "unbind":               "解除绑定",
    "bindings_read":        "查看档案的绑定人",
    "binding_note":         "修改绑定备注",
    "consent":              "同意隐私说明",
    "notify_settings":      "修改提醒设置",
    "county_set":           "修改县开放设置",
    "county_set_all":       "修改全部县开放设置",
    "staff_add":            "添加工作人员",
    "staff_disable":        "停用工作人员",
    "staff_archive_lookup": "工作人员查找档案",
    "staff_archive_view":   "工作人员查看档案",
    "archive_open_set":     "工作人员开放或关闭档案",
    "archive_bulk_open":    "工作人员批量开放档案",
    "audit_view":           "查看审计日志",
    "audit_export":         "导出审计日志",
}
RESULT_LABELS = {"ok": "成功", "denied": "拒绝", "failed": "失败"}
REASON_LABELS: dict[str, str] = {
    "bad_input":            "填写的内容有误",
    "rate_limited":         "操作过于频繁",
    "daily_cap":            "短信额度已用完",
    "unavailable":          "依赖的服务不可用",
    "unknown_bind_id":      "绑定编号不属于本人",
    "not_found":            "对象不存在或不在权限内",
    "not_bound":            "未绑定该档案",
    "not_owner":            "不是档案本人",
    "wrong_code":           "验证码错误",
    "expired":              "验证码已过期",
    "locked":               "验证码错误次数过多",
    "used_up":              "验证码已用完",
    "consent_required":     "未同意隐私说明",
    "identity_full":        "绑定的档案数已达上限",
    "minor_needs_guardian": "未成年人须由监护人绑定",
    "not_opened":           "档案未开放给居民",
    "county_closed":        "所在县未开放",
    "status_closed":        "档案已结案",
    "status_lost":          "档案为失访状态",
    "not_key_population":   "非重点人群（当前只对重点人群开放）",
    "sensitive_programme":  "属于不对居民开放的管理项目",
    "unknown_identifier":   "证件号或档案编号无对应档案",
    "name_mismatch":        "姓名不符",
    "phone_mismatch":       "手机号不符",
    "already_bound":        "已绑定过",
    "archive_full":         "该档案绑定人数已达上限",
}
# fmt: on

_PUBLIC_ID = re.compile(r"^[A-Za-z0-9_-]{8,32}$")
_ACTOR = re.compile(r"^(?:(staff|identity):([A-Za-z0-9_-]{8,32})|system(?::([A-Za-z0-9_.-]{1,40}))?)$")
_ACTION = re.compile(r"^[a-z_]{1,40}$")
_DIGITS17 = re.compile(r"^\d{17}$")


@dataclass(frozen=True)
class Actor:
    """Who a filter asks for: ``kind`` staff / identity / system and, but for all of system, an id."""

    kind: str
    id: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind


@dataclass(frozen=True)
class AuditFilters:
    archive: str | None = None  # an archive's public id
    actor: Actor | None = None
    action: str | None = None
    date_from: dt.date | None = None  # local dates (Asia/Shanghai), both days included
    date_to: dt.date | None = None
    before: int | None = None  # keyset: rows with a smaller id (the next page)

    def query(self, **over: Any) -> str:
        """The query string (with ``?``, or empty) of these filters, ``over`` replacing some."""
        values = {
            "archive": self.archive,
            "actor": str(self.actor) if self.actor else None,
            "action": self.action,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "before": self.before,
        } | over
        kept = {k: v for k, v in values.items() if v is not None and v != ""}
        return "?" + urlencode(kept) if kept else ""

    def detail(self) -> dict[str, Any]:
        """What the viewer's own audit row keeps of the filters: no archive (its id has a column of
        its own), nothing typed that could be personal data."""
        out: dict[str, Any] = {}
        if self.actor:
            out["actor"] = str(self.actor)
        if self.action:
            out["action"] = self.action
        if self.date_from:
            out["from"] = self.date_from.isoformat()
        if self.date_to:
            out["to"] = self.date_to.isoformat()
        if self.before:
            out["before"] = self.before
        return out

    def utc_range(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        """[start, end) in UTC of the local days asked for."""
        start = _local_midnight(self.date_from) if self.date_from else None
        end = _local_midnight(self.date_to + dt.timedelta(days=1)) if self.date_to else None
        return start, end


def _local_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), LOCAL_ZONE).astimezone(dt.UTC)


def looks_like_archive_no(value: str) -> bool:
    """A 17-digit 健康档案编号 (as opposed to an archive's public id)."""
    return bool(_DIGITS17.match("".join((value or "").split())))


def parse_filters(args: Mapping[str, str]) -> AuditFilters:
    """The filters of a query string (first value of each). Bad values → :class:`BadInput` with a
    message that says what to type."""
    archive = (args.get("archive") or "").strip() or None
    if archive is not None and looks_like_archive_no(archive):
        # Typed into a link by hand: not accepted, so that no archive number sits in a URL or a log.
        raise BadInput("archive", "请在筛选表单的“档案”一栏填写健康档案编号，再点“查询”")
    if archive is not None and not _PUBLIC_ID.match(archive):
        raise BadInput("archive", "“档案”一栏请填写17位健康档案编号，或从审计记录中复制的档案 ID")
    return AuditFilters(
        archive=archive,
        actor=parse_actor(args.get("actor") or ""),
        action=_action(args.get("action") or ""),
        date_from=_date(args.get("from") or "", "from", "开始日期"),
        date_to=_checked_range(args),
        before=_before(args.get("before") or ""),
    )


def parse_actor(value: str) -> Actor | None:
    value = value.strip()
    if not value:
        return None
    m = _ACTOR.match(value)
    if m is None:
        raise BadInput("actor", "操作者请写成 staff:编号、identity:编号 或 system（可从审计记录中复制）")
    if m[1]:
        return Actor(m[1], m[2])
    return Actor("system", m[3])


def _action(value: str) -> str | None:
    value = value.strip()
    if value and not _ACTION.match(value):
        raise BadInput("action", "请从列表中选择操作类型")
    return value or None


def _date(value: str, field: str, label: str) -> dt.date | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise BadInput(field, f"{label}请写成 年-月-日，例如 2026-11-25") from None
    if not 2000 <= day.year <= 2100:  # and no overflow turning a far date into UTC times
        raise BadInput(field, f"{label}超出范围（2000 年至 2100 年）")
    return day


def _checked_range(args: Mapping[str, str]) -> dt.date | None:
    start = _date(args.get("from") or "", "from", "开始日期")
    end = _date(args.get("to") or "", "to", "结束日期")
    if start and end and start > end:
        raise BadInput("to", "开始日期不能晚于结束日期")
    return end


def _before(value: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadInput("before", "翻页参数有误，请回到第一页")
    return int(value)


def local_time(at: dt.datetime) -> str:
    return at.astimezone(LOCAL_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def reason_label(reason: str | None) -> str:
    """A reason with its meaning: ``验证码错误（wrong_code）``; one not known, as it is."""
    if not reason:
        return ""
    label = REASON_LABELS.get(reason)
    return f"{label}（{reason}）" if label else reason
