"""接诊记录表 (门诊, domain §2.1): the national form's four parts — 就诊者的主观资料, 客观资料, 评估 and
处置计划 — after the department seen.
"""

from __future__ import annotations

from .base import Field, Form, FormSection

OUTPATIENT = Form(
    kind="outpatient",
    title="接诊记录表",
    sections=(
        FormSection("就诊科室", (Field("department", "就诊科室"),)),
        FormSection("主观资料", (Field("chief_complaint", "主诉"),)),
        FormSection("客观资料", (Field("exam", "查体"),)),
        FormSection("评估", (Field("diagnosis", "诊断"),)),
        FormSection("处置计划", (Field("treatment", "处理"),)),
    ),
    summary_keys=("department", "diagnosis"),
)
