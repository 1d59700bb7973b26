"""The trend chart: a self-contained SVG that a strict Content-Security-Policy allows, that reads on a
375 px phone and that says the same thing without colour and to a screen reader."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wechat_backend.records.chart import svg
from wechat_backend.records.trends import Series

SBP = [128, 135, 152, 142, 131, 138, 86, 152]


def quarterly(values: list[float], start: dt.date = dt.date(2025, 1, 10)) -> tuple[tuple[dt.date, float], ...]:
    return tuple((start + dt.timedelta(days=91 * i), float(v)) for i, v in enumerate(values))


def sbp(values: list[float] = SBP, **kw) -> Series:
    return Series("sbp", "收缩压", "mmHg", (90.0, 139.0), kw.get("points") or quarterly(values))


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter("text")]


def assert_self_contained(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == "svg" and root.get("role") == "img" and root.get("aria-label")
    lowered = markup.lower()
    for forbidden in ("<script", "<style", "style=", "http", "href", "url(", "<image", "<foreignobject", " on"):
        assert forbidden not in lowered, forbidden
    return root


def test_the_chart_is_well_formed_and_needs_nothing_the_csp_forbids():
    root = assert_self_contained(svg(sbp()))
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("343", "180", "0 0 343 180")
    assert all(child.tag in {"text", "rect", "line", "polyline", "circle", "polygon"} for child in root)


def test_the_screen_reader_hears_the_latest_value_and_whether_it_is_in_range():
    label = ET.fromstring(svg(sbp())).get("aria-label")
    assert label.startswith("收缩压，最近一次 152 mmHg，高于参考范围")
    assert "90 至 139 mmHg" in label and "共 8 次记录" in label
    in_range = ET.fromstring(svg(sbp([150, 128]))).get("aria-label")
    assert in_range.startswith("收缩压，最近一次 128 mmHg，在参考范围内")
    low = ET.fromstring(svg(sbp([120, 85]))).get("aria-label")
    assert low.startswith("收缩压，最近一次 85 mmHg，低于参考范围")
    weight = Series("weight", "体重", "kg", None, quarterly([60.2, 61.45]))
    assert ET.fromstring(svg(weight)).get("aria-label").startswith("体重，最近一次 61.45 kg，")
    z = Series("weight_for_age_z", "年龄别体重 Z 评分", "", (-2.0, 2.0), quarterly([0.3, -0.53]))
    assert ET.fromstring(svg(z)).get("aria-label").startswith("年龄别体重 Z 评分，最近一次 -0.53，在参考范围内")


def test_the_latest_value_is_large_with_its_unit_and_flagged_in_words():
    root = ET.fromstring(svg(sbp()))
    value = next(t for t in root.iter("tspan") if t.text == "152")
    assert float(value.get("font-size")) >= 16 and value.get("font-weight") == "bold"
    assert "mmHg" in [t.text for t in root.iter("tspan")] and "偏高" in [t.text for t in root.iter("tspan")]
    assert all(float(t.get("font-size", "16")) >= 12 for t in [*root.iter("text"), *root.iter("tspan")])


def test_every_text_put_into_the_chart_is_escaped():
    s = Series("x", '<收缩压> & "左臂"', "<mm>", (90.0, 139.0), quarterly([120, 150]))
    markup = svg(s)
    root = assert_self_contained(markup)
    assert "&lt;收缩压&gt; &amp; &quot;左臂&quot;" in markup and "<mm>" not in markup
    assert '<收缩压> & "左臂"' in texts(root)
    assert root.get("aria-label").startswith('<收缩压> & "左臂"，最近一次 150 <mm>，高于参考范围')


def test_the_reference_band_is_shaded_green_and_its_bounds_written():
    root = ET.fromstring(svg(sbp()))
    (band,) = [r for r in root.iter("rect")]
    assert band.get("fill") == "#e3f2e1"
    assert {"139", "90", "绿色为参考范围"} <= set(texts(root))
    no_band = ET.fromstring(svg(Series("weight", "体重", "kg", None, quarterly([60, 61]))))
    assert list(no_band.iter("rect")) == [] and "绿色为参考范围" not in texts(no_band)


def test_points_outside_the_band_are_marked_by_shape_and_word_not_only_colour():
    root = ET.fromstring(svg(sbp()))
    words = texts(root)
    highs, lows = sum(v > 139 for v in SBP), sum(v < 90 for v in SBP)
    assert (words.count("高"), words.count("低")) == (highs, lows) == (3, 1)
    assert len(list(root.iter("polygon"))) == highs + lows
    assert len(list(root.iter("circle"))) == len(SBP) - highs - lows
    assert {p.get("fill") for p in root.iter("polygon")} == {"#c62828"}
    quiet = ET.fromstring(svg(sbp([120, 125, 130])))
    assert list(quiet.iter("polygon")) == [] and "高" not in texts(quiet) and "偏高" not in texts(quiet)


def test_close_visits_keep_every_triangle_but_never_stack_words():
    start = dt.date(2025, 1, 1)
    close = ((start, 120.0), *((start + dt.timedelta(days=300 + i), 150.0 + i) for i in range(4)), (start, 80.0))
    root = ET.fromstring(svg(sbp(points=close)))
    assert len(list(root.iter("polygon"))) == 5
    words = [(float(t.get("x")), float(t.get("y"))) for t in root.iter("text") if t.text in ("高", "低")]
    assert 2 <= len(words) < 5
    for i, (x, y) in enumerate(words):
        assert all(abs(x - x2) >= 14 or abs(y - y2) >= 14 for x2, y2 in words[i + 1 :])
        assert 44 <= y <= 150 + 6  # inside the plot: never over the value above or the dates below


def tick_labels(root: ET.Element) -> list[float]:
    return [
        float("".join(t.itertext()))
        for t in root.iter("text")
        if t.get("text-anchor") == "end" and float(t.get("x")) < 44  # left of the plot
    ]


@pytest.mark.parametrize(
    "values",
    [SBP, [72, 75, 71], [3.9, 13.5, 6.2], [0.4, -0.5], [47.9, 45.3, 48.7], [17.0, 17.0], [152], [1200, 1_000_000]],
)
def test_the_y_axis_has_three_to_five_round_ticks(values):
    ticks = tick_labels(ET.fromstring(svg(sbp(values))))
    assert 3 <= len(ticks) <= 5
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1
    (step,) = steps
    assert float(f"{step:e}".split("e")[0]) in (1.0, 2.0, 2.5, 5.0)


def test_first_and_last_dates_label_the_x_axis():
    words = texts(ET.fromstring(svg(sbp())))
    assert "2025-01" in words and "2026-10" in words
    same_month = Series("sbp", "收缩压", "mmHg", None, ((dt.date(2026, 3, 2), 130.0), (dt.date(2026, 3, 20), 126.0)))
    words = texts(ET.fromstring(svg(same_month)))
    assert "3月2日" in words and "3月20日" in words


def test_a_single_point_renders_as_a_dot_without_a_line():
    one = sbp(points=((dt.date(2026, 11, 3), 152.0),))
    root = assert_self_contained(svg(one))
    assert list(root.iter("polyline")) == [] and len(list(root.iter("polygon"))) == 1
    assert "2026年11月3日" in texts(root)
    assert root.get("aria-label").startswith("收缩压，最近一次 152 mmHg，高于参考范围")


def test_equal_values_render_on_a_flat_line():
    flat = Series("bmi", "体质指数", "kg/m²", None, quarterly([23.2] * 6))
    root = assert_self_contained(svg(flat))
    (line,) = root.iter("polyline")
    ys = {pair.split(",")[1] for pair in line.get("points").split()}
    assert len(ys) == 1
    assert 3 <= len(tick_labels(root)) <= 5
    same_day = Series("bmi", "体质指数", "kg/m²", (18.5, 23.9), ((dt.date(2026, 1, 1), 23.2),) * 3)
    assert_self_contained(svg(same_day))


def test_points_are_drawn_in_date_order_whatever_order_they_come_in():
    shuffled = sbp(points=tuple(reversed(quarterly([120, 130, 150]))))
    root = ET.fromstring(svg(shuffled))
    (line,) = root.iter("polyline")
    xs = [float(pair.split(",")[0]) for pair in line.get("points").split()]
    assert xs == sorted(xs)
    assert root.get("aria-label").startswith("收缩压，最近一次 150 mmHg")


def test_a_series_with_no_point_says_so():
    root = assert_self_contained(svg(Series("sbp", "收缩压", "mmHg", (90.0, 139.0), ())))
    assert "暂无记录" in texts(root) and root.get("aria-label") == "收缩压，暂无记录"


finite = st.floats(allow_nan=False, allow_infinity=False)
points = st.lists(st.tuples(st.dates(), finite), max_size=30)
bands = st.none() | st.tuples(finite, finite)


@settings(max_examples=300, deadline=None, database=None)
@given(points=points, band=bands, unit=st.sampled_from(["mmHg", "", "kg/m²", "<&>"]))
def test_any_finite_points_render_as_well_formed_self_contained_svg(points, band, unit):
    markup = svg(Series("sbp", "收缩压", unit, band, tuple(points)))
    root = assert_self_contained(markup)
    assert "nan" not in markup.lower()
    numbers = [float(v) for v in re.findall(r'\s(?:x|y|x1|x2|y1|y2|cx|cy|dx|width|height)="([^"]+)"', markup)]
    numbers += [float(v) for shape in re.findall(r'\spoints="([^"]+)"', markup) for v in re.split("[ ,]", shape)]
    assert all(-1e6 < v < 1e6 for v in numbers)  # every coordinate is finite and near the canvas
    assert len(list(root.iter("circle"))) + len(list(root.iter("polygon"))) == len(points)


@settings(max_examples=100, deadline=None, database=None)
@given(points=st.lists(st.tuples(st.dates(), st.floats(-1e4, 1e4)), min_size=1, max_size=12))
def test_realistic_values_get_three_to_five_ticks(points):
    root = ET.fromstring(svg(sbp(points=tuple(points))))
    assert 3 <= len(tick_labels(root)) <= 5
