"""The shapes of a field dictionary: a form is sections of fields, each field names a payload key.

Pure data, no I/O. A payload key that no :class:`Field` names (and no form lists as ``withheld``)
is never shown to a resident: :mod:`wechat_backend.records.present` only walks the dictionary.

Paths name payload keys: ``sbp``; ``lab.hemoglobin`` for a key inside an object; and
``medications[].name`` for a key of each object in a list. Fields sharing a list prefix
(``medications[]``) are shown together, one line per list item.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

Range = tuple[float | None, float | None]
"""Inclusive (low, high) of a normal value; None for an open side."""


@dataclass(frozen=True)
class Field:
    """One payload key of a form.

    ``codes`` maps the form's code to its meaning; a multi-select value (a list, or ``"1,3"`` /
    ``"1/3"``) has each code mapped, joined with "、". A code not in the table is never shown.
    ``reference`` is the normal range; for a value given as a list of numbers (a blood pressure
    ``[收缩压, 舒张压]``) it is one range per element. ``item_prefix`` is how the value reads inside
    a list item after the item's first field ("每日" for "每日2次"); None means ``label：``.
    """

    key: str
    label: str
    unit: str = ""
    codes: Mapping[str, str] | None = None
    reference: Range | tuple[Range, ...] | None = None
    prominent: bool = False
    item_prefix: str | None = None

    @property
    def list_prefix(self) -> str | None:
        """``medications[]`` for ``medications[].name``; None for a field outside a list of objects."""
        head, sep, _ = self.key.rpartition("[].")
        return head + "[]" if sep else None


@dataclass(frozen=True)
class FormSection:
    title: str
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Form:
    """A record kind's dictionary.

    ``summary_keys`` make the one line of the record list: a key shows its meaning (coded) or
    ``label value unit``; ``"sbp/dbp"`` shows the two values as one, ``血压 152/95 mmHg``.
    ``withheld`` are keys the dictionary knows and never shows (the privacy policy removes them
    before presentation; listing them keeps them out of the import's unknown-key count).
    """

    kind: str
    title: str
    sections: tuple[FormSection, ...]
    summary_keys: tuple[str, ...] = ()
    withheld: frozenset[str] = frozenset()

    def fields(self) -> Iterator[Field]:
        for section in self.sections:
            yield from section.fields

    def field(self, key: str) -> Field | None:
        return next((f for f in self.fields() if f.key == key), None)


# The labels of paired summary keys ("sbp/dbp"); any other pair takes its first field's label.
PAIR_LABELS = {"sbp/dbp": "血压"}

# --------------------------------------------------------------------------- shared code tables
# domain/health-domain.md §2 unless a comment says otherwise.

NORMAL_ABNORMAL = {"1": "未见异常", "2": "异常"}
NONE_SOME = {"1": "无", "2": "有"}
NEGATIVE_POSITIVE = {"1": "阴性", "2": "阳性"}
GOOD_FAIR_POOR = {"1": "良好", "2": "一般", "3": "差"}
COMPLIANCE = {"1": "规律", "2": "间断", "3": "不服药"}
FOLLOWUP_METHOD = {"1": "门诊", "2": "家庭", "3": "电话"}
FOLLOWUP_CLASS = {"1": "控制满意", "2": "控制不满意", "3": "不良反应", "4": "并发症"}
ABO = {"1": "A型", "2": "B型", "3": "O型", "4": "AB型", "5": "不详"}
RH = {"1": "阴性", "2": "阳性", "3": "不详"}  # 第三版 coding (the 2011 form inverted it)
SALT = {"轻": "轻", "中": "中", "重": "重"}  # 摄盐情况 (咸淡), written as the words on the form
# Semi-quantitative dipstick results as labs write them.
DIPSTICK = {
    "-": "阴性（-）",
    "±": "弱阳性（±）",
    "+-": "弱阳性（±）",
    "+": "阳性（+）",
    "++": "阳性（++）",
    "+++": "阳性（+++）",
    "++++": "阳性（++++）",
}
SELF_CARE = {"1": "可自理（0～3分）", "2": "轻度依赖（4～8分）", "3": "中度依赖（9～18分）", "4": "不能自理（≥19分）"}

# --------------------------------------------------------------------------- shared ranges
# Adult values. The brief's anchors: 收缩压 90–139 mmHg, 舒张压 60–89 (中国高血压防治指南: ≥140/90 is
# hypertension), 空腹血糖 3.9–6.1 mmol/L (WHO/中国2型糖尿病防治指南), BMI 18.5–23.9 (WS/T 428-2013),
# 心率 60–100 次/分.
SBP: Range = (90, 139)
DBP: Range = (60, 89)
BLOOD_PRESSURE: tuple[Range, Range] = (SBP, DBP)
FASTING_GLUCOSE: Range = (3.9, 6.1)
BMI: Range = (18.5, 23.9)
HEART_RATE: Range = (60, 100)
# Axillary temperature: ≥37.3 ℃ is called fever in Chinese clinical practice; 诊断学 gives 36–37 ℃
# as normal. A common clinical convention, not a range printed on the forms.
TEMPERATURE: Range = (36.0, 37.2)
# Haemoglobin in pregnancy and in children 6–59 months: anaemia below 110 g/L (WHO 2011,
# "Haemoglobin concentrations for the diagnosis of anaemia").
HEMOGLOBIN_110: Range = (110, None)


def medication_fields(prefix: str = "medications") -> tuple[Field, ...]:
    """用药情况 of the follow-up forms: 药物名称, 每日 次, 每次 mg → "硝苯地平缓释片 每日2次 每次20mg"."""
    return (
        Field(f"{prefix}[].name", "药物"),
        Field(f"{prefix}[].times_per_day", "每日次数", "次", item_prefix="每日"),
        Field(f"{prefix}[].mg", "每次剂量", "mg", item_prefix="每次"),
    )


def referral_fields() -> tuple[Field, ...]:
    return (Field("referral.reason", "转诊原因"), Field("referral.institution", "转诊机构及科别"))


def next_due_field() -> Field:
    """下次随访日期: usually the record's own ``next_due_date`` (see ``present(next_due_date=)``)."""
    return Field("next_due_date", "下次随访日期", prominent=True)
