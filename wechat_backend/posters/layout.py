"""What an institution's A4 poster shows and where: pure, in millimetres from the top left, the same
for the PDF and the PNG (:mod:`.render` draws it).

Written for residents who are often elderly and read it on a wall: big type, the QR code as large as
the page allows, three numbered steps in the words of the account's own menu (关注 → 绑定档案 →
查看), the institution's name, and the number to call (聊卫基层〔2018〕14号: hang the code with the
steps to use it, and publish the institution's consultation phone).

Text is measured by an estimate (a CJK character is one em wide, anything else a little over half),
so the layout needs no font; both renderers centre or left-align on the same baselines.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace

import segno

PAGE_W, PAGE_H = 210.0, 297.0  # A4
MARGIN = 14.0
PT = 25.4 / 72  # millimetres per typographic point

Colour = tuple[int, int, int]
GREEN: Colour = (7, 160, 80)  # WeChat's green, a shade darker so white on it prints legibly
INK: Colour = (20, 20, 20)
GREY: Colour = (85, 85, 85)
LINE: Colour = (200, 200, 200)
WHITE: Colour = (255, 255, 255)

# The account's menu says “我的档案” (wechat/menu.py) and the bind form asks for these fields.
STEPS = (
    ("扫码关注", "打开微信“扫一扫”，对准上面的二维码，点“关注公众号”"),
    ("绑定档案", "点公众号下方的“我的档案”，填写姓名、身份证号和建档时登记的手机号，再填短信验证码"),
    ("查看档案", "以后随时点“我的档案”，查看体检、随访等记录"),
)
FAMILY = "子女可以用自己的微信帮老人、孩子绑定，手机号填档案里登记的号码"


@dataclass(frozen=True)
class Poster:
    """What goes on one institution's poster."""

    account_name: str
    institution_name: str
    consult_phone: str  # empty: the poster sends people to the staff only
    qr_url: str  # what the QR code encodes: the URL WeChat returned for the institution's code


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    fill: Colour | None
    stroke: Colour | None = None
    radius: float = 0.0


@dataclass(frozen=True)
class Disc:
    cx: float
    cy: float
    r: float
    fill: Colour


@dataclass(frozen=True)
class Text:
    x: float  # the left end, or the centre when ``centred``
    baseline: float
    text: str
    size: float  # points
    colour: Colour
    bold: bool = False
    centred: bool = False


@dataclass(frozen=True)
class Qr:
    """The QR code's modules, quiet zone included, drawn as dark squares in the square ``size``."""

    x: float
    y: float
    size: float
    modules: tuple[tuple[bool, ...], ...]


Op = Box | Disc | Text | Qr


def text_width(text: str, size: float) -> float:
    """An estimate of the width in millimetres at ``size`` points."""
    em = size * PT
    return sum(em if unicodedata.east_asian_width(c) in "WF" else 0.56 * em for c in text)


_NO_LINE_START = set("，。、；：！？）》」』”’%")


def _in_word(c: str) -> bool:
    return (c.isascii() and c.isalnum()) or c in ":.-–"


def wrap(text: str, size: float, width: float) -> list[str]:
    """Lines no wider than ``width``, broken between any two characters (as Chinese is), but
    never before closing punctuation nor inside a number or a time (``8:00–17:00``)."""
    lines: list[str] = []
    line = ""
    for c in text:
        if line and text_width(line + c, size) > width and c not in _NO_LINE_START:
            cut = len(line)
            while cut > 0 and _in_word(c) and _in_word(line[cut - 1]):  # back to the word's start
                cut -= 1
            cut = cut or len(line)  # one word longer than the line: break it after all
            lines.append(line[:cut])
            line = line[cut:]
        line += c
    return [*lines, line] if line else lines


def fit(text: str, size: float, width: float, smallest: float) -> tuple[float, list[str]]:
    """One line at ``size`` or smaller (down to ``smallest``); wrapped at ``smallest`` beyond that."""
    while size > smallest and text_width(text, size) > width:
        size -= 1
    return size, wrap(text, size, width)


def qr_modules(url: str) -> tuple[tuple[bool, ...], ...]:
    """The QR code of ``url`` with its four-module quiet zone; error level M at least (segno raises
    it when the same symbol size allows)."""
    code = segno.make_qr(url, error="m")
    return tuple(tuple(bool(v) for v in row) for row in code.matrix_iter(scale=1, border=4))


WIDTH = PAGE_W - 2 * MARGIN
MID = PAGE_W / 2


def layout(p: Poster) -> list[Op]:
    """The drawing of one poster, top to bottom: a green band with the title and the account's name,
    the institution, the QR code (as large as what is left allows), the steps, and the phone."""
    ops, y = _band(p.account_name)
    # Whose code this is.
    y += 4.0
    name_size, name_lines = fit(p.institution_name, 24, WIDTH, 16)
    for line in name_lines:
        y += name_size * PT + 1.5
        ops.append(Text(MID, y, line, name_size, INK, bold=True, centred=True))
    qr_top = y + 5.0
    # What goes under the QR code is measured first, so that the code gets the rest of the page.
    below, below_height = _under_the_code(p.consult_phone)
    size = max(60.0, min(100.0, PAGE_H - MARGIN - below_height - qr_top))
    ops.append(Qr(MID - size / 2, qr_top, size, qr_modules(p.qr_url)))
    return ops + [_shift(op, qr_top + size) for op in below]


def _band(account_name: str) -> tuple[list[Op], float]:
    """The green band: what this is, and the account's name to look for; and where it ends."""
    band_top, pad = 10.0, 7.0
    title_size, title_lines = fit("用微信查看您的健康档案", 32, WIDTH - 12, 24)
    account_size, account_lines = fit(f"公众号：{account_name}", 20, WIDTH - 12, 14)
    y = band_top + pad
    text: list[Op] = []
    for line in title_lines:
        y += title_size * PT
        text.append(Text(MID, y, line, title_size, WHITE, bold=True, centred=True))
        y += 2.5
    y += 1.5
    for line in account_lines:
        y += account_size * PT
        text.append(Text(MID, y, line, account_size, WHITE, centred=True))
        y += 2.0
    bottom = y + pad - 2.0
    return [Box(MARGIN - 4, band_top, WIDTH + 8, bottom - band_top, GREEN, radius=4.0), *text], bottom


def _under_the_code(consult_phone: str) -> tuple[list[Op], float]:
    """The caption, the three steps, the family hint and the phone, from 0 at the code's lower
    edge; and their height."""
    ops: list[Op] = [Text(MID, 9.0, "微信扫一扫  关注公众号", 22, GREEN, bold=True, centred=True)]
    y = 16.0
    disc_r, text_x = 6.5, MARGIN + 17.0
    for n, (head, body) in enumerate(STEPS, start=1):
        centre = y + disc_r + 0.5
        ops.append(Disc(MARGIN + disc_r, centre, disc_r, GREEN))
        ops.append(Text(MARGIN + disc_r, centre + 9.5 * PT, str(n), 26, WHITE, bold=True, centred=True))
        y += 24 * PT + 1.5
        ops.append(Text(text_x, y, head, 24, INK, bold=True))
        for line in wrap(body, 17, PAGE_W - MARGIN - text_x):
            y += 17 * PT * 1.45
            ops.append(Text(text_x, y, line, 17, GREY))
        y += 5.0
    for line in wrap(FAMILY, 15, WIDTH):
        y += 15 * PT * 1.4
        ops.append(Text(MID, y, line, 15, GREY, centred=True))
    y += 4.0
    ops.append(Box(MARGIN, y, WIDTH, 0.4, LINE))
    y += 16 * PT * 1.5
    ops.append(
        Text(
            MID, y, "不会用？请找本院工作人员帮忙" + ("，或打电话咨询" if consult_phone else ""), 16, INK, centred=True
        )
    )
    if consult_phone:
        phone_size, phone_lines = fit(f"咨询电话：{consult_phone}", 28, WIDTH, 18)
        for line in phone_lines:
            y += phone_size * PT * 1.35
            ops.append(Text(MID, y, line, phone_size, INK, bold=True, centred=True))
    return ops, y + 2.0


def _shift(op: Op, dy: float) -> Op:
    if isinstance(op, Text):
        return replace(op, baseline=op.baseline + dy)
    if isinstance(op, Disc):
        return replace(op, cy=op.cy + dy)
    return replace(op, y=op.y + dy)
