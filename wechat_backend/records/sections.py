"""The sections of an archive as a resident reads it, and which record kinds each one shows.

Pure data. A record kind not listed here (``severe_mental_followup``, ``tuberculosis_followup``) is
imported and never shown to a resident: it has no section, so no route can list it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    kinds: tuple[str, ...]  # record kinds shown in this section; () for the basic-information form


SECTIONS: tuple[Section, ...] = (
    Section("basic", "个人基本信息", ()),
    Section("exam", "健康体检", ("health_exam", "elderly_check")),
    Section("hypertension", "高血压随访", ("hypertension_followup",)),
    Section("diabetes", "2型糖尿病随访", ("diabetes_followup",)),
    Section("maternal", "孕产妇", ("prenatal_first", "prenatal_followup", "postpartum_visit", "postpartum_42d")),
    Section("child", "儿童", ("newborn_visit", "child_check")),
    Section("tcm", "中医体质辨识", ("tcm_constitution",)),
    Section("outpatient", "门诊病历", ("outpatient",)),
)

BY_KEY = {s.key: s for s in SECTIONS}
SECTION_OF_KIND = {kind: s for s in SECTIONS for kind in s.kinds}
RESIDENT_KINDS = frozenset(SECTION_OF_KIND)
"""Every record kind a resident may ever be shown (still only when its label is ``N``)."""

KIND_TITLES = {
    "health_exam": "健康体检",
    "elderly_check": "老年人健康体检",
    "hypertension_followup": "高血压患者随访",
    "diabetes_followup": "2型糖尿病患者随访",
    "prenatal_first": "第1次产前检查",
    "prenatal_followup": "产前随访",
    "postpartum_visit": "产后访视",
    "postpartum_42d": "产后42天健康检查",
    "newborn_visit": "新生儿家庭访视",
    "child_check": "儿童健康检查",
    "tcm_constitution": "中医体质辨识",
    "outpatient": "门诊病历",
}
