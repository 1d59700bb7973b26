"""孕产妇 forms (domain §2.7): 第1次产前检查, 第2～5次产前随访, 产后访视, 产后42天健康检查.

Withheld: the first visit's HIV抗体检测 and 梅毒血清学试验 are known here and never shown (the
privacy policy removes them from every payload). 家族史 3 精神疾病史 is left out of the code table
on purpose: the policy removes a 家族史 that contains it, and should it ever arrive it shows
nothing rather than the diagnosis.
"""

from __future__ import annotations

from .base import (
    ABO,
    BMI,
    DBP,
    DIPSTICK,
    FASTING_GLUCOSE,
    HEMOGLOBIN_110,
    NEGATIVE_POSITIVE,
    NORMAL_ABNORMAL,
    RH,
    SBP,
    TEMPERATURE,
    Field,
    Form,
    FormSection,
    next_due_field,
    referral_fields,
)

PAST_HISTORY = {
    "1": "无",
    "2": "心脏病",
    "3": "肾脏疾病",
    "4": "肝脏疾病",
    "5": "高血压",
    "6": "贫血",
    "7": "糖尿病",
    "8": "其他",
}
FAMILY_HISTORY = {"1": "无", "2": "遗传性疾病史", "4": "其他"}  # 3 精神疾病史: see the module docstring
PERSONAL_HISTORY = {
    "1": "无特殊",
    "2": "吸烟",
    "3": "饮酒",
    "4": "服用药物",
    "5": "接触有毒有害物质",
    "6": "接触放射线",
    "7": "其他",
}
# 第1次产前检查 保健指导: from the 第三版 form; not in the domain notes (unconfirmed).
FIRST_GUIDANCE = {
    "1": "生活方式",
    "2": "心理",
    "3": "营养",
    "4": "避免致畸因素和疾病对胚胎的不良影响",
    "5": "产前筛查宣传告知",
    "6": "其他",
}
POSTPARTUM_GUIDANCE = {
    "1": "个人卫生",
    "2": "心理",
    "3": "营养",
    "4": "母乳喂养",
    "5": "新生儿护理与喂养",
    "6": "其他",
}
CHECK42_GUIDANCE = {"1": "心理保健", "2": "性保健与避孕", "3": "婴儿喂养", "4": "产妇营养", "5": "其他"}
RECOVERED = {"1": "已恢复", "2": "未恢复"}
HANDLING = {"1": "结案", "2": "转诊"}
# 胎心率 110–160 次/分: 孕前和孕期保健指南 (中华医学会妇产科学分会, 2018).
FETAL_HEART_RATE = (110, 160)
# 空腹血糖 in early pregnancy: the adult range. The pregnancy cut-off 5.1 mmol/L belongs to the
# 24–28-week OGTT and does not diagnose at the first visit (a clinical convention, not the form's).

_BLOOD_PRESSURE = (
    Field("sbp", "收缩压", "mmHg", reference=SBP),
    Field("dbp", "舒张压", "mmHg", reference=DBP),
)
_POSTPARTUM_EXAM = FormSection(
    "产后检查",
    (
        Field("breast", "乳房", codes=NORMAL_ABNORMAL),
        Field("lochia", "恶露", codes=NORMAL_ABNORMAL),
        Field("uterus", "子宫", codes=NORMAL_ABNORMAL),
        Field("wound", "伤口", codes=NORMAL_ABNORMAL),
    ),
)


PRENATAL_FIRST = Form(
    kind="prenatal_first",
    title="第1次产前检查服务记录表",
    sections=(
        FormSection(
            "孕期情况",
            (
                Field("gestational_weeks", "孕周", "周"),
                Field("age", "孕妇年龄", "岁"),
                Field("lmp", "末次月经"),
                Field("edd", "预产期"),
            ),
        ),
        FormSection(
            "丈夫情况",
            (Field("husband_age", "丈夫年龄", "岁"),),
        ),
        FormSection(
            "孕产史",
            (
                Field("gravidity", "孕次", "次"),
                Field("parity_vaginal", "产次（阴道分娩）", "次"),
                Field("parity_cesarean", "产次（剖宫产）", "次"),
            ),
        ),
        FormSection("既往史", (Field("past_history", "既往史", codes=PAST_HISTORY),)),
        FormSection("家族史", (Field("family_history", "家族史", codes=FAMILY_HISTORY),)),
        FormSection("个人史", (Field("personal_history", "个人史", codes=PERSONAL_HISTORY),)),
        FormSection(
            "体格检查",
            (
                Field("height_cm", "身高", "cm"),
                Field("weight_kg", "体重", "kg"),
                Field("bmi", "体质指数", "kg/m²", reference=BMI),
                *_BLOOD_PRESSURE,
            ),
        ),
        FormSection(
            "辅助检查",
            (
                Field("hemoglobin", "血红蛋白", "g/L", reference=HEMOGLOBIN_110),
                Field("urine_protein", "尿蛋白", codes=DIPSTICK),
                Field("blood_abo", "血型", codes=ABO),
                Field("blood_rh", "Rh血型", codes=RH),
                Field("fasting_glucose", "血糖", "mmol/L", reference=FASTING_GLUCOSE),
                Field("hbsag", "乙型肝炎表面抗原", codes=NEGATIVE_POSITIVE),
                Field("b_ultrasound", "B超"),
            ),
        ),
        FormSection("总体评估", (Field("assessment", "总体评估", codes=NORMAL_ABNORMAL, prominent=True),)),
        FormSection("保健指导", (Field("guidance", "保健指导", codes=FIRST_GUIDANCE),)),
        FormSection("转诊", referral_fields()),
        FormSection("下次随访日期", (next_due_field(),)),
    ),
    summary_keys=("gestational_weeks", "assessment"),
    # The screening results never reach a resident; the husband's name and phone are his personal
    # data, not the archive's person's: known (not counted as unmapped), never shown.
    withheld=frozenset({"hiv_antibody", "syphilis", "husband_name", "husband_phone"}),
)

PRENATAL_FOLLOWUP = Form(
    kind="prenatal_followup",
    title="第2～5次产前随访服务记录表",
    sections=(
        FormSection("孕周", (Field("gestational_weeks", "孕周", "周"),)),
        FormSection("主诉", (Field("complaint", "主诉"),)),
        FormSection(
            "体格检查",
            (
                Field("weight_kg", "体重", "kg"),
                Field("fundal_height_cm", "宫底高度", "cm"),
                Field("abdominal_circumference_cm", "腹围", "cm"),
                Field("fetal_position", "胎位"),
                Field("fetal_heart_rate", "胎心率", "次/分", reference=FETAL_HEART_RATE),
                *_BLOOD_PRESSURE,
            ),
        ),
        FormSection(
            "辅助检查",
            (
                Field("hemoglobin", "血红蛋白", "g/L", reference=HEMOGLOBIN_110),
                Field("urine_protein", "尿蛋白", codes=DIPSTICK),
            ),
        ),
        FormSection("分类", (Field("classification", "分类", codes=NORMAL_ABNORMAL, prominent=True),)),
        FormSection("指导", (Field("guidance", "指导"),)),
        FormSection("转诊", referral_fields()),
        FormSection("下次随访日期", (next_due_field(),)),
    ),
    summary_keys=("gestational_weeks", "sbp/dbp", "classification"),
)

POSTPARTUM_VISIT = Form(
    kind="postpartum_visit",
    title="产后访视记录表",
    sections=(
        FormSection(
            "分娩情况",
            (
                Field("delivery_date", "分娩日期"),
                Field("discharge_date", "出院日期"),
                Field("delivery_mode", "分娩方式"),
                Field("delivery_institution", "分娩机构"),
            ),
        ),
        FormSection(
            "一般情况",
            (
                Field("temperature", "体温", "℃", reference=TEMPERATURE),
                Field("general_health", "一般健康情况"),
                Field("mental", "一般心理状况"),
                *_BLOOD_PRESSURE,
            ),
        ),
        _POSTPARTUM_EXAM,
        FormSection("分类", (Field("classification", "分类", codes=NORMAL_ABNORMAL, prominent=True),)),
        FormSection("指导", (Field("guidance", "指导", codes=POSTPARTUM_GUIDANCE),)),
        FormSection("转诊", referral_fields()),
        FormSection("下次随访日期", (next_due_field(),)),
    ),
    summary_keys=("classification",),
)

POSTPARTUM_42D = Form(
    kind="postpartum_42d",
    title="产后42天健康检查记录表",
    sections=(
        FormSection(
            "一般情况",
            (
                Field("general_health", "一般健康情况"),
                Field("mental", "一般心理状况"),
                *_BLOOD_PRESSURE,
            ),
        ),
        _POSTPARTUM_EXAM,
        FormSection("分类", (Field("classification", "分类", codes=RECOVERED, prominent=True),)),
        FormSection("指导", (Field("guidance", "指导", codes=CHECK42_GUIDANCE),)),
        FormSection("处理", (Field("handling", "处理", codes=HANDLING),)),
    ),
    summary_keys=("classification", "handling"),
)
