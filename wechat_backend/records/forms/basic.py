"""个人基本信息表 (domain §2.2): the archive's ``basic_info`` object, keys as ``seed/basic_info.py``
writes them. 姓名, 性别, 出生日期, 身份证号 and the phones are archive fields, masked by the records
service; this dictionary covers the rest of the form.

The sensitive codes — 既往史 and 家族史 8 严重精神障碍 and 9 结核病, 残疾情况 7 精神残疾 — are left out
of the code tables on purpose: ``privacy.redact_basic_info`` removes those entries before
presentation, and should one ever arrive it shows nothing rather than the diagnosis.
"""

from __future__ import annotations

from .base import ABO, NONE_SOME, RH, Field, Form, FormSection

RESIDENT_TYPE = {"1": "户籍", "2": "非户籍"}
ETHNICITY = {"01": "汉族", "99": "少数民族"}
EDUCATION = {
    "1": "研究生",
    "2": "大学本科",
    "3": "大学专科和专科学校",
    "4": "中等专业学校",
    "5": "技工学校",
    "6": "高中",
    "7": "初中",
    "8": "小学",
    "9": "文盲或半文盲",
    "10": "不详",
}
OCCUPATION = {
    "0": "国家机关、党群组织、企业、事业单位负责人",
    "1": "专业技术人员",
    "2": "办事人员和有关人员",
    "3": "商业、服务业人员",
    "4": "农、林、牧、渔、水利业生产人员",
    "5": "生产、运输设备操作人员及有关人员",
    "6": "军人",
    "7": "不便分类的其他从业人员",
    "8": "无职业",
}
MARITAL = {"1": "未婚", "2": "已婚", "3": "丧偶", "4": "离婚", "5": "未说明的婚姻状况"}
PAYMENT = {
    "1": "城镇职工基本医疗保险",
    "2": "城镇居民基本医疗保险",
    "3": "新型农村合作医疗",
    "4": "贫困救助",
    "5": "商业医疗保险",
    "6": "全公费",
    "7": "全自费",
    "8": "其他",
}
DRUG_ALLERGY = {"1": "无", "2": "青霉素", "3": "磺胺", "4": "链霉素", "5": "其他"}
EXPOSURE = {"1": "无", "2": "化学品", "3": "毒物", "4": "射线"}
# 既往史 and 家族史 share codes 1–7 and 10; 8 严重精神障碍 and 9 结核病 are withheld (module docstring).
_SHARED_ILLNESS = {
    "1": "无",
    "2": "高血压",
    "3": "糖尿病",
    "4": "冠心病",
    "5": "慢性阻塞性肺疾病",
    "6": "恶性肿瘤",
    "7": "脑卒中",
    "10": "肝炎",
}
PAST_ILLNESS = {**_SHARED_ILLNESS, "11": "其他法定传染病", "12": "职业病", "13": "其他"}
FAMILY_HISTORY = {**_SHARED_ILLNESS, "11": "先天畸形", "12": "其他"}
DISABILITY = {  # 7 精神残疾 withheld, as above
    "1": "无残疾",
    "2": "视力残疾",
    "3": "听力残疾",
    "4": "言语残疾",
    "5": "肢体残疾",
    "6": "智力残疾",
    "8": "其他残疾",
}
KITCHEN_EXHAUST = {"1": "无", "2": "油烟机", "3": "换气扇", "4": "烟囱"}
FUEL = {"1": "液化气", "2": "煤", "3": "天然气", "4": "沼气", "5": "柴火", "6": "其他"}
WATER = {"1": "自来水", "2": "经净化过滤的水", "3": "井水", "4": "河湖水", "5": "塘水", "6": "其他"}
TOILET = {"1": "卫生厕所", "2": "一格或二格粪池式", "3": "马桶", "4": "露天粪坑", "5": "简易棚厕"}
LIVESTOCK_PEN = {"1": "无", "2": "单设", "3": "室内", "4": "室外"}

BASIC_FORM = Form(
    kind="basic",
    title="个人基本信息表",
    sections=(
        FormSection(
            "基本情况",
            (
                Field("resident_type", "常住类型", codes=RESIDENT_TYPE),
                Field("ethnicity", "民族", codes=ETHNICITY),
                Field("ethnicity_name", "少数民族名称"),
                Field("blood_abo", "血型", codes=ABO),
                Field("blood_rh", "Rh血型", codes=RH),
                Field("education", "文化程度", codes=EDUCATION),
                Field("occupation", "职业", codes=OCCUPATION),
                Field("marital", "婚姻状况", codes=MARITAL),
            ),
        ),
        FormSection("医疗费用支付方式", (Field("payment", "医疗费用支付方式", codes=PAYMENT),)),
        FormSection(
            "药物过敏史",
            (
                Field("drug_allergy", "药物过敏史", codes=DRUG_ALLERGY),
                Field("drug_allergy_other", "其他过敏药物"),
            ),
        ),
        FormSection("暴露史", (Field("exposure", "暴露史", codes=EXPOSURE),)),
        FormSection(
            "既往史",
            (
                Field("past_illness[].code", "疾病", codes=PAST_ILLNESS),
                Field("past_illness[].name", "名称"),
                Field("past_illness[].date", "确诊时间"),
                Field("surgery[].name", "手术"),
                Field("surgery[].date", "时间"),
                # 外伤 and 输血: the seed writes empty lists; the item keys follow the form (名称/原因, 时间).
                Field("trauma[].name", "外伤"),
                Field("trauma[].date", "时间"),
                Field("transfusion[].reason", "输血"),
                Field("transfusion[].date", "时间"),
            ),
        ),
        FormSection(
            "家族史",
            (
                Field("family_history.father", "父亲", codes=FAMILY_HISTORY),
                Field("family_history.mother", "母亲", codes=FAMILY_HISTORY),
                Field("family_history.siblings", "兄弟姐妹", codes=FAMILY_HISTORY),
                Field("family_history.children", "子女", codes=FAMILY_HISTORY),
            ),
        ),
        # 遗传病史 1无 2有 (+ 疾病名称): the seed writes null. Only the code is read here; a disease name sent
        # in its place is not shown (an unknown code) until the dictionary gets a key for it.
        FormSection("遗传病史", (Field("genetic_disease", "遗传病史", codes=NONE_SOME),)),
        FormSection("残疾情况", (Field("disability", "残疾情况", codes=DISABILITY),)),
        FormSection(
            "生活环境",
            (
                Field("kitchen_exhaust", "厨房排风设施", codes=KITCHEN_EXHAUST),
                Field("fuel", "燃料类型", codes=FUEL),
                Field("water", "饮水", codes=WATER),
                Field("toilet", "厕所", codes=TOILET),
                Field("livestock_pen", "禽畜栏", codes=LIVESTOCK_PEN),
            ),
        ),
    ),
)
