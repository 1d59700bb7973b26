"""A poster (:mod:`.layout`) drawn as an A4 PDF and as an A4 PNG. Pure: bytes in memory, no I/O but
reading a font file.

* PDF (reportlab): vectors, the QR code's modules as filled rectangles, so it prints sharp at any
  size. Its Chinese uses the machine's CJK TrueType font when there is one, embedded as a subset
  (the file then prints the same anywhere); otherwise the Adobe CID font ``STSong-Light``, which
  needs no file here — PDF readers bring it, or a substitute, themselves.
* PNG (Pillow): 150 dpi, 1240×1754 pixels, for sending in a chat or printing at a copy shop. Pillow
  can only draw Chinese with a font file, so the PNG needs one on the machine (:func:`find_cjk_font`;
  :data:`INSTALL_FONT_HINT` says what to install when there is none).
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas

from .layout import PAGE_H, PAGE_W, WHITE, Box, Disc, Op, Poster, Qr, Text, layout

log = logging.getLogger("wechat_backend.posters")

DPI = 150
PNG_SIZE = (round(PAGE_W * DPI / 25.4), round(PAGE_H * DPI / 25.4))  # (1240, 1754)
CID_FONT = "STSong-Light"  # Adobe-GB1: every PDF reader knows it, nothing to embed

# (path, face in the collection): Debian/Ubuntu's packages first (fonts-wqy-microhei,
# fonts-wqy-zenhei, fonts-noto-cjk: face 2 of the Noto collection is Simplified Chinese), then
# where Fedora, Arch, macOS and Windows keep theirs.
FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/System/Library/Fonts/PingFang.ttc", 0),
    ("C:/Windows/Fonts/msyh.ttc", 0),
)
INSTALL_FONT_HINT = (
    "本机没有中文字体，无法生成 PNG 图片（PDF 不受影响）：请安装文泉驿微米黑字体"
    "（Debian/Ubuntu：apt-get install fonts-wqy-microhei），然后重新生成"
)


@dataclass(frozen=True)
class FontFile:
    path: str
    index: int = 0  # the face within a .ttc collection


def find_cjk_font(candidates: Iterable[tuple[str, int]] | None = None) -> FontFile | None:
    """The first CJK font of :data:`FONT_CANDIDATES` (or ``candidates``) on this machine, or None."""
    for path, index in FONT_CANDIDATES if candidates is None else candidates:
        if os.path.isfile(path):
            return FontFile(path, index)
    return None


# --------------------------------------------------------------------------- PDF


def render_pdf(poster: Poster, font: FontFile | None = None) -> bytes:
    """The poster as a one-page A4 PDF."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, invariant=True, pageCompression=1)
    c.setTitle(f"{poster.institution_name} · 微信扫码关注")
    c.setCreator("wechat-backend")
    face = _pdf_face(font)
    for op in layout(poster):
        _pdf_draw(c, op, face)
    c.showPage()
    c.save()
    return out.getvalue()


def _y(top: float) -> float:
    """Millimetres from the top → points from the bottom (PDF's origin)."""
    return (PAGE_H - top) * mm


def _pdf_draw(c: Canvas, op: Op, face: str) -> None:
    if isinstance(op, Box):
        if op.fill:
            c.setFillColorRGB(*_rgb(op.fill))
        if op.stroke:
            c.setStrokeColorRGB(*_rgb(op.stroke))
        args = (op.x * mm, _y(op.y + op.h), op.w * mm, op.h * mm)
        kw = {"stroke": int(op.stroke is not None), "fill": int(op.fill is not None)}
        if op.radius:
            c.roundRect(*args, op.radius * mm, **kw)
        else:
            c.rect(*args, **kw)
    elif isinstance(op, Disc):
        c.setFillColorRGB(*_rgb(op.fill))
        c.circle(op.cx * mm, _y(op.cy), op.r * mm, stroke=0, fill=1)
    elif isinstance(op, Text):
        x = op.x * mm
        if op.centred:
            x -= pdfmetrics.stringWidth(op.text, face, op.size) / 2
        c.saveState()  # the render mode is graphics state: it must not outlive this line
        c.setFillColorRGB(*_rgb(op.colour))
        c.setStrokeColorRGB(*_rgb(op.colour))
        c.setLineWidth(op.size * 0.03)
        t = c.beginText(x, _y(op.baseline))
        t.setFont(face, op.size)
        if op.bold:
            t.setTextRenderMode(2)  # fill and stroke: a bold the font does not have
        t.textOut(op.text)
        c.drawText(t)
        c.restoreState()
    else:
        _pdf_qr(c, op)


def _pdf_qr(c: Canvas, op: Qr) -> None:
    """White square, then each row's runs of dark modules as one rectangle, all in one path (no
    hairlines between neighbours in a viewer)."""
    unit = op.size / len(op.modules)
    c.setFillColorRGB(1, 1, 1)
    c.rect(op.x * mm, _y(op.y + op.size), op.size * mm, op.size * mm, stroke=0, fill=1)
    path = c.beginPath()
    for r, row in enumerate(op.modules):
        start = None
        for col, dark in enumerate((*row, False)):
            if dark and start is None:
                start = col
            elif not dark and start is not None:
                top = op.y + r * unit
                path.rect((op.x + start * unit) * mm, _y(top + unit), (col - start) * unit * mm, unit * mm)
                start = None
    c.setFillColorRGB(0, 0, 0)
    c.drawPath(path, stroke=0, fill=1)


_registering = threading.Lock()
_unusable: set[FontFile] = set()


def _pdf_face(font: FontFile | None) -> str:
    """The registered reportlab font to write with: the machine's font embedded, if reportlab can
    read it (TrueType outlines; Noto's CFF outlines it cannot), else the CID font."""
    with _registering:
        if font is not None and font not in _unusable:
            name = f"poster-{os.path.basename(font.path)}-{font.index}"
            if name in pdfmetrics.getRegisteredFontNames():
                return name
            try:
                pdfmetrics.registerFont(TTFont(name, font.path, subfontIndex=font.index))
                return name
            except (TTFError, OSError) as exc:
                log.info("poster PDF: %s cannot be embedded (%s); using %s", font.path, type(exc).__name__, CID_FONT)
                _unusable.add(font)
        if CID_FONT not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(UnicodeCIDFont(CID_FONT))
        return CID_FONT


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return colour[0] / 255, colour[1] / 255, colour[2] / 255


# --------------------------------------------------------------------------- PNG


def render_png(poster: Poster, font: FontFile) -> bytes:
    """The poster as an A4 PNG at :data:`DPI` (the dpi is written into the file, so it prints A4)."""
    scale = DPI / 25.4
    image = Image.new("RGB", PNG_SIZE, WHITE)
    draw = ImageDraw.Draw(image)
    faces: dict[int, ImageFont.FreeTypeFont] = {}  # by pixel size; not shared between threads

    def px(v: float) -> int:
        return round(v * scale)

    def face(size: int) -> ImageFont.FreeTypeFont:
        if size not in faces:
            faces[size] = ImageFont.truetype(font.path, size, index=font.index)
        return faces[size]

    for op in layout(poster):
        if isinstance(op, Box):
            xy = (px(op.x), px(op.y), px(op.x + op.w) - 1, px(op.y + op.h) - 1)
            draw.rounded_rectangle(xy, radius=px(op.radius), fill=op.fill, outline=op.stroke)
        elif isinstance(op, Disc):
            draw.ellipse((px(op.cx - op.r), px(op.cy - op.r), px(op.cx + op.r), px(op.cy + op.r)), fill=op.fill)
        elif isinstance(op, Text):
            size = round(op.size * DPI / 72)
            draw.text(
                (px(op.x), px(op.baseline)),
                op.text,
                font=face(size),
                fill=op.colour,
                anchor="ms" if op.centred else "ls",
                stroke_width=max(1, round(size * 0.02)) if op.bold else 0,
                stroke_fill=op.colour,
            )
        else:
            _png_qr(image, op, scale)
    out = io.BytesIO()
    image.save(out, "PNG", dpi=(DPI, DPI), optimize=True)
    return out.getvalue()


def _png_qr(image: Image.Image, op: Qr, scale: float) -> None:
    """Whole pixels per module (a scanner wants sharp edges), centred in the QR code's square."""
    n = len(op.modules)
    box = round(op.size * scale)
    unit = box // n
    small = Image.new("1", (n, n), 1)
    small.putdata([0 if dark else 1 for row in op.modules for dark in row])
    left = round(op.x * scale) + (box - unit * n) // 2
    top = round(op.y * scale) + (box - unit * n) // 2
    image.paste(small.resize((unit * n, unit * n), Image.Resampling.NEAREST).convert("RGB"), (left, top))
