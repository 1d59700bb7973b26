"""Numbers and addresses that identify a resident: 身份证号 (GB 11643), 健康档案编号 (17 digits),
mobile numbers and home addresses.

The only growing state is bounded: one 顺序码 counter pair per county and birth date, and one
serial per village, so memory stays flat however many archives are made.
"""

from __future__ import annotations

import datetime as dt
import random

from wechat_backend.seed.places import Institution, Village
from wechat_backend.validators import id_check_char

# Mainland mobile number prefixes in common use (all match validators.parse_mobile).
_MOBILE_PREFIXES = tuple(map(str, (*range(130, 140), 150, 151, 152, 153, 155, 156, 157, 158, 159, 166, 177)))
_MOBILE_PREFIXES += tuple(map(str, (*range(180, 190), 191, 198, 199)))

# Where a 非户籍 resident's 户籍 is: the neighbouring counties of Hebei, Henan and Shandong.
ELSEWHERE = (
    "河北省邯郸市馆陶县",
    "河北省邯郸市大名县",
    "河南省濮阳市南乐县",
    "河南省濮阳市范县",
    "山东省德州市夏津县",
    "山东省济南市平阴县",
    "山东省泰安市东平县",
    "山东省菏泽市鄄城县",
)


class Identities:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._id_seq: dict[str, list[int]] = {}
        self._serial: dict[str, int] = {}

    def phone(self) -> str:
        """Unique in practice (33 prefixes × 10⁸), not checked: families share phones anyway."""
        return self._rng.choice(_MOBILE_PREFIXES) + f"{self._rng.randrange(100_000_000):08d}"

    def id_number(self, county: str, birth: dt.date, sex: str) -> str:
        """Unique: each county and birth date hands out its 顺序码 in order, odd for men."""
        key = county + birth.strftime("%Y%m%d")
        counters = self._id_seq.get(key)
        if counters is None:  # start somewhere in the range, as real 顺序码 do
            counters = self._id_seq[key] = [self._rng.randrange(150), self._rng.randrange(150)]
        slot = 0 if sex == "1" else 1
        n = counters[slot]
        if n >= 500:
            raise RuntimeError("身份证顺序码用尽：同县同日出生同性别人数过多")
        counters[slot] = n + 1
        first17 = f"{key}{2 * n + (1 if sex == '1' else 0):03d}"  # odd = male, even = female
        return first17 + id_check_char(first17)

    def archive_no(self, inst: Institution, village: Village) -> str:
        """county(6) + township(3) + village(3) + serial(5), serials in filing order per village."""
        key = inst.county.code + inst.town_code + village.code
        serial = self._serial.get(key)
        if serial is None:
            serial = self._rng.randint(1, 400)
        if serial > 99_999:
            raise RuntimeError("档案序号用尽")
        self._serial[key] = serial + 1
        return f"{key}{serial:05d}"

    def address(self, inst: Institution, village: Village) -> str:
        """Down to the community or village first (what masking keeps), then the home itself."""
        r = self._rng
        base = f"山东省聊城市{inst.county.name}{inst.town}{village.name}"
        if village.is_community:
            return (
                f"{base}{village.road}{r.randint(1, 399)}号{r.randint(1, 24)}号楼{r.randint(1, 4)}单元"
                f"{r.randint(1, 18)}0{r.randint(1, 4)}室"
            )
        return f"{base}{r.randint(1, 260)}号"
