"""门诊 (接诊记录) visits: a few ordinary ones for anyone, HIV care for the `hiv` programme, and
the planted ones whose 国家临床版 code (A15.000x001, F20.901) a privacy filter must catch.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.people import Person
from wechat_backend.seed.records import Draft, days

# (ICD-10, 诊断, 主诉, 处理)
_COMMON = (
    ("J06.9", "急性上呼吸道感染", "咽痛、流涕2天", "对乙酰氨基酚片 0.5g 必要时；多饮水"),
    ("J02.9", "急性咽炎", "咽痛3天", "蓝芩口服液 10ml 每日三次"),
    ("J20.9", "急性支气管炎", "咳嗽、咳痰5天", "氨溴索片 30mg 每日三次"),
    ("K29.7", "慢性胃炎", "上腹部隐痛1周", "奥美拉唑肠溶胶囊 20mg 每日一次"),
    ("K59.0", "便秘", "排便困难1周", "乳果糖口服液 15ml 每日一次"),
    ("M54.5", "腰痛", "腰部酸痛半月", "布洛芬缓释胶囊 0.3g 每日两次；注意休息"),
    ("M17.9", "膝关节骨性关节炎", "双膝疼痛1月，上下楼加重", "氨基葡萄糖胶囊；外用双氯芬酸二乙胺乳胶剂"),
    ("R51", "头痛", "头痛1天", "对乙酰氨基酚片 0.5g 必要时"),
    ("L30.9", "皮炎", "皮肤瘙痒3天", "炉甘石洗剂外用"),
    ("N39.0", "尿路感染", "尿频、尿急2天", "左氧氟沙星片 0.5g 每日一次，共3天"),
)
_CHILD = (
    ("J06.9", "急性上呼吸道感染", "发热、流涕1天", "小儿氨酚黄那敏颗粒；物理降温"),
    ("J20.9", "急性支气管炎", "咳嗽3天", "小儿肺热咳喘口服液"),
    ("A09.9", "急性胃肠炎", "腹泻、呕吐1天", "口服补液盐Ⅲ；蒙脱石散"),
    ("L20.9", "湿疹", "面部皮疹1周", "保湿护理，氢化可的松乳膏外用"),
)
_CHRONIC = {
    "hypertension": ("I10", "高血压", "头晕，来院取药", "继续原降压方案"),
    "diabetes": ("E11.9", "2型糖尿病", "口干，来院取药", "继续原降糖方案"),
}
_PLANTED = (
    ("A15.000x001", "肺结核", "咳嗽、咳痰3周，午后低热", "转诊至县结核病定点医院"),
    ("F20.901", "精神分裂症", "家属代诉：失眠、自言自语1月", "建议至精神专科医院就诊"),
)
_HIV_TEXT = ("HIV感染者常规随访，病毒载量复查", "抗病毒治疗（替诺福韦二吡呋酯片+拉米夫定片+依非韦伦片）")


def _visit(
    d: dt.date, code: str, diagnosis: str, complaint: str, treatment: str, rng: random.Random, department: str = "全科"
) -> Draft:
    payload = {
        "department": department,
        "chief_complaint": complaint,
        "exam": f"体温{round(rng.uniform(36.2, 37.6), 1)}℃，神志清，精神可",
        "diagnosis": diagnosis,
        "treatment": treatment,
    }
    return Draft("outpatient", d, payload, [code])


def _some_day(p: Person, rng: random.Random, today: dt.date) -> dt.date:
    end = min(today, p.active_until)
    start = max(p.birth + days(1), end - days(730))
    return start + days(rng.randrange((end - start).days + 1)) if end >= start else end


def outpatient(p: Person, rng: random.Random, today: dt.date) -> list[Draft]:
    n = rng.choices((0, 1, 2, 3, 4), weights=(3, 3, 2, 1, 1) if p.age >= 50 else (5, 3, 1, 1, 0))[0]
    pool = _CHILD if p.age < 12 else _COMMON
    out = [_visit(_some_day(p, rng, today), *rng.choice(pool), rng) for _ in range(n)]
    for programme, visit in _CHRONIC.items():
        if p.has(programme) and rng.random() < 0.5:
            out.append(_visit(_some_day(p, rng, today), *visit, rng))
    if "outpatient" in p.plants and p.age >= 12:
        out.append(_visit(_some_day(p, rng, today), *rng.choice(_PLANTED), rng))
    if p.has("hiv") and p.sensitive_code:
        for _ in range(rng.randint(1, 3)):
            out.append(
                _visit(_some_day(p, rng, today), p.sensitive_code, "HIV感染", *_HIV_TEXT, rng, department="感染科")
            )
    return out
