"""老年人中医药健康管理服务记录表 (domain §2.1): the 中医体质辨识 of people 65+, nine 体质 from the
33 questions, with the 转化分 of each and the 中医药保健指导 given.
"""

from __future__ import annotations

from .base import Field, Form, FormSection

CONSTITUTIONS = ("平和质", "气虚质", "阳虚质", "阴虚质", "痰湿质", "湿热质", "血瘀质", "气郁质", "特禀质")
# The 体质 are written by name; the table only admits the nine names (anything else is not shown).
CONSTITUTION = {name: name for name in CONSTITUTIONS}
# 中医药保健指导: from the national form (not in the domain notes, unconfirmed).
GUIDANCE = {"1": "情志调摄", "2": "饮食调养", "3": "起居调摄", "4": "运动保健", "5": "穴位保健", "6": "其他"}

TCM_CONSTITUTION = Form(
    kind="tcm_constitution",
    title="老年人中医药健康管理服务记录表",
    sections=(
        FormSection(
            "体质辨识",
            (
                Field("constitution", "体质类型", codes=CONSTITUTION, prominent=True),
                Field("tendency", "倾向体质", codes=CONSTITUTION),
            ),
        ),
        FormSection("各体质得分", tuple(Field(f"scores.{name}", name, "分") for name in CONSTITUTIONS)),
        FormSection("中医药保健指导", (Field("guidance", "中医药保健指导", codes=GUIDANCE),)),
    ),
    summary_keys=("constitution",),
)
