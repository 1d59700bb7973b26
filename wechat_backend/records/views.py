"""The shapes a resident reads: the cover, the basic fields, record list items, the next due
items, access-log lines and page cursors. Pure functions over what the service has opened."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..binding.rules import RELATION_LABELS
from ..config import PrivacySettings
from ..errors import BadInput
from ..privacy import Label, age_on, mask_address, mask_id_number, mask_name, mask_phone, redact_basic_info
from .present import present, present_basic
from .sections import KIND_TITLES, SECTION_OF_KIND, SECTIONS

# A reader in the access log, named from the archive's person's side: whoever bound it as their
# child is a parent of this person, and so on. Identities carry no name.
READER_LABELS = {"self": "本人", "child": "父母", "parent": "子女", "spouse": "配偶", "other": "其他家人"}
# Programmes a resident may see named on the cover (never a sensitive one: those hide the archive).
KEY_GROUP_TAGS = {"hypertension": "高血压", "diabetes": "2型糖尿病", "maternal": "孕产妇", "child": "儿童"}


@dataclass(frozen=True)
class Record:
    """A record a resident may read: its kind has a section and its label is ``N``."""

    pk: int
    id: str
    kind: str
    date: dt.date
    next_due_date: dt.date | None
    institution: str
    doctor: str
    payload: dict[str, Any]

    @property
    def title(self) -> str:
        return KIND_TITLES[self.kind]


def cover(
    row: Any, fields: Mapping[str, Any], today: dt.date, records: list[Record], note: str, policy: PrivacySettings
) -> dict[str, Any]:
    """The cover of a visible archive: who, where, what is due, and which sections have something."""
    birth = dt.date.fromisoformat(fields["birth_date"])
    counts: dict[str, int] = {}
    for r in records:
        key = SECTION_OF_KIND[r.kind].key
        counts[key] = counts.get(key, 0) + 1
    if basic_fields(fields, today, policy):
        counts["basic"] = 1
    age = age_on(birth, today)
    tags = [label for p, label in KEY_GROUP_TAGS.items() if p in (fields.get("programmes") or ())]
    if age >= 65:
        tags.insert(0, "老年人")
    return {
        "id": row.public_id,
        "name": mask_name(fields.get("name"), policy),
        "note": note,
        "gender": gender(fields.get("gender")),
        "age": age,
        "relation": row.relation,
        "relation_label": RELATION_LABELS.get(row.relation, "家人"),
        "institution": row.institution or "",
        "consult_phone": row.consult_phone or "",
        "doctor": fields.get("family_doctor") or "",
        "filed_on": fields.get("filed_on"),
        "tags": tags,
        "completeness": row.completeness,
        "next_due": next_due(records, today),
        "sections": [{"key": s.key, "title": s.title, "count": counts[s.key]} for s in SECTIONS if counts.get(s.key)],
    }


def basic_fields(fields: Mapping[str, Any], today: dt.date, policy: PrivacySettings) -> list[dict[str, str]]:
    """The 个人基本信息 a resident sees: masked identity fields, then the form's known fields."""
    f = fields
    own = [
        ("姓名", mask_name(f.get("name"), policy)),
        ("性别", gender(f.get("gender"))),
        ("年龄", f"{age_on(dt.date.fromisoformat(f['birth_date']), today)}岁"),
        ("身份证号", mask_id_number(f.get("id_number"), policy) if f.get("id_number") else ""),
        ("本人电话", mask_phone(f.get("phone"), policy) if f.get("phone") else ""),
        ("联系人", mask_name(f.get("contact_name"), policy) if f.get("contact_name") else ""),
        ("联系人电话", mask_phone(f.get("contact_phone"), policy) if f.get("contact_phone") else ""),
        ("现住址", mask_address(f.get("address"), policy) if f.get("address") else ""),
        ("户籍地址", mask_address(f.get("household_address"), policy) if f.get("household_address") else ""),
        ("责任医生", f.get("family_doctor") or ""),
        ("建档日期", f.get("filed_on") or ""),
    ]
    out = [{"label": label, "value": value} for label, value in own if value]
    form = present_basic(redact_basic_info(f.get("basic_info"), policy))
    out += [{"label": x["label"], "value": x["text"]} for sec in form.sections for x in sec["fields"]]
    return out


def opaque(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 24 and value.replace("-", "").replace("_", "").isalnum()


def is_normal(label: object) -> bool:
    """Only an ``N`` label reaches a resident; anything unreadable fails closed."""
    try:
        return Label.from_json(label).is_normal  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError):
        return False


def gender(code: object) -> str:
    return {"1": "男", "2": "女"}.get(str(code), "未说明")


def list_item(r: Record) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "title": r.title,
        "date": r.date.isoformat(),
        "institution": r.institution,
        "summary": present(r.kind, r.payload).summary,
        "next_due_date": r.next_due_date.isoformat() if r.next_due_date else None,
    }


# A due date further back than this is history (a newborn visit of a child now four), not a task.
OVERDUE_SHOWN = dt.timedelta(days=90)


def next_due(records: list[Record], today: dt.date) -> list[dict[str, Any]]:
    """Per kind, the next due date its newest record gives, soonest first: upcoming ones, and those
    overdue by less than :data:`OVERDUE_SHOWN` (marked)."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:  # newest first: the first of each kind is its latest
        if r.kind in seen:
            continue
        seen[r.kind] = {}
        if r.next_due_date is not None and r.next_due_date >= today - OVERDUE_SHOWN:
            seen[r.kind] = {
                "kind": r.kind,
                "title": r.title,
                "date": r.next_due_date.isoformat(),
                "overdue": r.next_due_date < today,
            }
    return sorted((v for v in seen.values() if v), key=lambda v: v["date"])


def cursor_of(r: Record) -> str:
    return base64.urlsafe_b64encode(f"{r.date.isoformat()}|{r.id}".encode()).decode().rstrip("=")


def read_cursor(cursor: str) -> tuple[dt.date, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        day, _, record_id = raw.partition("|")
        return dt.date.fromisoformat(day), record_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadInput("cursor", "翻页参数无效，请从第一页重新查看") from None


def access_entry(read: Any, relations: Mapping[int, str], institution_code: str) -> dict[str, Any]:
    """One line of the access log. A family member is named by relation only; staff by whether
    they work at the archive's own institution. A read of anything a resident may not see (a
    section not in :data:`SECTION_TITLES`) is a plain "工作人员查阅档案": the log itself never
    hints at a sensitive programme."""
    at = read.at.isoformat()
    detail = read.detail or {}
    section = detail.get("section", "")
    if read.actor_type == "identity":
        relation = relations.get(int(read.actor_id)) if str(read.actor_id).isdigit() else None
        return {
            "at": at,
            "actor": READER_LABELS.get(relation or "", "曾绑定的家人"),
            "section": SECTION_TITLES.get(section, "档案"),
        }
    if section not in SECTION_TITLES:
        return {"at": at, "actor": "工作人员", "section": "工作人员查阅档案"}
    own = detail.get("institution_code") == institution_code
    if detail.get("role") in ("county", "city"):
        actor = "卫生健康行政部门工作人员"
    else:
        actor = "建档机构工作人员" if own else "其他医疗卫生机构工作人员"
    return {
        "at": at,
        "actor": actor,
        "section": SECTION_TITLES[section],
    }


SECTION_TITLES = {
    **{s.key: s.title for s in SECTIONS},
    "cover": "档案首页",
    "records": "服务记录",
    "trends": "变化趋势",
    "access_log": "查阅记录",
    "home": "我的档案",
}
