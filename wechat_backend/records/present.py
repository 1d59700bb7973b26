"""A service record as a resident reads it: the form's sections, each field with its label, a
display value in Chinese, unit, normal range and an out-of-range flag. Pure: no I/O.

Only what the field dictionary (``records.forms``) names is ever output. A payload key the
dictionary does not know is left out and reported in ``unknown_keys`` (as a path: ``foo``,
``lab.foo``, ``medications[].foo``); a code with no meaning in the form's table shows "—" and is
reported as ``key=code``. The caller has already applied the privacy policy
(``privacy.redact_payload`` / ``redact_basic_info``); strings are output as given, for the
templates to escape.

:func:`unknown_keys` is the cheap half for the import: one walk of the payload against a
precomputed set of known paths, without building the presentation.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .forms import BASIC_FORM, FORMS, Field, Form, Range
from .forms.base import PAIR_LABELS

DASH = "—"
FLAG_WORDS = {"high": "（偏高）", "low": "（偏低）"}
SUMMARY_SEPARATOR = " · "
NEXT_DUE = "next_due_date"  # the payload key of 下次随访日期 (forms.base.next_due_field)


@dataclass(frozen=True)
class Presented:
    """``sections``: ``[{"title", "fields": [{"label", "value", "unit", "reference", "flag",
    "prominent"}]}]``, only sections with something to show; ``summary``: one line for the record
    list; ``unknown_keys``: what the payload holds that the dictionary does not know (not shown)."""

    sections: list[dict[str, Any]]
    summary: str
    unknown_keys: frozenset[str]


@dataclass(frozen=True)
class _Known:
    leaves: frozenset[str]  # paths of values: "sbp", "lab.alt", "medications[].name"
    containers: frozenset[str]  # paths of objects and lists of objects: "lab", "medications", "medications[]"


def _known(form: Form) -> _Known:
    leaves = frozenset({f.key for f in form.fields()} | form.withheld)
    containers = set()
    for key in leaves:
        at = key.find(".")
        while at != -1:
            prefix = key[:at]
            containers.add(prefix)
            if prefix.endswith("[]"):
                containers.add(prefix[:-2])
            at = key.find(".", at + 1)
    return _Known(leaves, frozenset(containers))


_KNOWN = {kind: _known(form) for kind, form in FORMS.items()}
_KNOWN_BASIC = _known(BASIC_FORM)


# --------------------------------------------------------------------------- unknown keys


def unknown_keys(kind: str, payload: Mapping[str, Any] | None) -> frozenset[str]:
    """The paths of ``payload`` that the dictionary of ``kind`` does not know; empty for a kind
    residents never see (it has no dictionary, and nothing of it is shown anyway)."""
    known = _KNOWN.get(kind)
    if known is None or not payload:
        return frozenset()
    out: list[str] = []
    _unknown(known, payload, "", out)
    return frozenset(out) if out else _NOTHING


_SCALARS = frozenset({str, int, float, bool, type(None)})
_NOTHING: frozenset[str] = frozenset()


def _empty(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _unknown(known: _Known, obj: Mapping[str, Any], prefix: str, out: list[str]) -> None:
    """Append to ``out`` the top-most unknown paths under ``obj``: one walk, set lookups only."""
    leaves, containers = known.leaves, known.containers
    for key, value in obj.items():
        name = key if type(key) is str else str(key)
        path = prefix + name if prefix else name
        kind = type(value)
        if kind in _SCALARS:  # the usual case first, without the isinstance checks below
            if path not in leaves and not (path in containers and (value is None or value == "")):
                out.append(path)
        elif kind is list and not any(isinstance(item, dict) for item in value):  # a multi-select, a pair
            if path not in leaves and not (path in containers and not value):
                out.append(path)
        elif isinstance(value, Mapping):
            if path in containers:
                _unknown(known, value, path + ".", out)
            elif not (path in leaves and not value):
                out.append(path)
        elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            if path not in containers:
                out.append(path)
                continue
            for item in value:
                if isinstance(item, Mapping):
                    _unknown(known, item, path + "[].", out)
                else:  # a loose value among the list's objects
                    out.append(path)
        elif path not in leaves and not (path in containers and _empty(value)):
            out.append(path)


# --------------------------------------------------------------------------- presentation


def present(kind: str, payload: Mapping[str, Any] | None, *, next_due_date: str | dt.date | None = None) -> Presented:
    """The record for the resident. ``next_due_date`` (the record's own 下次随访日期) is shown in
    the form's 下次随访日期 row, on forms that have one, when the payload does not carry one
    itself. A kind with no dictionary shows nothing."""
    payload = payload or {}
    form = FORMS.get(kind)
    if form is None:
        return Presented([], "", frozenset(str(k) for k in payload))
    if next_due_date is not None and NEXT_DUE in _KNOWN[kind].leaves and _empty(payload.get(NEXT_DUE)):
        due = next_due_date.isoformat() if isinstance(next_due_date, dt.date) else next_due_date
        payload = {**payload, NEXT_DUE: due}
    return _present(form, _KNOWN[kind], payload)


def present_basic(basic_info: Mapping[str, Any] | None) -> Presented:
    """The 个人基本信息表 of an archive (``basic_info`` already through ``privacy.redact_basic_info``)."""
    return _present(BASIC_FORM, _KNOWN_BASIC, basic_info or {})


def _present(form: Form, known: _Known, payload: Mapping[str, Any]) -> Presented:
    found: list[str] = []
    _unknown(known, payload, "", found)
    unknown = set(found)
    sections = []
    for section in form.sections:
        fields: list[dict[str, Any]] = []
        groups_done: set[str] = set()
        for f in section.fields:
            group = f.list_prefix
            if group is None:
                shown = _shown_field(f, _get(payload, f.key), unknown)
                if shown is not None:
                    fields.append(shown)
            elif group not in groups_done:
                groups_done.add(group)
                members = [g for g in section.fields if g.list_prefix == group]
                fields.extend(_shown_items(members, _get(payload, group[:-2]), unknown))
        if fields:
            sections.append({"title": section.title, "fields": fields})
    return Presented(sections, _summary(form, payload), frozenset(unknown))


def _get(obj: object, path: str) -> object:
    for part in path.split("."):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def _shown_field(f: Field, raw: object, unknown: set[str]) -> dict[str, Any] | None:
    text, flag = _value(f, raw, f.key, unknown)
    if text is None:
        return None
    known = text != DASH
    unit = f.unit if known else ""
    words = FLAG_WORDS[flag] if flag else ""
    return {
        "label": f.label,
        "value": text + words,
        "unit": unit,
        "reference": _reference_text(f.reference) if known else "",
        "flag": flag,
        "prominent": f.prominent,
        # As a page shows it: the unit before the words, "152 mmHg（偏高）".
        "text": text + (_unit_gap(unit) + unit if unit else "") + words,
    }


def _shown_items(members: list[Field], items: object, unknown: set[str]) -> list[dict[str, Any]]:
    """One field per list item: "药物1" → "硝苯地平缓释片 每日2次 每次20mg". An item whose first
    field (the medicine, the illness) has an unknown code is left out whole."""
    if not isinstance(items, list):
        return []
    lead, rest = members[0], members[1:]
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        parts = []
        lead_text, _ = _value(lead, _get(item, _item_key(lead)), lead.key, unknown)
        if lead_text == DASH:
            continue
        if lead_text is not None:
            parts.append(lead_text + lead.unit)
        for f in rest:
            text, _ = _value(f, _get(item, _item_key(f)), f.key, unknown)
            if text is not None and text != DASH:
                prefix = f"{f.label}：" if f.item_prefix is None else f.item_prefix
                parts.append(prefix + text + f.unit)
        if parts:
            out.append(
                {
                    "label": f"{lead.label}{len(out) + 1}",
                    "value": " ".join(parts),
                    "unit": "",
                    "reference": "",
                    "flag": None,
                    "prominent": lead.prominent,
                    "text": " ".join(parts),
                }
            )
    return out


def _item_key(f: Field) -> str:
    return f.key.rpartition("[].")[2]


# --------------------------------------------------------------------------- values


def _value(f: Field, raw: object, path: str, unknown: set[str]) -> tuple[str | None, str | None]:
    """(display text without flag words, flag); text None when there is nothing to show, "—" when
    there is a value the dictionary cannot say (reported in ``unknown``)."""
    if _empty(raw) or (isinstance(raw, str) and not raw.strip()):
        return None, None
    if isinstance(raw, Mapping):  # an object where the form has a value: reported by the walk
        return None, None
    if f.codes is not None:
        return _coded(f.codes, raw, path, unknown), None
    if isinstance(raw, list):
        return _list_value(f, raw, path, unknown)
    number = _number(raw)
    if number is not None and not math.isfinite(number):
        unknown.add(f"{path}={raw}")
        return DASH, None
    text = _scalar_text(raw)
    if text is None:
        unknown.add(path)
        return DASH, None
    reference = f.reference if _is_range(f.reference) else None
    return text, _flag(number, reference) if number is not None else None


def _coded(codes: Mapping[str, str], raw: object, path: str, unknown: set[str]) -> str:
    meanings = []
    for part in _code_parts(raw):
        meaning = _meaning(codes, part)
        if meaning is None:
            unknown.add(f"{path}={part}" if isinstance(part, str | int) else path)
        elif meaning not in meanings:
            meanings.append(meaning)
    return "、".join(meanings) if meanings else DASH


def _code_parts(raw: object) -> list[object]:
    if isinstance(raw, list):
        return [p for item in raw for p in _code_parts(item)]
    if isinstance(raw, str):
        text = raw.strip()
        if text in ("", "+", "++", "+++", "++++", "+-", "-", "±"):  # dipstick results are codes too
            return [text] if text else []
        for sep in (",", "，", "/", "、", ";", "；"):
            text = text.replace(sep, " ")
        return text.split()
    return [raw]


def _meaning(codes: Mapping[str, str], part: object) -> str | None:
    if isinstance(part, bool) or not isinstance(part, str | int):
        return None
    code = str(part)
    meaning = codes.get(code)
    if meaning is None and code.isdecimal():
        meaning = codes.get(str(int(code)))  # "02" for a table written "2"
    return meaning


def _list_value(f: Field, raw: list[object], path: str, unknown: set[str]) -> tuple[str | None, str | None]:
    if _is_pair(f.reference):
        numbers = [_number(v) for v in raw]
        if len(raw) != len(f.reference) or any(n is None or not math.isfinite(n) for n in numbers):
            unknown.add(path)
            return DASH, None
        flags = [_flag(n, r) for n, r in zip(numbers, f.reference, strict=True)]  # type: ignore[arg-type]
        flag = "high" if "high" in flags else ("low" if "low" in flags else None)
        return "/".join(_scalar_text(v) or "" for v in raw), flag
    texts = []
    for item in raw:
        text = None if isinstance(item, list | Mapping) else _scalar_text(item)
        if text is None:
            unknown.add(path)
        elif text.strip():
            texts.append(text)
    return ("、".join(texts) if texts else None), None


def _scalar_text(raw: object) -> str | None:
    if isinstance(raw, bool):
        return "是" if raw else "否"
    if isinstance(raw, int | float):
        return _number_text(raw)
    if isinstance(raw, str):
        return raw
    return None


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            return None
    return None


def _number_text(x: float) -> str:
    return str(x)  # 36.5, 5.0 (a 视力 of 5.0 keeps its decimal), 152


def _is_range(reference: object) -> bool:
    return isinstance(reference, tuple) and len(reference) == 2 and not isinstance(reference[0], tuple)


def _is_pair(reference: object) -> bool:
    return isinstance(reference, tuple) and bool(reference) and all(isinstance(r, tuple) for r in reference)


def _flag(number: float, reference: Range | None) -> str | None:
    if reference is None:
        return None
    low, high = reference
    if high is not None and number > high:
        return "high"
    if low is not None and number < low:
        return "low"
    return None


def _range_text(r: Range) -> str:
    low, high = r
    if low is not None and high is not None:
        return f"{_number_text(low)}–{_number_text(high)}"
    if high is not None:
        return f"≤{_number_text(high)}"
    return f"≥{_number_text(low)}" if low is not None else ""


def _reference_text(reference: object) -> str:
    if _is_range(reference):
        return _range_text(reference)  # type: ignore[arg-type]
    if _is_pair(reference):
        return "/".join(_range_text(r) for r in reference)  # type: ignore[union-attr]
    return ""


# --------------------------------------------------------------------------- summary


def _summary(form: Form, payload: Mapping[str, Any]) -> str:
    """One short line from the form's ``summary_keys``: "血压 152/95 mmHg · 控制不满意"."""
    sink: set[str] = set()  # unknowns are already reported by the sections
    parts = []
    for key in form.summary_keys:
        if "/" in key:
            part = _pair_summary(form, key, payload)
        else:
            f = form.field(key)
            text, _ = _value(f, _get(payload, key), key, sink) if f is not None else (None, None)
            if f is None or text is None or text == DASH:
                continue
            plain = f.codes is not None or (not f.unit and _number(_get(payload, key)) is None)
            part = text if plain else f"{f.label} {text}{_unit_gap(f.unit)}{f.unit}"
        if part:
            parts.append(part)
    return SUMMARY_SEPARATOR.join(parts)


def _pair_summary(form: Form, key: str, payload: Mapping[str, Any]) -> str | None:
    fields = [form.field(k) for k in key.split("/")]
    if any(f is None for f in fields):
        return None
    values = [_get(payload, f.key) for f in fields]  # type: ignore[union-attr]
    numbers = [_number(v) for v in values]
    if any(n is None or not math.isfinite(n) for n in numbers):
        return None
    first = fields[0]
    label = PAIR_LABELS.get(key, first.label)  # type: ignore[union-attr]
    text = "/".join(_scalar_text(v) or "" for v in values)
    return f"{label} {text}{_unit_gap(first.unit)}{first.unit}"  # type: ignore[union-attr]


def _unit_gap(unit: str) -> str:
    """A space before a Latin unit ("152 mmHg"), none before a Chinese one ("10+3周")."""
    return " " if unit[:1].isascii() and unit[:1].isalpha() else ""
