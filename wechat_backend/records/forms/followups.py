"""高血压患者随访服务记录表 and 2型糖尿病患者随访服务记录表 (domain §2.4, §2.5).

Sections in the national form's order. 随访方式 is the form's first row (随访日期 is the record's
own date); the seed's ``doctor_advice`` has no row of its own on the national form and is shown
with 此次随访分类, where the doctor's next step is decided.
"""

from __future__ import annotations

from .base import (
    BMI,
    COMPLIANCE,
    DBP,
    FASTING_GLUCOSE,
    FOLLOWUP_CLASS,
    FOLLOWUP_METHOD,
    GOOD_FAIR_POOR,
    HEART_RATE,
    NONE_SOME,
    SALT,
    SBP,
    Field,
    Form,
    FormSection,
    medication_fields,
    next_due_field,
    referral_fields,
)

HT_SYMPTOMS = {
    "1": "无症状",
    "2": "头痛头晕",
    "3": "恶心呕吐",
    "4": "眼花耳鸣",
    "5": "呼吸困难",
    "6": "心悸胸闷",
    "7": "鼻衄出血不止",
    "8": "四肢发麻",
    "9": "下肢水肿",
}
DM_SYMPTOMS = {
    "1": "无症状",
    "2": "多饮",
    "3": "多食",
    "4": "多尿",
    "5": "视力模糊",
    "6": "感染",
    "7": "手脚麻木",
    "8": "下肢浮肿",
    "9": "体重明显下降",
}
DORSAL_ARTERY = {"1": "触及正常", "2": "减弱", "3": "消失"}
HYPOGLYCEMIA = {"1": "无", "2": "偶尔", "3": "频繁"}
# 糖化血红蛋白: 4.0–6.0 % is the usual laboratory reference interval of a non-diabetic adult (a
# common clinical convention); the control target of a diabetic patient is < 7.0 %.
HBA1C = (4.0, 6.0)


def _method() -> FormSection:
    return FormSection("随访方式", (Field("method", "随访方式", codes=FOLLOWUP_METHOD),))


def _signs(*extra: Field) -> FormSection:
    return FormSection(
        "体征",
        (
            Field("sbp", "收缩压", "mmHg", reference=SBP),
            Field("dbp", "舒张压", "mmHg", reference=DBP),
            Field("weight_kg", "体重", "kg"),
            Field("target_weight_kg", "目标体重", "kg"),
            Field("bmi", "体质指数", "kg/m²", reference=BMI),
            *extra,
        ),
    )


def _lifestyle(*extra: Field) -> FormSection:
    return FormSection(
        "生活方式指导",
        (
            Field("smoking_per_day", "日吸烟量", "支"),
            Field("target_smoking_per_day", "目标日吸烟量", "支"),
            Field("drinking_liang", "日饮酒量", "两"),
            Field("exercise_per_week", "运动", "次/周"),
            Field("exercise_minutes", "每次运动", "分钟"),
            *extra,
            Field("mental_adjustment", "心理调整", codes=GOOD_FAIR_POOR),
            Field("doctor_compliance", "遵医行为", codes=GOOD_FAIR_POOR),
        ),
    )


def _tail(*before_class: FormSection) -> tuple[FormSection, ...]:
    return (
        FormSection("服药依从性", (Field("compliance", "服药依从性", codes=COMPLIANCE),)),
        FormSection("药物不良反应", (Field("adverse_reaction", "药物不良反应", codes=NONE_SOME),)),
        *before_class,
        FormSection(
            "此次随访分类",
            (
                Field("classification", "此次随访分类", codes=FOLLOWUP_CLASS, prominent=True),
                Field("doctor_advice", "医生建议"),
            ),
        ),
    )


HYPERTENSION = Form(
    kind="hypertension_followup",
    title="高血压患者随访服务记录表",
    sections=(
        _method(),
        FormSection("症状", (Field("symptoms", "症状", codes=HT_SYMPTOMS),)),
        _signs(Field("heart_rate", "心率", "次/分", reference=HEART_RATE)),
        _lifestyle(
            Field("salt", "摄盐情况", codes=SALT),
            Field("target_salt", "目标摄盐情况", codes=SALT),
        ),
        FormSection("辅助检查", (Field("auxiliary_exam", "辅助检查"),)),
        *_tail(),
        FormSection("用药情况", medication_fields()),
        FormSection("转诊", referral_fields()),
        FormSection("下次随访日期", (next_due_field(),)),
    ),
    summary_keys=("sbp/dbp", "classification"),
)

DIABETES = Form(
    kind="diabetes_followup",
    title="2型糖尿病患者随访服务记录表",
    sections=(
        _method(),
        FormSection("症状", (Field("symptoms", "症状", codes=DM_SYMPTOMS),)),
        _signs(Field("dorsal_artery", "足背动脉搏动", codes=DORSAL_ARTERY)),
        _lifestyle(Field("staple_g_per_day", "主食", "克/天")),
        FormSection(
            "辅助检查",
            (
                Field("fasting_glucose", "空腹血糖", "mmol/L", reference=FASTING_GLUCOSE),
                Field("hba1c", "糖化血红蛋白", "%", reference=HBA1C),
            ),
        ),
        *_tail(FormSection("低血糖反应", (Field("hypoglycemia", "低血糖反应", codes=HYPOGLYCEMIA),))),
        FormSection(
            "用药情况",
            (
                *medication_fields(),
                Field("insulin.type", "胰岛素种类"),
                Field("insulin.usage", "胰岛素用法和用量"),
            ),
        ),
        FormSection("转诊", referral_fields()),
        FormSection("下次随访日期", (next_due_field(),)),
    ),
    summary_keys=("fasting_glucose", "classification"),
)
