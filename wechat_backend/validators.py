"""Validators for the identifiers people type or upstream systems send: pure functions, no I/O.

Each ``parse_*`` returns the normalised value or raises :class:`InvalidValue` whose message is
Chinese, says what is wrong and what to do, and never repeats the value itself (it may be an ID
number that must not reach a log).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"

_ID18 = re.compile(r"^\d{17}[\dX]$")
_ID15 = re.compile(r"^\d{15}$")
_ARCHIVE_NO = re.compile(r"^\d{17}$")
# Mainland mobile numbers: 1 followed by 3–9, eleven digits (an optional +86/86 prefix is dropped).
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class InvalidValue(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def id_check_char(first17: str) -> str:
    """GB 11643 (ISO 7064 MOD 11-2) check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def upgrade_id15(number: str) -> str:
    """A 15-digit legacy number becomes 18 digits: '19' after the region code, then the check char."""
    first17 = number[:6] + "19" + number[6:]
    return first17 + id_check_char(first17)


def _squash(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().replace(" ", "").upper()


def parse_id_number(value: str, *, today: dt.date | None = None, field: str = "id_number") -> str:
    """Normalise and check a 居民身份证号: 18 characters (15-digit numbers are upgraded), a valid
    check character, and a real birth date that is not in the future."""
    number = _squash(value or "")
    if _ID15.match(number):
        number = upgrade_id15(number)
    if not _ID18.match(number):
        raise InvalidValue(field, "身份证号应为18位（最后一位可以是X），请核对后重新输入")
    if id_check_char(number[:17]) != number[17]:
        raise InvalidValue(field, "身份证号校验位不正确，请逐位核对后重新输入")
    birth = id_birth_date(number)
    if birth is None:
        raise InvalidValue(field, "身份证号中的出生日期不存在，请核对后重新输入")
    if birth > (today or dt.date.today()):
        raise InvalidValue(field, "身份证号中的出生日期晚于今天，请核对后重新输入")
    return number


def id_birth_date(number: str) -> dt.date | None:
    try:
        return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def id_gender_code(number: str) -> str:
    """GB/T 2261.1 sex code from the sequence digit's parity: '1' male, '2' female."""
    return "1" if int(number[16]) % 2 else "2"


def parse_archive_no(value: str, *, county_code: str | None = None, field: str = "archive_no") -> str:
    """A 17-digit 健康档案编号 whose first six digits are its institution's county."""
    number = _squash(value or "")
    if not _ARCHIVE_NO.match(number):
        raise InvalidValue(field, "健康档案编号应为17位数字，请对照档案封面核对")
    if county_code is not None and number[:6] != county_code:
        raise InvalidValue(field, "健康档案编号前6位应为建档机构所在县（市、区）的行政区划代码")
    return number


def parse_mobile(value: str, *, field: str = "phone") -> str:
    """A mainland mobile number, 11 digits; spaces, dashes and a +86 prefix are dropped."""
    number = re.sub(r"[\s\-()]", "", unicodedata.normalize("NFKC", value or ""))
    if number.startswith("+86"):
        number = number[3:]
    elif number.startswith("86") and len(number) == 13:
        number = number[2:]
    if not _MOBILE.match(number):
        raise InvalidValue(field, "手机号应为11位中国大陆手机号码，请核对后重新输入")
    return number


def normalize_name(value: str) -> str:
    """Names compare after NFKC, without spaces, with one form of the middle dot (少数民族姓名)."""
    name = unicodedata.normalize("NFKC", value or "")
    name = re.sub(r"\s+", "", name)
    return re.sub(r"[·•・‧∙⋅.．]", "·", name)


def parse_name(value: str, *, field: str = "name") -> str:
    name = normalize_name(value)
    if not 1 <= len(name) <= 40:
        raise InvalidValue(field, "请填写姓名（1–40个字）")
    return name


def parse_date(value: str, *, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise InvalidValue(field, "日期格式应为 YYYY-MM-DD") from None
