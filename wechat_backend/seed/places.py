"""聊城市的县（市、区）、乡镇（街道）、村（居）委会与基层医疗卫生机构。

The places are a fixed, hand-written list and are built with their own fixed random stream, so
every seed yields the same institutions (same codes, names and phones): only residents vary.
Township codes follow GB/T 10114 ranges (街道 001–099, 镇 100–199) but are assigned here, not
copied from the official register.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Any constant works; fixed so institutions are identical across seeds (an import of two
# files made with different seeds must not see the same upstream_id with different contents).
_PLACES_SEED = 371500


@dataclass(frozen=True)
class County:
    code: str  # GB/T 2260
    name: str
    population: int  # 万人, weights how many archives land here
    phone_prefix: str  # first two digits after 0635- of the county's landlines
    towns: tuple[str, ...]  # each gets one 社区卫生服务中心 (街道) or 卫生院 (镇)


COUNTIES: tuple[County, ...] = (
    County("371502", "东昌府区", 120, "83", ("古楼街道", "柳园街道", "新区街道", "道口铺街道", "侯营镇", "沙镇镇")),
    County("371503", "茌平区", 50, "42", ("振兴街道", "信发街道", "乐平铺镇", "博平镇", "杜郎口镇")),
    County("371521", "阳谷县", 75, "62", ("博济桥街道", "狮子楼街道", "阿城镇", "七级镇", "张秋镇", "寿张镇")),
    County("371522", "莘县", 90, "73", ("燕塔街道", "莘亭街道", "燕店镇", "朝城镇", "观城镇", "张鲁回族镇")),
    County("371524", "东阿县", 40, "32", ("铜城街道", "新城街道", "刘集镇", "鱼山镇")),
    County("371525", "冠县", 75, "52", ("清泉街道", "崇文街道", "柳林镇", "清水镇", "店子镇")),
    County("371526", "高唐县", 45, "39", ("鱼邱湖街道", "汇鑫街道", "梁村镇", "清平镇")),
    County("371581", "临清市", 75, "23", ("青年路街道", "新华路街道", "松林镇", "烟店镇", "康庄镇", "魏湾镇")),
)

_COMMUNITY_NAMES = (
    "光明",
    "幸福",
    "和平",
    "建设",
    "东关",
    "西关",
    "南关",
    "北关",
    "文化",
    "育新",
    "振兴",
    "花园",
    "湖滨",
    "运河",
    "站前",
    "新华",
    "利民",
    "兴华",
    "向阳",
    "红星",
    "民主",
    "府前",
    "龙湾",
    "柳园",
)
_ROADS = (
    "光岳路",
    "东昌路",
    "柳园路",
    "兴华路",
    "建设路",
    "振兴路",
    "利民路",
    "育新街",
    "文化路",
    "站前街",
    "花园路",
    "向阳路",
    "民主路",
    "人民路",
    "新华路",
    "运河路",
    "黄河路",
    "长江路",
    "卫育路",
    "府前街",
)
_VILLAGE_PREFIX = ("", "", "", "前", "后", "东", "西", "南", "北", "大", "小", "新")
_VILLAGE_CORE = (  # surnames that name villages: 王庄, 李屯
    "王李张刘陈杨赵孙周吴徐马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈"
)
_VILLAGE_SUFFIX = ("庄", "屯", "集", "楼", "寨", "营", "堂", "店", "口", "湾", "园", "庙", "洼", "海子")


@dataclass(frozen=True)
class Village:
    code: str  # 3 digits: 001–099 居委会, 101–199 村委会
    name: str  # "光明社区" or "前王庄村"
    is_community: bool
    road: str  # for a community, the street its buildings are on


@dataclass(frozen=True)
class Institution:
    upstream_id: str
    code: str
    name: str
    county: County
    town_code: str
    town: str
    phone: str
    address: str
    villages: tuple[Village, ...]

    @property
    def is_urban(self) -> bool:
        return self.town.endswith("街道")


def _villages(rng: random.Random, urban: bool) -> tuple[Village, ...]:
    n_communities = rng.randint(6, 12) if urban else rng.randint(1, 2)
    n_villages = rng.randint(0, 4) if urban else rng.randint(18, 32)
    out: list[Village] = []
    for i, name in enumerate(rng.sample(_COMMUNITY_NAMES, n_communities), start=1):
        out.append(Village(f"{i:03d}", f"{name}社区", True, rng.choice(_ROADS)))
    seen: set[str] = set()
    while len(seen) < n_villages:
        name = rng.choice(_VILLAGE_PREFIX) + rng.choice(_VILLAGE_CORE) + rng.choice(_VILLAGE_SUFFIX) + "村"
        if name not in seen:
            seen.add(name)
            out.append(Village(f"{100 + len(seen):03d}", name, False, ""))
    return tuple(out)


def build_institutions() -> list[Institution]:
    """Every county's institutions, in county order; the same list for every seed."""
    rng = random.Random(_PLACES_SEED)
    out: list[Institution] = []
    for county in COUNTIES:
        n_street = n_town = 0
        for i, town in enumerate(county.towns, start=1):
            urban = town.endswith("街道")
            if urban:
                n_street += 1
                town_code, kind, suffix = f"{n_street:03d}", "2", "社区卫生服务中心"
            else:
                n_town += 1
                town_code, kind, suffix = f"{100 + n_town:03d}", "1", "卫生院"
            road = rng.choice(_ROADS) if urban else rng.choice(("政府街", "卫生街", "府前街", "中心街"))
            out.append(
                Institution(
                    upstream_id=f"inst-{county.code}-{i:03d}",
                    code=f"{county.code}{town_code}{kind}01",
                    name=f"{county.name}{town}{suffix}",
                    county=county,
                    town_code=town_code,
                    town=town,
                    phone=f"0635-{county.phone_prefix}{rng.randrange(100000):05d}",
                    address=f"山东省聊城市{county.name}{town}{road}{rng.randint(1, 300)}号",
                    villages=_villages(rng, urban),
                )
            )
    return out


def institution_weights(institutions: list[Institution]) -> list[float]:
    """Cumulative weights: a county's share follows its population, split over its institutions."""
    rng = random.Random(_PLACES_SEED + 1)
    per_county = {c.code: len(c.towns) for c in COUNTIES}
    cumulative, total = [], 0.0
    for inst in institutions:
        total += inst.county.population / per_county[inst.county.code] * rng.uniform(0.7, 1.3)
        cumulative.append(total)
    return cumulative


def institution_line(inst: Institution) -> dict:
    return {
        "type": "institution",
        "upstream_id": inst.upstream_id,
        "version": 1,
        "code": inst.code,
        "name": inst.name,
        "county_code": inst.county.code,
        "county_name": inst.county.name,
        "consult_phone": inst.phone,
        "address": inst.address,
    }
