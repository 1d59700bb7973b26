"""One trend as a small inline SVG for a 375 px phone, read by people of 70 and more. Pure: a
:class:`~wechat_backend.records.trends.Series` in, markup out.

What the picture carries, top to bottom: the series' name and its latest value (24 px) with the
unit and 偏高/偏低 when it lies outside the reference range; the reference range shaded light green,
its bounds written in green on the right; 3–5 rounded ticks on the left with light grid lines; the
points joined by a line, a dot at each, and a point outside the range drawn as a red triangle
(up when high, down when low) with 高 or 低 beside it, so colour is never the only signal; the
first and last dates below.

The markup is meant to sit inside an HTML page under a strict Content-Security-Policy: no script,
no ``<style>`` and no ``style=`` (presentation attributes only), no external font or image, no URL
at all (so no ``xmlns`` either: the HTML parser puts ``<svg>`` in the SVG namespace by itself; a
standalone ``.svg`` file needs ``xmlns="http://www.w3.org/2000/svg"`` added). Every text is
escaped. ``role="img"`` with a Chinese ``aria-label`` makes it one image to a screen reader.

Any finite values render: one point, equal values, values far outside the range, values near the
limits of a float (layout is computed on values scaled by a power of two).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Iterable

from .trends import Series

__all__ = ["svg"]

WIDTH, HEIGHT = 343, 180  # a 375 px screen less 16 px margins
_HEADER = 44  # the plot starts below the name and the latest value
_FOOTER = 30  # the dates under the plot
_LEFT, _RIGHT = 44, 36  # tick labels; band bounds
_INSET = 8  # the first and last points sit this far inside the plot

_INK = "#222222"
_AXIS = "#555555"  # 7.5:1 on white
_GRID = "#e0e0e0"
_LINE = "#1565c0"
_WARN = "#c62828"  # 5.6:1 on white
_BAND_FILL = "#e3f2e1"
_BAND_EDGE = "#a5d6a7"
_BAND_TEXT = "#2e7d32"  # 5.1:1 on white
_FONT = "sans-serif"

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NICE = ((1.0, 2.0, 5.0), (1.0, 2.0, 2.5, 5.0))  # tick step mantissas: the first set preferred
_HIGH, _LOW, _IN = "high", "low", "in"


def _text(value: object) -> str:
    """Escaped for element text and attribute values, without characters XML 1.0 forbids."""
    return html.escape(_NOT_XML.sub("", str(value)), quote=True)


def _fmt(value: float, decimals: int | None = None) -> str:
    """152.0 -> "152", 6.35 -> "6.35", -0.0 -> "0"; ``decimals`` fixes the digits (tick labels)."""
    if not math.isfinite(value):
        return "∞" if value > 0 else ("-∞" if value < 0 else "–")
    if abs(value) >= 1e7:
        return f"{value:.3g}"
    if decimals is None:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        if value != 0 and float(text) == 0:
            return f"{value:.3g}"
    else:
        text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _decimals(step: float) -> int:
    for d in range(13):
        scaled = step * 10**d
        if abs(scaled - round(scaled)) <= 1e-6 * scaled:
            return d
    return 12


def _num(value: float) -> str:
    return f"{value:.1f}"


def _date_label(day: dt.date, short: bool) -> str:
    return f"{day.month}月{day.day}日" if short else f"{day.year:04d}-{day.month:02d}"


def _date_cn(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _status(value: float, band: tuple[float, float] | None) -> str | None:
    if band is None:
        return None
    return _HIGH if value > band[1] else (_LOW if value < band[0] else _IN)


def _band(series: Series) -> tuple[float, float] | None:
    if series.band is None:
        return None
    lo, hi = (float(v) for v in series.band)
    return (min(lo, hi), max(lo, hi)) if math.isfinite(lo) and math.isfinite(hi) else None


def _ticks(lo: float, hi: float) -> tuple[float, float, list[float], int]:
    """(axis low, axis high, 3–5 tick values, their decimals); the axis grows only when it must."""
    span = hi - lo
    e = math.floor(math.log10(span))
    for mantissas in _NICE:
        for exponent in range(e - 2, e + 2):
            for m in mantissas:
                step = m * 10.0**exponent
                first, last = math.ceil(lo / step), math.floor(hi / step)
                if 3 <= last - first + 1 <= 5:
                    return lo, hi, [i * step for i in range(first, last + 1)], _decimals(step)
    step = 10.0**e  # not reached for sane spans; widen the axis to three ticks
    first = math.floor(lo / step)
    return first * step, (first + 2) * step, [(first + i) * step for i in range(3)], _decimals(step)


def _unscale(value: float, exponent: int) -> float:
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.copysign(math.inf, value)


def _label(series: Series, points: list[tuple[dt.date, float]], band: tuple[float, float] | None) -> str:
    """收缩压，最近一次 152 mmHg，高于参考范围（90 至 139 mmHg），2026年11月3日，共 8 次记录"""
    unit = f" {series.unit}" if series.unit else ""
    if not points:
        return f"{series.label}，暂无记录"
    day, value = points[-1]
    parts = [series.label, f"最近一次 {_fmt(value)}{unit}"]
    status = _status(value, band)
    if band is not None:
        words = {_HIGH: "高于参考范围", _LOW: "低于参考范围", _IN: "在参考范围内"}[status or _IN]
        parts.append(f"{words}（{_fmt(band[0])} 至 {_fmt(band[1])}{unit}）")
    parts.append(_date_cn(day))
    parts.append(f"共 {len(points)} 次记录")
    return "，".join(parts)


def _triangle(x: float, y: float, status: str) -> str:
    """A red triangle pointing the way the value is off."""
    tip, base = (-6.5, 4.5) if status == _HIGH else (6.5, -4.5)
    corners = ((x, y + tip), (x - 6.5, y + base), (x + 6.5, y + base))
    return (
        f'<polygon points="{" ".join(f"{_num(cx)},{_num(cy)}" for cx, cy in corners)}" fill="{_WARN}" '
        f'stroke="#ffffff" stroke-width="1"/>'
    )


def _word(x: float, y: float, status: str, top: float, bottom: float) -> tuple[float, float, str]:
    """Where 高 (above the point) or 低 (below it) goes: (x, baseline, word). A word that would leave
    the plot goes to the other side of its point."""
    above, below = y - 10, y + 20
    if status == _HIGH:
        return x, (above if above >= top - 2 else below), "高"
    return x, (below if below <= bottom + 4 else above), "低"


def _markers(marks: list[tuple[float, float, str]], top: float, bottom: float) -> list[str]:
    """A triangle at every point outside the range and 高/低 beside it, except where that word would
    cover one already written (close visits): the triangle still marks the point."""
    out, placed = [], []
    for x, y, status in marks:
        out.append(_triangle(x, y, status))
        wx, wy, word = _word(x, y, status, top, bottom)
        if all(abs(wx - px) >= 14 or abs(wy - py) >= 14 for px, py in placed):
            placed.append((wx, wy))
            out.append(
                f'<text x="{_num(wx)}" y="{_num(wy)}" text-anchor="middle" font-size="13" font-weight="bold" '
                f'fill="{_WARN}">{word}</text>'
            )
    return out


def _finite(points: Iterable[tuple[dt.date, float]]) -> list[tuple[dt.date, float]]:
    kept = [(day, float(value)) for day, value in points if math.isfinite(float(value))]
    return sorted(kept, key=lambda p: p[0])


def svg(series: Series, *, width: int = WIDTH, height: int = HEIGHT) -> str:
    """The series as an ``<svg role="img" aria-label="…">`` element; see the module docstring."""
    width, height = max(int(width), 160), max(int(height), 120)
    points = _finite(series.points)
    band = _band(series)
    aria = _label(series, points, band)
    out = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(aria)}" font-family="{_FONT}">',
        f'<text x="0" y="24" font-size="16" fill="{_INK}">{_text(series.label)}</text>',
    ]
    left, right = _LEFT, width - _RIGHT
    top, bottom = _HEADER, height - _FOOTER
    if not points:
        out.append(
            f'<text x="{width / 2:.1f}" y="{(top + bottom) / 2:.1f}" text-anchor="middle" font-size="16" '
            f'fill="{_AXIS}">暂无记录</text>'
        )
        out.append("</svg>")
        return "".join(out)

    last_day, last_value = points[-1]
    status = _status(last_value, band)
    off = status in (_HIGH, _LOW)
    unit = f'<tspan font-size="15" dx="4">{_text(series.unit)}</tspan>' if series.unit else ""
    flag = (
        f'<tspan font-size="15" font-weight="bold" dx="6">{"偏高" if status == _HIGH else "偏低"}</tspan>'
        if off
        else ""
    )
    out.append(
        f'<text x="{width}" y="26" text-anchor="end" fill="{_WARN if off else _INK}">'
        f'<tspan font-size="24" font-weight="bold">{_text(_fmt(last_value))}</tspan>{unit}{flag}</text>'
    )

    # Layout runs on values scaled by 2**-shift so that no sum or span can overflow.
    values = [v for _, v in points] + (list(band) if band else [])
    biggest = max(abs(v) for v in values)
    shift = max(0, math.frexp(biggest)[1] - 900) if biggest > 0 else 0
    scaled = [math.ldexp(v, -shift) for _, v in points]
    sband = (math.ldexp(band[0], -shift), math.ldexp(band[1], -shift)) if band else None
    lo, hi = min(scaled + list(sband or ())), max(scaled + list(sband or ()))
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        mid = lo / 2 + hi / 2
        pad = max(abs(mid) * 0.1, 1.0)
        lo, hi = mid - pad, mid + pad
    else:  # room above the highest point for 高 when it is high, below the lowest for 低 when it is low
        statuses = {_status(v, band) for _, v in points}
        room_top, room_bottom = (22 if _HIGH in statuses else 8), (22 if _LOW in statuses else 8)
        inner = max(bottom - top - room_top - room_bottom, (bottom - top) / 2)
        span = hi - lo
        lo, hi = lo - span * room_bottom / inner, hi + span * room_top / inner
    lo, hi, ticks, decimals = _ticks(lo, hi)

    def y_of(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (bottom - top)

    first_day = points[0][0]
    days = (last_day - first_day).days

    def x_of(day: dt.date) -> float:
        if days == 0:
            return (left + right) / 2
        return left + _INSET + (day - first_day).days / days * (right - left - 2 * _INSET)

    if band is not None and sband is not None:
        y_hi, y_lo = y_of(sband[1]), y_of(sband[0])
        out.append(
            f'<rect x="{left}" y="{_num(y_hi)}" width="{right - left}" height="{_num(max(y_lo - y_hi, 1.0))}" '
            f'fill="{_BAND_FILL}"/>'
        )
        for y in (y_hi, y_lo):
            out.append(
                f'<line x1="{left}" y1="{_num(y)}" x2="{right}" y2="{_num(y)}" stroke="{_BAND_EDGE}" '
                f'stroke-width="1" stroke-dasharray="4 3"/>'
            )
        label_hi, label_lo = y_hi + 4.5, y_lo + 4.5
        if label_lo - label_hi < 13:  # keep the two bounds apart when the range is thin on this axis
            mid = (label_hi + label_lo) / 2
            label_hi, label_lo = mid - 6.5, mid + 6.5
        for y, v in ((label_hi, band[1]), (label_lo, band[0])):
            out.append(
                f'<text x="{right + 4}" y="{_num(y)}" font-size="12" fill="{_BAND_TEXT}">{_text(_fmt(v))}</text>'
            )

    for t in ticks:
        y = y_of(t)
        out.append(f'<line x1="{left}" y1="{_num(y)}" x2="{right}" y2="{_num(y)}" stroke="{_GRID}" stroke-width="1"/>')
        out.append(
            f'<text x="{left - 6}" y="{_num(y + 4.5)}" text-anchor="end" font-size="13" fill="{_AXIS}">'
            f"{_text(_fmt(_unscale(t, shift), decimals if shift == 0 else None))}</text>"
        )
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#bdbdbd" stroke-width="1"/>')

    xy = [(x_of(day), y_of(v)) for (day, _), v in zip(points, scaled, strict=True)]
    if len(xy) > 1:
        out.append(
            f'<polyline points="{" ".join(f"{_num(x)},{_num(y)}" for x, y in xy)}" fill="none" '
            f'stroke="{_LINE}" stroke-width="2.5" stroke-linejoin="round" stroke-linecap="round"/>'
        )
    marks = []
    for (x, y), (_, v) in zip(xy, points, strict=True):
        point_status = _status(v, band)
        if point_status in (_HIGH, _LOW):
            marks.append((x, y, point_status))
        else:
            out.append(
                f'<circle cx="{_num(x)}" cy="{_num(y)}" r="4.5" fill="{_LINE}" stroke="#ffffff" stroke-width="1.5"/>'
            )
    out.extend(_markers(marks, top, bottom))  # drawn last, over the line and the dots

    short = (first_day.year, first_day.month) == (last_day.year, last_day.month)
    base = height - 8
    if days == 0:
        out.append(
            f'<text x="{_num((left + right) / 2)}" y="{base}" text-anchor="middle" font-size="13" fill="{_AXIS}">'
            f"{_text(_date_cn(last_day))}</text>"
        )
    else:
        out.append(
            f'<text x="{left}" y="{base}" font-size="13" fill="{_AXIS}">{_text(_date_label(first_day, short))}</text>'
        )
        out.append(
            f'<text x="{right}" y="{base}" text-anchor="end" font-size="13" fill="{_AXIS}">'
            f"{_text(_date_label(last_day, short))}</text>"
        )
    if band is not None:
        anchor, x = ("end", width) if days == 0 else ("middle", (left + right) / 2)
        out.append(
            f'<text x="{_num(x)}" y="{base}" text-anchor="{anchor}" font-size="12" fill="{_BAND_TEXT}">'
            f"绿色为参考范围</text>"
        )
    out.append("</svg>")
    return "".join(out)
