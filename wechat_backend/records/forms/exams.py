"""健康体检表 (domain §2.3): ``health_exam`` for adults, ``elderly_check`` for people 65+ with the
老年人生活自理能力评估 (§2.6) and the 65+ self-assessments of 一般状况.

Laboratory ranges: several differ by sex, which the payload does not carry. There the range is the
union of the two sexes' ranges, so a value is marked only when it is out of range for either sex
(a woman's haemoglobin of 120 is not marked "偏低" because a man's range starts at 130).
"""

from __future__ import annotations

from .base import (
    BLOOD_PRESSURE,
    BMI,
    COMPLIANCE,
    DIPSTICK,
    FASTING_GLUCOSE,
    HEART_RATE,
    SELF_CARE,
    TEMPERATURE,
    Field,
    Form,
    FormSection,
)

SYMPTOMS = {
    "1": "无症状",
    "2": "头痛",
    "3": "头晕",
    "4": "心悸",
    "5": "胸闷",
    "6": "胸痛",
    "7": "慢性咳嗽",
    "8": "咳痰",
    "9": "呼吸困难",
    "10": "多饮",
    "11": "多尿",
    "12": "体重下降",
    "13": "乏力",
    "14": "关节肿痛",
    "15": "视力模糊",
    "16": "手脚麻木",
    "17": "尿急",
    "18": "尿痛",
    "19": "便秘",
    "20": "腹泻",
    "21": "恶心呕吐",
    "22": "眼花",
    "23": "耳鸣",
    "24": "乳房胀痛",
    "25": "其他",
}
SELF_HEALTH = {"1": "满意", "2": "基本满意", "3": "说不清楚", "4": "不太满意", "5": "不满意"}
SCREEN = {"1": "粗筛阴性", "2": "粗筛阳性"}
EXERCISE = {"1": "每天", "2": "每周一次以上", "3": "偶尔", "4": "不锻炼"}
DIET = {"1": "荤素均衡", "2": "荤食为主", "3": "素食为主", "4": "嗜盐", "5": "嗜油", "6": "嗜糖"}
SMOKING = {"1": "从不吸烟", "2": "已戒烟", "3": "吸烟"}
DRINKING = {"1": "从不", "2": "偶尔", "3": "经常", "4": "每天"}
# 脏器功能 codes: from the 第三版 健康体检表 itself; the domain notes name the rows only (unconfirmed).
LIPS = {"1": "红润", "2": "苍白", "3": "发绀", "4": "皲裂", "5": "疱疹"}
DENTITION = {"1": "正常", "2": "缺齿", "3": "龋齿", "4": "义齿（假牙）"}
PHARYNX = {"1": "无充血", "2": "充血", "3": "淋巴滤泡增生"}
HEARING = {"1": "听见", "2": "听不清或无法听见"}
MOTOR = {"1": "可顺利完成", "2": "无法独立完成其中任何一个动作"}
NORMAL_ABNORMAL = {"1": "正常", "2": "异常"}
ASSESSMENT = {"1": "体检无异常", "2": "有异常"}
GUIDANCE = {"1": "纳入慢性病患者健康管理", "2": "建议复查", "3": "建议转诊"}
RISK_CONTROL = {
    "1": "戒烟",
    "2": "健康饮酒",
    "3": "饮食",
    "4": "锻炼",
    "5": "减体重",
    "6": "建议接种疫苗",
    "7": "其他",
}

# Reference intervals of Chinese adults, WS/T 405-2012 (血细胞分析) and WS/T 404 (临床常用生化检验项目):
# 血红蛋白 男 130–175 / 女 115–150 g/L; 白细胞 3.5–9.5 ×10⁹/L; 血小板 125–350 ×10⁹/L;
# ALT 男 9–50 / 女 7–40 U/L; AST 男 15–40 / 女 13–35 U/L; 肌酐 男 57–111 / 女 41–81 μmol/L (20–59 岁);
# 尿素 女 2.6 – 男 9.5 mmol/L over the adult age bands. Union of the sexes where they differ.
HEMOGLOBIN = (115, 175)
WBC = (3.5, 9.5)
PLATELETS = (125, 350)
ALT = (7, 50)
AST = (13, 40)
CREATININE = (41, 111)
UREA = (2.6, 9.5)
# 中国成人血脂异常防治指南 (2016 修订版) 合适水平: TC < 5.2, TG < 1.7, LDL-C < 3.4, HDL-C ≥ 1.0 mmol/L.
TOTAL_CHOLESTEROL = (None, 5.2)
TRIGLYCERIDES = (None, 1.7)
LDL = (None, 3.4)
HDL = (1.0, None)
# 呼吸 12–20 次/分 (诊断学), a common clinical convention.
RESPIRATION = (12, 20)


def _sections(elderly: bool) -> tuple[FormSection, ...]:
    general = [
        Field("temperature", "体温", "℃", reference=TEMPERATURE),
        Field("pulse", "脉率", "次/分", reference=HEART_RATE),
        Field("respiration", "呼吸频率", "次/分", reference=RESPIRATION),
        Field("bp_left", "血压（左侧）", "mmHg", reference=BLOOD_PRESSURE),
        Field("bp_right", "血压（右侧）", "mmHg", reference=BLOOD_PRESSURE),
        Field("height_cm", "身高", "cm"),
        Field("weight_kg", "体重", "kg"),
        # 腰围: central obesity from 男 ≥ 90 / 女 ≥ 85 cm (WS/T 428-2013); sex-specific, so not marked.
        Field("waist_cm", "腰围", "cm"),
        Field("bmi", "体质指数", "kg/m²", reference=BMI),
    ]
    if elderly:
        general += [
            Field("self_health", "老年人健康状态自我评估", codes=SELF_HEALTH),
            Field("self_care", "老年人生活自理能力自我评估", codes=SELF_CARE),
            Field("cognitive", "老年人认知功能", codes=SCREEN),
            Field("emotional", "老年人情感状态", codes=SCREEN),
        ]
    sections = [
        FormSection("症状", (Field("symptoms", "症状", codes=SYMPTOMS),)),
        FormSection("一般状况", tuple(general)),
        FormSection(
            "生活方式",
            (
                Field("exercise", "体育锻炼", codes=EXERCISE),
                Field("diet", "饮食习惯", codes=DIET),
                Field("smoking", "吸烟情况", codes=SMOKING),
                Field("smoking_per_day", "日吸烟量", "支"),
                Field("drinking", "饮酒频率", codes=DRINKING),
                Field("drinking_liang", "日饮酒量", "两"),
            ),
        ),
        FormSection(
            "脏器功能",
            (
                Field("oral.lips", "口唇", codes=LIPS),
                Field("oral.dentition", "齿列", codes=DENTITION),
                Field("oral.pharynx", "咽部", codes=PHARYNX),
                Field("vision.left", "左眼视力"),
                Field("vision.right", "右眼视力"),
                Field("hearing", "听力", codes=HEARING),
                Field("motor", "运动功能", codes=MOTOR),
            ),
        ),
        FormSection(
            "辅助检查",
            (
                Field("lab.hemoglobin", "血红蛋白", "g/L", reference=HEMOGLOBIN),
                Field("lab.wbc", "白细胞", "×10⁹/L", reference=WBC),
                Field("lab.platelets", "血小板", "×10⁹/L", reference=PLATELETS),
                Field("lab.urine_protein", "尿蛋白", codes=DIPSTICK),
                Field("lab.fasting_glucose", "空腹血糖", "mmol/L", reference=FASTING_GLUCOSE),
                Field("lab.ecg", "心电图", codes=NORMAL_ABNORMAL),
                Field("lab.ecg_note", "心电图异常"),
                Field("lab.alt", "血清谷丙转氨酶", "U/L", reference=ALT),
                Field("lab.ast", "血清谷草转氨酶", "U/L", reference=AST),
                Field("lab.creatinine", "血清肌酐", "μmol/L", reference=CREATININE),
                Field("lab.bun", "血尿素", "mmol/L", reference=UREA),
                Field("lab.total_cholesterol", "总胆固醇", "mmol/L", reference=TOTAL_CHOLESTEROL),
                Field("lab.triglycerides", "甘油三酯", "mmol/L", reference=TRIGLYCERIDES),
                Field("lab.ldl", "低密度脂蛋白胆固醇", "mmol/L", reference=LDL),
                Field("lab.hdl", "高密度脂蛋白胆固醇", "mmol/L", reference=HDL),
                Field("lab.b_ultrasound", "B超", codes=NORMAL_ABNORMAL),
            ),
        ),
        FormSection("现存主要健康问题", (Field("main_problems", "现存主要健康问题"),)),
        # 住院治疗情况: the seed writes an empty list; the item keys follow the form's columns.
        FormSection(
            "住院治疗情况",
            (
                Field("hospitalizations[].reason", "住院"),
                Field("hospitalizations[].admitted", "入院日期"),
                Field("hospitalizations[].discharged", "出院日期"),
                Field("hospitalizations[].institution", "医疗机构"),
                Field("hospitalizations[].record_no", "病案号"),
            ),
        ),
        FormSection(
            "主要用药情况",
            (
                Field("medications[].name", "药物"),
                Field("medications[].usage", "用法", item_prefix=""),
                Field("medications[].dose", "用量", item_prefix=""),
                Field("medications[].duration", "用药时间"),
                Field("medications[].compliance", "服药依从性", codes=COMPLIANCE),
            ),
        ),
        FormSection(
            "健康评价",
            (
                Field("assessment", "健康评价", codes=ASSESSMENT, prominent=True),
                Field("abnormalities", "异常"),
            ),
        ),
        FormSection("健康指导", (Field("guidance", "健康指导", codes=GUIDANCE),)),
        FormSection("危险因素控制", (Field("risk_control", "危险因素控制", codes=RISK_CONTROL),)),
    ]
    if elderly:
        adl = FormSection(
            "老年人生活自理能力评估",
            (
                Field("adl.eating", "进餐", "分"),
                Field("adl.grooming", "梳洗", "分"),
                Field("adl.dressing", "穿衣", "分"),
                Field("adl.toileting", "如厕", "分"),
                Field("adl.activity", "活动", "分"),
                Field("adl.total", "总评分", "分"),
                Field("adl.level", "评估结果", codes=SELF_CARE),
            ),
        )
        sections.insert(2, adl)  # right after 一般状况, whose 自理能力自我评估 it details
    return tuple(sections)


HEALTH_EXAM = Form(
    kind="health_exam",
    title="健康体检表",
    sections=_sections(elderly=False),
    summary_keys=("assessment", "abnormalities"),
)

ELDERLY_CHECK = Form(
    kind="elderly_check",
    title="健康体检表（老年人）",
    sections=_sections(elderly=True),
    summary_keys=("assessment", "abnormalities"),
)
