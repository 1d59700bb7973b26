"""Names of residents, guardians and doctors, drawn from pools built once per generator.

Calling Faker per person is the slow part of a naive generator, so Faker (zh_CN, seeded per
instance) fills pools once and people are drawn from them. Given names follow the fashion of the
birth cohort: a woman born in 1945 is 秀英 or 桂兰, a girl born in 2022 is 一诺 or 梓涵.
"""

from __future__ import annotations

import random

from faker import Faker

# Per birth cohort and sex: whole given names, and the first and second characters that are
# combined into most given names (strings of single characters).
_COHORTS = {
    "old": {  # born before 1960
        "1": (
            ("建国", "德福", "福林", "振华", "长山", "玉山", "树林", "金生", "庆和", "广田", "宝山", "富贵"),
            "德福振长玉树金庆广宝永守成兆洪春秋全文殿世学万",
            "山林生和田顺贵昌义祥福臣才堂海江明忠华有",
        ),
        "2": (
            ("秀英", "桂英", "玉兰", "桂兰", "秀兰", "凤英", "桂芝", "玉珍", "淑珍", "秀珍", "玉梅", "凤兰"),
            "秀桂玉凤淑兰翠素金俊爱月春荣",
            "英兰芝珍梅云荣芬芳花莲香琴霞娥枝",
        ),
    },
    "mid": {  # 1960–1989; Faker's own zh_CN given names are mixed in
        "1": (
            ("志强", "建军", "海涛", "建华", "国庆", "卫东", "红军", "永刚", "志刚", "建平", "春雷", "立新"),
            "建志海国卫红永春立振庆长宏文新景保光明德洪俊学",
            "军强涛华东刚平雷新国伟青明民山峰亮勇斌杰辉波",
        ),
        "2": (
            ("红梅", "丽娟", "秀梅", "春燕", "海燕", "美玲", "红霞", "晓红", "爱华", "玉霞", "冬梅", "丽萍"),
            "红丽秀春海美晓爱玉冬艳翠凤彩瑞桂淑金素",
            "梅娟燕玲霞华萍芳香英云敏静红娜丽莉平",
        ),
    },
    "young": {  # 1990–2009
        "1": (
            ("浩", "宇", "凯", "帅", "旭", "鹏飞", "晓东", "佳豪", "文博", "子豪", "俊杰", "明轩"),
            "浩鹏晓佳文子俊明家天振鑫博昊泽少宇志凯海",
            "然飞东豪博杰轩乐宇磊文天涛阳鹏洋伟超帅龙",
        ),
        "2": (
            ("倩", "璐", "婷婷", "丹丹", "晓雪", "雨欣", "佳慧", "梦瑶", "思雨", "欣然", "雅琪", "文静"),
            "晓雨佳梦思婷欣雅文璐雪嘉丹玉晨慧静",
            "雪欣慧瑶雨婷然琪静倩萌璐洁莹曦敏悦颖月",
        ),
    },
    "kid": {  # 2010 and later
        "1": (
            ("睿", "子轩", "浩宇", "梓涵", "宇航", "一诺", "沐宸", "奕辰", "梓睿", "俊熙", "铭泽", "皓轩"),
            "子浩梓宇一沐奕俊铭皓煜锦思博嘉睿景语",
            "轩宇涵航诺宸辰睿熙泽墨懿祺程远然铭川阳霖",
        ),
        "2": (
            ("一诺", "梓涵", "欣怡", "语桐", "诗涵", "雨桐", "可馨", "梓萱", "若汐", "依依", "安然", "子涵"),
            "一梓欣语诗雨可若依安子沐芊梦思馨书雅艺",
            "诺涵怡桐萱汐依然晴嫣芊琪月心彤妍瑶菲宁",
        ),
    },
}
# 维吾尔族 names are written given·father's-given with a middle dot; a few residents carry one.
_DOTTED_GIVEN = {
    "1": ("艾力", "买买提", "阿布都", "吐尔逊", "努尔", "艾克拜尔"),
    "2": ("阿依古丽", "热依拉", "古丽米拉", "帕提古丽", "迪丽努尔", "萨依普加马力"),
}
_DOTTED_FATHER = ("买买提", "艾力", "吐尔逊", "阿不都", "热合曼", "玉素甫", "托合提")


class NamePool:
    def __init__(self, fake: Faker, rng: random.Random) -> None:
        self._rng = rng
        # Faker draws surnames by frequency (王 7%, 李 7%, ...): a large pool keeps that shape.
        self.surnames = [fake.last_name() for _ in range(4000)]
        self._faker_given = {
            "1": [fake.first_name_male() for _ in range(300)],
            "2": [fake.first_name_female() for _ in range(300)],
        }

    def surname(self) -> str:
        return self._rng.choice(self.surnames)

    def given(self, sex: str, birth_year: int) -> str:
        r = self._rng
        cohort = "old" if birth_year < 1960 else "mid" if birth_year < 1990 else "young" if birth_year < 2010 else "kid"
        if cohort == "mid" and r.random() < 0.3:
            return r.choice(self._faker_given[sex])
        whole, firsts, seconds = _COHORTS[cohort][sex]
        if r.random() < 0.2:
            return r.choice(whole)
        return r.choice(firsts) + r.choice(seconds)

    def full(self, sex: str, birth_year: int, surname: str | None = None) -> str:
        return (surname or self.surname()) + self.given(sex, birth_year)

    def dotted(self, sex: str) -> str:
        return f"{self._rng.choice(_DOTTED_GIVEN[sex])}·{self._rng.choice(_DOTTED_FATHER)}"
