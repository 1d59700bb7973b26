"""0–6岁儿童 forms (domain §2.8): 新生儿家庭访视记录表 and the 儿童健康检查记录表 of 1岁以内,
1～2岁 and 3～6岁 (one kind, ``child_check``, for all three: the age-specific rows are simply absent
from the payload when they do not apply).
"""

from __future__ import annotations

from .base import (
    HEMOGLOBIN_110,
    NONE_SOME,
    NORMAL_ABNORMAL,
    Field,
    Form,
    FormSection,
    next_due_field,
    referral_fields,
)

MOTHER_ILLNESS = {"1": "无", "2": "糖尿病", "3": "妊娠期高血压", "4": "其他"}
BIRTH_MODE = {"1": "顺产", "2": "胎头吸引", "3": "产钳", "4": "剖宫", "5": "双多胎", "6": "臀位", "7": "其他"}
HEARING_SCREEN = {"1": "通过", "2": "未通过", "3": "未筛查", "4": "不详"}
DISEASE_SCREEN = {"1": "未进行", "2": "检查均阴性", "3": "甲低", "4": "苯丙酮尿症", "5": "其他遗传代谢病"}
FEEDING = {"1": "纯母乳", "2": "混合", "3": "人工"}
STOOL = {"1": "糊状", "2": "稀", "3": "其他"}
# 面色 of the newborn and 1岁以内 forms; the 1～2岁 form has only 1红润 2其他 (unconfirmed which the
# upstream uses after the first year: the seed writes 1 only).
COMPLEXION = {"1": "红润", "2": "黄染", "3": "其他"}
JAUNDICE = {"1": "无", "2": "面部", "3": "躯干", "4": "四肢", "5": "手足"}
UMBILICAL_CORD = {"1": "未脱", "2": "脱落", "3": "脐部有渗出", "4": "其他"}
NEWBORN_GUIDANCE = {
    "1": "喂养指导",
    "2": "发育指导",
    "3": "防病指导",
    "4": "预防伤害指导",
    "5": "口腔保健指导",
    "6": "其他",
}
# 儿童健康检查 指导: 1 is 科学喂养 on the 1–2-year forms and 合理膳食 on the 3–6-year form
# (the forms themselves; not in the domain notes, unconfirmed).
CHECK_GUIDANCE = {
    "1": "科学喂养（合理膳食）",
    "2": "生长发育",
    "3": "疾病预防",
    "4": "预防伤害",
    "5": "口腔保健",
    "6": "其他",
}
HEARING = {"1": "通过", "2": "未通过"}
ILLNESS_BETWEEN = {"1": "无", "2": "肺炎", "3": "腹泻", "4": "外伤", "5": "其他"}
GROWTH_EVAL = {"1": "正常", "2": "低体重", "3": "消瘦", "4": "生长迟缓", "5": "超重"}
# 体重/身长/头围 评价 (上 中 下) against children of the same age and sex.
CENTILE = {"上": "上（高于多数同龄儿童）", "中": "中（与多数同龄儿童相当）", "下": "下（低于多数同龄儿童）"}

# Newborn ranges, common clinical conventions rather than the form's: axillary temperature
# 36.5–37.5 ℃ (WHO, Thermal protection of the newborn, 1997); heart rate 100–160 次/分 and
# respiration 30–60 次/分 (neonatal resuscitation and paediatric teaching ranges); birth weight
# 2.5–4.0 kg (低出生体重 < 2500 g, WHO; 巨大儿 ≥ 4000 g).
NEWBORN_TEMPERATURE = (36.5, 37.5)
NEWBORN_HEART_RATE = (100, 160)
NEWBORN_RESPIRATION = (30, 60)
BIRTH_WEIGHT = (2.5, 4.0)


NEWBORN_VISIT = Form(
    kind="newborn_visit",
    title="新生儿家庭访视记录表",
    sections=(
        FormSection(
            "出生情况",
            (
                Field("gestational_weeks", "出生孕周", "周"),
                Field("mother_illness", "母亲妊娠期患病情况", codes=MOTHER_ILLNESS),
                Field("midwifery_institution", "助产机构"),
                Field("birth_mode", "出生情况", codes=BIRTH_MODE),
                Field("asphyxia", "新生儿窒息", codes=NONE_SOME),
                Field("malformation", "畸形", codes=NONE_SOME),
                Field("hearing_screen", "新生儿听力筛查", codes=HEARING_SCREEN),
                Field("disease_screen", "新生儿疾病筛查", codes=DISEASE_SCREEN),
                Field("birth_weight_kg", "出生体重", "kg", reference=BIRTH_WEIGHT),
                Field("birth_length_cm", "出生身长", "cm"),
            ),
        ),
        FormSection(
            "喂养情况",
            (
                Field("feeding", "喂养方式", codes=FEEDING),
                Field("feeds_per_day", "吃奶次数", "次/日"),
                Field("stool", "大便", codes=STOOL),
            ),
        ),
        FormSection(
            "体格检查",
            (
                Field("current_weight_kg", "目前体重", "kg"),
                Field("temperature", "体温", "℃", reference=NEWBORN_TEMPERATURE),
                Field("heart_rate", "心率", "次/分", reference=NEWBORN_HEART_RATE),
                Field("respiration", "呼吸频率", "次/分", reference=NEWBORN_RESPIRATION),
                Field("complexion", "面色", codes=COMPLEXION),
                Field("jaundice", "黄疸部位", codes=JAUNDICE),
                Field("fontanelle", "前囟"),
                Field("exam_normal", "各部位查体", codes=NORMAL_ABNORMAL),
                Field("umbilical_cord", "脐带", codes=UMBILICAL_CORD),
            ),
        ),
        FormSection("转诊", referral_fields()),
        FormSection("指导", (Field("guidance", "指导", codes=NEWBORN_GUIDANCE),)),
        FormSection(
            "下次随访",
            (Field("next_visit_place", "下次随访地点"), next_due_field()),
        ),
    ),
    summary_keys=("current_weight_kg", "feeding"),
)

CHILD_CHECK = Form(
    kind="child_check",
    title="儿童健康检查记录表",
    sections=(
        FormSection("月（年）龄", (Field("age_label", "月（年）龄"),)),
        FormSection(
            "体格测量",
            (
                Field("weight_kg", "体重", "kg"),
                Field("weight_eval", "体重评价", codes=CENTILE),
                Field("length_cm", "身长（高）", "cm"),
                Field("length_eval", "身长（高）评价", codes=CENTILE),
                Field("head_cm", "头围", "cm"),
                Field("growth_eval", "体格发育评价", codes=GROWTH_EVAL),
            ),
        ),
        FormSection(
            "体格检查",
            (
                Field("complexion", "面色", codes=COMPLEXION),
                Field("skin", "皮肤", codes=NORMAL_ABNORMAL),
                Field("fontanelle", "前囟"),
                Field("eyes", "眼外观", codes=NORMAL_ABNORMAL),
                Field("ears", "耳外观", codes=NORMAL_ABNORMAL),
                Field("hearing", "听力", codes=HEARING),
                Field("vision.left", "左眼视力"),
                Field("vision.right", "右眼视力"),
                Field("teeth", "出牙数", "颗"),
                Field("caries", "龋齿数", "颗"),
                Field("chest", "胸部", codes=NORMAL_ABNORMAL),
                Field("abdomen", "腹部", codes=NORMAL_ABNORMAL),
                Field("limbs", "四肢", codes=NORMAL_ABNORMAL),
                Field("gait", "步态", codes=NORMAL_ABNORMAL),
                Field("rickets_signs", "可疑佝偻病症状/体征"),
            ),
        ),
        FormSection("辅助检查", (Field("hemoglobin", "血红蛋白", "g/L", reference=HEMOGLOBIN_110),)),
        FormSection(
            "户外活动与维生素D",
            (
                Field("outdoor_hours", "户外活动", "小时/日"),
                Field("vitamin_d", "服用维生素D"),
            ),
        ),
        FormSection("发育评估", (Field("development", "发育评估"),)),
        FormSection("两次随访间患病情况", (Field("illness_between", "两次随访间患病情况", codes=ILLNESS_BETWEEN),)),
        FormSection("转诊", referral_fields()),
        FormSection("指导", (Field("guidance", "指导", codes=CHECK_GUIDANCE),)),
        FormSection("下次随访日期", (next_due_field(),)),
    ),
    summary_keys=("age_label", "weight_kg", "length_cm"),
)
