"""Labels, as HL7 DS4P does: at import every record, and every sensitive entry of the 个人基本信息表,
gets a :class:`Label` — confidentiality ``N``/``R`` and tags ``PSY``, ``TB`` (local), ``HIV``. Residents
see only ``N``. What cannot be classified (unknown record kind, unreadable ICD-10 code, unknown form
code or screening result) fails closed: ``R`` with no tag, :data:`RESTRICTED`. The copies a resident
sees leave out what the labels restrict (:func:`redact_payload`, :func:`redact_basic_info`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..codes import RECORD_KINDS
from ..config import PrivacySettings
from .sensitivity import (
    DEFAULT_POLICY,
    HIV,
    PSY,
    SENSITIVITIES,
    TB,
    _compiled,
    _fold,
    _joined_tags,
    _mentions_terms,
    codes_sensitivity,
    text_sensitivity,
)

_RESTRICT = "restrict"  # internal: R with no tag, for reasons other than an unreadable code

_KIND_TAGS = {"severe_mental_followup": PSY, "tuberculosis_followup": TB}

# 第1次产前检查: 梅毒血清学试验 / HIV抗体检测, 1阴性 2阳性; 家族史 3精神疾病史.
_HIV_KEYS = frozenset({"hiv_antibody", "HIV抗体检测"})
_SYPHILIS_KEYS = frozenset({"syphilis", "梅毒血清学试验"})
_SCREENING_KEYS = _HIV_KEYS | _SYPHILIS_KEYS
_POSITIVE = frozenset({"2", "阳性", "positive", "pos", "+"})
_NEGATIVE = frozenset({"1", "阴性", "negative", "neg", "-"})
_FAMILY_KEYS = frozenset({"family_history", "家族史"})
_PRENATAL_FAMILY_PSY = "3"
_MEDICATION_NAME_KEYS = ("name", "药物名称")

# 个人基本信息表 coded multi-selects (domain §2.2): field -> (highest valid code, code -> tag).
_BASIC_CODED: dict[str, tuple[int, dict[str, str]]] = {
    "past_illness": (13, {"8": PSY, "9": TB}),
    "family_history": (12, {"8": PSY, "9": TB}),
    "disability": (8, {"7": PSY}),
}
_BASIC_ALIASES = {"既往史": "past_illness", "家族史": "family_history", "残疾情况": "disability"}


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class Label:
    """HL7 confidentiality (``N`` normal, ``R`` restricted) and sensitivity tags. Any tag implies R."""

    confidentiality: str = "N"
    sensitivity: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensitivity", frozenset(self.sensitivity))
        tags_ok = self.sensitivity <= SENSITIVITIES and (not self.sensitivity or self.confidentiality == "R")
        if self.confidentiality not in ("N", "R") or not tags_ok:
            raise ValueError(f"invalid label {self.confidentiality!r} {sorted(self.sensitivity)}")

    @classmethod
    def of(cls, tags: Iterable[str]) -> Label:
        """No tags: N. Otherwise R with the known tags; any other tag (UNPARSEABLE) only forces R."""
        tags = frozenset(tags)
        return cls("R", tags & SENSITIVITIES) if tags else NORMAL

    @property
    def is_normal(self) -> bool:
        return self.confidentiality == "N"

    def join(self, other: Label) -> Label:
        """The stricter of both: R if either is R, the union of the tags."""
        restricted = "R" in (self.confidentiality, other.confidentiality)
        return Label("R" if restricted else "N", self.sensitivity | other.sensitivity)

    def to_json(self) -> dict[str, Any]:
        """Compact form stored inside a record's ciphertext: ``{"c":"R","s":["TB"]}``; ``{"c":"N"}``."""
        data: dict[str, Any] = {"c": self.confidentiality}
        if self.sensitivity:
            data["s"] = sorted(self.sensitivity)
        return data

    @classmethod
    def from_json(cls, raw: str | bytes | Mapping[str, Any]) -> Label:
        """Inverse of :meth:`to_json`. Anything malformed fails closed to :data:`RESTRICTED`."""
        try:
            data = json.loads(raw) if isinstance(raw, str | bytes) else raw
            tags = data.get("s", ())
            if isinstance(tags, str):
                return RESTRICTED
            return cls(data["c"], frozenset(tags))
        except (ValueError, TypeError, KeyError, AttributeError):
            return RESTRICTED


NORMAL = Label("N", frozenset())
RESTRICTED = Label("R", frozenset())

# --------------------------------------------------------------------------- records


def _path(parent: str, key: object) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _nodes(obj: object, path: str = "", key: object = None) -> Iterator[tuple[str, object, object]]:
    """Every value in nested dicts and lists, with its path (``a.b[0]``) and the dict key over it."""
    yield path, key, obj
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _nodes(v, _path(path, k), k)
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _nodes(v, f"{path}[{i}]")


def _scan(obj: object, keys: frozenset[str] = frozenset()) -> tuple[list[str], list[tuple[str, object]]]:
    """Every string in nested dicts and lists, and the values found under ``keys`` at any depth.
    Iterative: this runs on every imported record."""
    strings: list[str] = []
    keyed: list[tuple[str, object]] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            strings.append(o)
        elif isinstance(o, list | tuple):
            stack.extend(o)
        elif o is None or isinstance(o, int | float):
            continue  # most leaves; skips the slower Mapping check below
        elif isinstance(o, Mapping):
            for k, v in o.items():
                if k in keys:
                    keyed.append((k, v))
                stack.append(v)
    return strings, keyed


_SCANNED_KEYS_JSON = tuple(json.dumps(k, ensure_ascii=False) for k in sorted(_SCREENING_KEYS | _FAMILY_KEYS))


def _may_need_scan(payload: Mapping[str, Any], policy: PrivacySettings, payload_json: str | None) -> bool:
    """A cheap, conservative test on the serialised payload: False only when no screening or
    family-history key and no term occurs anywhere in it (keys included), so the walk is skipped
    for the common clean record. Plain substring tests: a regex alternation over every position
    costs more than the whole record's encryption."""
    if payload_json is None or "\\u" in payload_json:  # must be ensure_ascii=False: no escapes
        try:
            payload_json = json.dumps(payload, ensure_ascii=False)
        except (TypeError, ValueError):
            return True
    return any(k in payload_json for k in _SCANNED_KEYS_JSON) or _mentions_terms(payload_json, policy)


def _text_tags(obj: object, policy: PrivacySettings) -> set[str]:
    """Tags of every string in nested dicts and lists."""
    return _joined_tags(_scan(obj)[0], policy)


def _screening(value: object) -> str:
    """``positive``, ``negative``, ``absent`` (not done) or ``unknown`` for a 1阴性/2阳性 result."""
    if isinstance(value, Mapping):
        value = value.get("code", value.get("result"))
    if value is None or value == "":
        return "absent"
    folded = _fold(str(value)).strip()
    return "positive" if folded in _POSITIVE else "negative" if folded in _NEGATIVE else "unknown"


def _form_codes(value: object) -> tuple[set[str], bool]:
    """Codes of a multi-select value (``"8"``, ``8``, ``"2,8"``, ``{"code": "8"}``, a list of these)
    and whether every part was a code."""
    if isinstance(value, bool):
        return set(), False
    if isinstance(value, int):
        return {str(value)}, True
    if isinstance(value, str):
        if value.isdecimal():  # the usual single code, without the split below
            return {str(int(value))}, True
        parts = [p for p in re.split(r"[,，/、;；\s]+", value) if p]
        return {str(int(p)) for p in parts if p.isdecimal()}, all(p.isdecimal() for p in parts)
    if isinstance(value, Mapping):
        return _form_codes(value["code"]) if "code" in value else (set(), False)
    if isinstance(value, list | tuple):
        parts = [_form_codes(item) for item in value]
        return set().union(*(codes for codes, _ in parts)), all(clean for _, clean in parts)
    return set(), value is None


def label_record(
    kind: str,
    diagnosis_codes: Iterable[object] | None,
    payload: Mapping[str, Any] | None,
    policy: PrivacySettings = DEFAULT_POLICY,
    *,
    payload_json: str | None = None,
) -> Label:
    """The record's label from its kind, ICD-10 codes, in-form codes and free text.

    A positive HIV antibody result gives R + HIV, a positive syphilis result R (no tag), a result
    that is neither 1/阴性 nor 2/阳性 R; a negative one leaves the label alone (the fields are
    removed from what the resident sees by :func:`redact_payload` in every case). Screening keys
    are looked for in every kind's payload, at any depth. ``payload_json``, when the caller has
    already serialised the payload (for encryption), saves serialising it again.
    """
    if kind not in RECORD_KINDS or not isinstance(payload, Mapping | None):
        return RESTRICTED
    payload = payload or {}
    tags = set(codes_sensitivity(diagnosis_codes, policy))
    if kind in _KIND_TAGS:
        tags.add(_KIND_TAGS[kind])
    if not _may_need_scan(payload, policy, payload_json):
        return Label.of(tags)
    strings, keyed = _scan(payload, _SCREENING_KEYS | _FAMILY_KEYS)
    for key, value in keyed:
        result = _screening(value) if key in _SCREENING_KEYS else "absent"
        if result == "positive":
            tags.add(HIV if key in _HIV_KEYS else _RESTRICT)
        elif result == "unknown":
            tags.add(_RESTRICT)
        if kind == "prenatal_first" and key in _FAMILY_KEYS and _PRENATAL_FAMILY_PSY in _form_codes(value)[0]:
            tags.add(PSY)
    return Label.of(tags | _joined_tags(strings, policy))


def redact_payload(kind: str, payload: Mapping[str, Any] | None, policy: PrivacySettings = DEFAULT_POLICY) -> dict:
    """A copy for the resident: without the HIV/syphilis screening fields, medication entries
    (dicts whose ``name``/``药物名称`` names a sensitive drug), any string mentioning a sensitive
    term or drug, and — on prenatal_first — a 家族史 that includes 3 精神疾病史. Never mutates."""
    compiled = _compiled(policy)

    def sensitive(value: object) -> bool:
        if isinstance(value, str):
            return compiled.redact is not None and compiled.redact.search(_fold(value)) is not None
        if isinstance(value, Mapping) and compiled.drugs is not None:
            names = (value.get(k) for k in _MEDICATION_NAME_KEYS)
            return any(isinstance(n, str) and compiled.drugs.search(_fold(n)) for n in names)
        return False

    def drop_field(key: object, value: object) -> bool:
        if key in _SCREENING_KEYS or sensitive(value):
            return True
        return kind == "prenatal_first" and key in _FAMILY_KEYS and _PRENATAL_FAMILY_PSY in _form_codes(value)[0]

    def walk(obj: object) -> object:
        if isinstance(obj, Mapping):
            return {k: walk(v) for k, v in obj.items() if not drop_field(k, v)}
        if isinstance(obj, list | tuple):
            return [walk(v) for v in obj if not sensitive(v)]
        return obj

    return walk(payload or {})  # type: ignore[return-value]


# --------------------------------------------------------------------------- 个人基本信息表


def label_basic_info(
    basic_info: Mapping[str, Any] | None, policy: PrivacySettings = DEFAULT_POLICY
) -> dict[str, Label]:
    """Labels of the sensitive entries of a 个人基本信息表, by path; a path not returned is NORMAL.

    Paths: ``past_illness[1]``, ``family_history.father[0]``, ``disability[0]`` (an entry that is
    a single value rather than a list: ``disability``, ``family_history.mother``); other fields by
    the path of a string that mentions a term (``genetic_disease``, ``work_unit``). 既往史 8/9,
    家族史 8/9, 残疾 7 are tagged; an entry that is not a valid code of its list (including free
    text in a coded list) is R. The Chinese field names 既往史/家族史/残疾情况 are read the same way.
    """
    labels: dict[str, Label] = {}
    try:  # one cheap pass first: most forms mention no term at all
        has_terms = _mentions_terms(json.dumps(basic_info or {}, ensure_ascii=False), policy)
    except (TypeError, ValueError):
        has_terms = True

    def items(value: object, path: str, field: str) -> None:
        highest, tag_of = _BASIC_CODED[field]
        entries = enumerate(value) if isinstance(value, list | tuple) else [(None, value)]
        for i, item in entries:
            codes, clean = _form_codes(item)
            tags = {tag_of[c] for c in codes if c in tag_of}
            if has_terms:
                tags |= _text_tags(item, policy)
            if not (clean and all(1 <= int(c) <= highest for c in codes)):
                tags.add(_RESTRICT)
            if tags:
                labels[path if i is None else f"{path}[{i}]"] = Label.of(tags)

    for key, value in (basic_info or {}).items():
        field = _BASIC_ALIASES.get(key, key)
        if field == "family_history" and isinstance(value, Mapping):
            for relation, codes in value.items():
                items(codes, _path(str(key), relation), field)
        elif field in _BASIC_CODED:
            items(value, str(key), field)
        elif has_terms:
            for path, _, text in _nodes(value, str(key)):
                if tags := text_sensitivity(text, policy):
                    labels[path] = Label.of(tags)
    return labels


def redact_basic_info(basic_info: Mapping[str, Any] | None, policy: PrivacySettings = DEFAULT_POLICY) -> dict:
    """A copy without every entry :func:`label_basic_info` labels: list items are removed (a list may
    become empty), single values lose their key. The resident cannot tell an entry existed."""
    drop = set(label_basic_info(basic_info, policy))

    def walk(obj: object, path: str) -> object:
        if isinstance(obj, Mapping):
            kept = ((k, _path(path, k)) for k in obj)
            return {k: walk(obj[k], p) for k, p in kept if p not in drop}
        if isinstance(obj, list | tuple):
            kept_items = ((v, f"{path}[{i}]") for i, v in enumerate(obj))
            return [walk(v, p) for v, p in kept_items if p not in drop]
        return obj

    return walk(basic_info or {}, "")  # type: ignore[return-value]
