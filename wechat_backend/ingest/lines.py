"""One ingest line -> a typed, validated object, or :class:`LineError` with a Chinese reason.

Pure: no I/O. Cross-line checks (does the institution exist, is the archive known, does the
archive number start with the institution's county) belong to the service, which has the database.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from ..codes import ARCHIVE_STATUSES, GENDERS, PROGRAMMES, RECORD_KINDS
from ..validators import InvalidValue, parse_archive_no, parse_id_number, parse_mobile, parse_name

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}(-\d{1,6})?$")
_COUNTY = re.compile(r"^\d{6}$")


class LineError(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InstitutionLine:
    upstream_id: str
    version: int
    code: str
    name: str
    county_code: str
    county_name: str
    consult_phone: str | None
    address: str | None


@dataclass(frozen=True, slots=True)
class ArchiveLine:
    upstream_id: str
    version: int
    archive_no: str
    institution_code: str
    name: str
    id_number: str | None
    gender: str
    birth_date: str
    status: str
    open_to_resident: bool
    phone: str | None
    contact_name: str | None
    contact_phone: str | None
    address: str | None
    household_address: str | None
    completeness: int | None
    programmes: tuple[str, ...]
    family_doctor: str | None
    basic_info: dict[str, Any]
    filed_on: str | None = None  # 建档日期, YYYY-MM-DD

    def personal_fields(self) -> dict[str, Any]:
        """What goes into the row's single ciphertext."""
        return {
            "name": self.name,
            "id_number": self.id_number,
            "archive_no": self.archive_no,
            "gender": self.gender,
            "birth_date": self.birth_date,
            "phone": self.phone,
            "contact_name": self.contact_name,
            "contact_phone": self.contact_phone,
            "address": self.address,
            "household_address": self.household_address,
            "programmes": list(self.programmes),
            "family_doctor": self.family_doctor,
            "basic_info": self.basic_info,
            "filed_on": self.filed_on,
        }


@dataclass(frozen=True, slots=True)
class RecordLine:
    upstream_id: str
    version: int
    archive_upstream_id: str
    kind: str
    date: dt.date
    next_due_date: dt.date | None
    institution_code: str | None
    doctor: str | None
    diagnosis_codes: tuple[str, ...]
    payload: dict[str, Any]


Line = InstitutionLine | ArchiveLine | RecordLine


# --------------------------------------------------------------------------- field readers


def _required(obj: dict[str, Any], key: str) -> Any:
    value = obj.get(key)
    if value is None or value == "":
        raise LineError(f"缺少必填字段 {key}")
    return value


def _str(obj: dict[str, Any], key: str, *, required: bool = False, max_len: int = 200) -> str | None:
    value = _required(obj, key) if required else obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LineError(f"字段 {key} 应为字符串")
    value = value.strip()
    if len(value) > max_len:
        raise LineError(f"字段 {key} 超过 {max_len} 个字符")
    return value


def _version(obj: dict[str, Any]) -> int:
    value = _required(obj, "version")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LineError("字段 version 应为非负整数")
    return value


def _date(obj: dict[str, Any], key: str, *, required: bool, today: dt.date) -> dt.date | None:
    value = _required(obj, key) if required else obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        raise LineError(f"字段 {key} 应为 YYYY-MM-DD 格式的日期")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise LineError(f"字段 {key} 不是存在的日期") from None


def _phone(obj: dict[str, Any], key: str) -> str | None:
    value = _str(obj, key, max_len=30)
    if value is None:
        return None
    try:
        return parse_mobile(value, field=key)
    except InvalidValue:
        if _LANDLINE.match(value):
            return value
        raise LineError(f"字段 {key} 不是有效的手机号或固定电话") from None


def _object(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise LineError(f"字段 {key} 应为对象")
    return value


def _str_list(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LineError(f"字段 {key} 应为字符串列表")
    return tuple(v.strip() for v in value)


def _checked(fn: Any, value: Any, **kw: Any) -> Any:
    try:
        return fn(value, **kw)
    except InvalidValue as exc:
        raise LineError(f"字段 {exc.field}：{exc.message}") from None


# --------------------------------------------------------------------------- per type


def _institution(o: dict[str, Any], today: dt.date) -> InstitutionLine:
    county = _str(o, "county_code", required=True)
    if not _COUNTY.match(county or ""):
        raise LineError("字段 county_code 应为6位行政区划代码")
    return InstitutionLine(
        upstream_id=_str(o, "upstream_id", required=True, max_len=64),  # type: ignore[arg-type]
        version=_version(o),
        code=_str(o, "code", required=True, max_len=32),  # type: ignore[arg-type]
        name=_str(o, "name", required=True, max_len=100),  # type: ignore[arg-type]
        county_code=county,  # type: ignore[arg-type]
        county_name=_str(o, "county_name", required=True, max_len=40),  # type: ignore[arg-type]
        consult_phone=_str(o, "consult_phone", max_len=40),
        address=_str(o, "address"),
    )


def _archive(o: dict[str, Any], today: dt.date) -> ArchiveLine:
    birth = _date(o, "birth_date", required=True, today=today)
    assert birth is not None
    if birth > today:
        raise LineError("出生日期晚于今天")
    raw_id = o.get("id_number")
    id_number = None
    if raw_id not in (None, ""):
        if not isinstance(raw_id, str):
            raise LineError("字段 id_number 应为字符串")
        id_number = _checked(parse_id_number, raw_id, today=today)
        if id_number[6:14] != birth.strftime("%Y%m%d"):
            raise LineError("出生日期与身份证号不一致")
    elif (today - birth).days > 366:
        raise LineError("缺少必填字段 id_number（仅未满1岁的新生儿可暂缺）")
    gender = _str(o, "gender", required=True)
    if gender not in GENDERS:
        raise LineError("字段 gender 应为 GB/T 2261.1 性别代码（0、1、2、9）")
    status = _str(o, "status", required=True)
    if status not in ARCHIVE_STATUSES:
        raise LineError("字段 status 应为 normal、lost 或 closed")
    opened = o.get("open_to_resident")
    if not isinstance(opened, bool):
        raise LineError("缺少必填字段 open_to_resident（true 或 false）")
    completeness = o.get("completeness")
    if completeness is not None and (
        isinstance(completeness, bool) or not isinstance(completeness, int) or not 0 <= completeness <= 100
    ):
        raise LineError("字段 completeness 应为 0–100 的整数")
    filed_on = _date(o, "filed_on", required=False, today=today)
    if filed_on is not None and filed_on < birth:
        raise LineError("建档日期 filed_on 早于出生日期")
    programmes = _str_list(o, "programmes")
    unknown = sorted(set(programmes) - set(PROGRAMMES))
    if unknown:
        raise LineError(f"字段 programmes 含未知项目 {unknown[0]}")
    return ArchiveLine(
        upstream_id=_str(o, "upstream_id", required=True, max_len=64),  # type: ignore[arg-type]
        version=_version(o),
        archive_no=_checked(parse_archive_no, _required(o, "archive_no")),
        institution_code=_str(o, "institution_code", required=True, max_len=32),  # type: ignore[arg-type]
        name=_checked(parse_name, _str(o, "name", required=True)),
        id_number=id_number,
        gender=gender,  # type: ignore[arg-type]
        birth_date=birth.isoformat(),
        status=status,  # type: ignore[arg-type]
        open_to_resident=opened,
        phone=_phone(o, "phone"),
        contact_name=_str(o, "contact_name", max_len=40),
        contact_phone=_phone(o, "contact_phone"),
        address=_str(o, "address"),
        household_address=_str(o, "household_address"),
        completeness=completeness,
        programmes=tuple(sorted(set(programmes))),
        family_doctor=_str(o, "family_doctor", max_len=40),
        basic_info=_object(o, "basic_info"),
        filed_on=filed_on.isoformat() if filed_on else None,
    )


def _record(o: dict[str, Any], today: dt.date) -> RecordLine:
    kind = _str(o, "kind", required=True)
    if kind not in RECORD_KINDS:
        raise LineError(f"未知的记录类型 kind={kind}")
    date = _date(o, "date", required=True, today=today)
    assert date is not None
    if date > today:
        raise LineError("服务日期晚于今天")
    return RecordLine(
        upstream_id=_str(o, "upstream_id", required=True, max_len=64),  # type: ignore[arg-type]
        version=_version(o),
        archive_upstream_id=_str(o, "archive_upstream_id", required=True, max_len=64),  # type: ignore[arg-type]
        kind=kind,
        date=date,
        next_due_date=_date(o, "next_due_date", required=False, today=today),
        institution_code=_str(o, "institution_code", max_len=32),
        doctor=_str(o, "doctor", max_len=40),
        diagnosis_codes=_str_list(o, "diagnosis_codes"),
        payload=_object(o, "payload"),
    )


_PARSERS = {"institution": _institution, "archive": _archive, "record": _record}


def parse_object(obj: Any, today: dt.date) -> Line:
    if not isinstance(obj, dict):
        raise LineError("每行应为一个 JSON 对象")
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise LineError(f"未知的 type：{kind!r}" if kind is not None else "缺少必填字段 type")
    return parser(obj, today)


def parse_line(text: str | bytes, today: dt.date) -> Line:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise LineError("不是有效的 JSON") from None
    return parse_object(obj, today)
