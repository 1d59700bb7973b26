"""Privacy policy (DESIGN.md): pure functions, no I/O, no resident-facing text.

* **Labels**, as HL7 DS4P does: at import every record, and every sensitive entry of the 个人基本信息表,
  gets a :class:`Label` — confidentiality ``N``/``R`` and tags ``PSY``, ``TB`` (local), ``HIV``. Residents
  see only ``N``. What cannot be classified (unknown record kind, unreadable ICD-10 code, unknown form
  code or screening result) fails closed: ``R`` with no tag, :data:`RESTRICTED`.
* **Visibility** of a whole archive, with a machine reason for staff: :func:`visibility`.
* **Masks** for identifiers on screens and in logs: :func:`mask_id_number` and friends.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from .codes import RECORD_KINDS
from .config import PrivacySettings

PSY, TB, HIV = "PSY", "TB", "HIV"
SENSITIVITIES = frozenset({PSY, TB, HIV})
# In a set returned by code_sensitivity/codes_sensitivity: "a code here could not be read". It is
# not a sensitivity; Label.of turns it into R with no tag.
UNPARSEABLE = "UNPARSEABLE"
_RESTRICT = "restrict"  # internal: R with no tag, for reasons other than an unreadable code
DEFAULT_POLICY = PrivacySettings()

_KIND_TAGS = {"severe_mental_followup": PSY, "tuberculosis_followup": TB}
_PROGRAMME_TAGS = {"severe_mental": PSY, "tuberculosis": TB, "hiv": HIV}

# F70–F79 (精神发育迟滞) count as PSY only beside a psychotic code; not a setting (yet).
_INTELLECTUAL = re.compile(r"F7\d")
_PSYCHOTIC = re.compile(r"F2\d|F31")

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


@dataclass(frozen=True)
class _Compiled:
    codes: tuple[tuple[str, str, str], ...]  # (tag, 3-character category, subcode prefix)
    terms: tuple[tuple[str, re.Pattern[str]], ...]
    redact: re.Pattern[str] | None  # every term and every sensitive drug
    drugs: re.Pattern[str] | None


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _term_pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """Substring match; a Latin term (HIV) must not touch other Latin letters ("archive")."""
    parts = []
    for term in terms:
        folded = _fold(term.strip())
        if not folded:
            continue
        part = re.escape(folded)
        if folded[0].isascii() and folded[0].isalpha():
            part = r"(?<![a-z])" + part
        if folded[-1].isascii() and folded[-1].isalpha():
            part += r"(?![a-z])"
        parts.append(part)
    return re.compile("|".join(parts)) if parts else None


@functools.lru_cache(maxsize=16)
def _compiled(policy: PrivacySettings) -> _Compiled:
    codes = []
    for tag, entries in ((PSY, policy.psy_codes), (TB, policy.tb_codes), (HIV, policy.hiv_codes)):
        for entry in entries:
            norm = normalise_icd10(entry)
            if norm is None:
                raise ValueError(f"[privacy] 中的 ICD-10 编码 {entry!r} 无法识别")
            category, _, sub = norm.partition(".")
            codes.append((tag, category, sub))
    by_tag = ((PSY, policy.psy_terms), (TB, policy.tb_terms), (HIV, policy.hiv_terms))
    terms = tuple((tag, p) for tag, words in by_tag if (p := _term_pattern(words)) is not None)
    every = (*policy.psy_terms, *policy.tb_terms, *policy.hiv_terms, *policy.sensitive_drugs)
    return _Compiled(tuple(codes), terms, _term_pattern(every), _term_pattern(policy.sensitive_drugs))


def check_policy(policy: PrivacySettings) -> None:
    """Raise ValueError naming a configured ICD-10 code that cannot be read (call at start-up)."""
    _compiled(policy)


# --------------------------------------------------------------------------- ICD-10 codes

# Category, optional dot, subcode (digits; X is the 国家临床版 placeholder as in I10.x00), then an
# optional 国家临床版/医保版 extension "x" + 3 digits (A15.000x001).
_ICD10 = re.compile(r"([A-Z]\d{2})\.?([0-9X]{0,4}?)(?:X\d{3})?")


def normalise_icd10(code: object) -> str | None:
    """``" a15.000x001 "`` -> ``"A15.000"``, ``"I10.x00x002"`` -> ``"I10"``, ``"F200"`` -> ``"F20.0"``.

    One code: NFKC, spaces removed, upper case, a trailing dagger/asterisk mark dropped. None for
    anything not ICD-10-shaped (including combinations like ``A17.0+G01*``; see code_sensitivity).
    """
    if not isinstance(code, str):
        return None
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", code)).upper().rstrip("*†")
    match = _ICD10.fullmatch(text)
    if match is None:
        return None
    category, sub = match.groups()
    if sub.startswith("X"):  # placeholder: no further subdivision
        if sub.strip("X0"):
            return None
        sub = ""
    elif "X" in sub:
        return None
    return f"{category}.{sub}" if sub else category


def _code_parts(code: object) -> list[object]:
    """A dagger/asterisk pair (``A17.0+G01*``, ``A17.0†G01*``) is read as its two codes."""
    if not isinstance(code, str):
        return [code]
    return [p for p in re.split(r"[+†]", code) if p.strip()] or [code]


def code_sensitivity(code: object, policy: PrivacySettings = DEFAULT_POLICY) -> frozenset[str]:
    """Tags of one diagnosis code; a config entry ``F06`` matches F06.x, ``P37.0`` matches P37.0 and
    P37.01 but not P37.1 or P37. None or blank is no code (empty set). A code that cannot be read
    yields ``{UNPARSEABLE}`` (possibly beside tags): the caller's label must be R."""
    if code is None or (isinstance(code, str) and not code.strip()):
        return frozenset()
    if isinstance(code, str):
        return _str_code_sensitivity(code, policy)
    return _uncached_code_sensitivity(code, policy)


@functools.lru_cache(maxsize=4096)
def _str_code_sensitivity(code: str, policy: PrivacySettings) -> frozenset[str]:
    # The same few hundred codes (I10, E11.9, …) recur on every import line.
    return _uncached_code_sensitivity(code, policy)


def _uncached_code_sensitivity(code: object, policy: PrivacySettings) -> frozenset[str]:
    compiled = _compiled(policy)
    tags: set[str] = set()
    for part in _code_parts(code):
        norm = normalise_icd10(part)
        if norm is None:
            tags.add(UNPARSEABLE)
            continue
        category, _, sub = norm.partition(".")
        tags.update(t for t, cat, prefix in compiled.codes if cat == category and sub.startswith(prefix))
    return frozenset(tags)


def codes_sensitivity(codes: Iterable[object] | None, policy: PrivacySettings = DEFAULT_POLICY) -> frozenset[str]:
    """Union over a record's codes (UNPARSEABLE included), plus PSY for F70–F79 beside a psychotic
    code (F2x or F31); G40 alone, like F70 alone, is not sensitive."""
    if codes is None:
        return frozenset()
    if isinstance(codes, str):
        codes = [codes]
    codes = tuple(codes)
    if all(isinstance(c, str) for c in codes):
        return _cached_codes_sensitivity(codes, policy)
    return _codes_sensitivity(codes, policy)


@functools.lru_cache(maxsize=4096)
def _cached_codes_sensitivity(codes: tuple[str, ...], policy: PrivacySettings) -> frozenset[str]:
    # Records repeat a few hundred code lists (("I10",), ("E11.9",), …): computed once each.
    return _codes_sensitivity(codes, policy)


def _codes_sensitivity(codes: tuple[object, ...], policy: PrivacySettings) -> frozenset[str]:
    tags: set[str] = set()
    categories: set[str] = set()
    for code in codes:
        tags |= code_sensitivity(code, policy)
        categories.update(n[:3] for part in _code_parts(code) if (n := normalise_icd10(part)))
    if any(_INTELLECTUAL.fullmatch(c) for c in categories) and any(_PSYCHOTIC.fullmatch(c) for c in categories):
        tags.add(PSY)
    return frozenset(tags)


def text_sensitivity(text: object, policy: PrivacySettings = DEFAULT_POLICY) -> frozenset[str]:
    """Tags whose free-text terms occur in ``text`` (NFKC, case-insensitive for Latin letters)."""
    if not isinstance(text, str) or not text:
        return frozenset()
    folded = _fold(text)
    return frozenset(tag for tag, pattern in _compiled(policy).terms if pattern.search(folded))


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


def _joined_tags(strings: list[str], policy: PrivacySettings) -> set[str]:
    """Tags of the terms in any of ``strings``, searched once over their joined, folded text."""
    if not strings:
        return set()
    joined = "\n".join(strings)
    if not _mentions_terms(joined, policy):
        return set()
    folded = _fold(joined)
    return {tag for tag, pattern in _compiled(policy).terms if pattern.search(folded)}


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


def _mentions_terms(text: str, policy: PrivacySettings) -> bool:
    """Whether any configured term occurs in ``text`` after NFKC (a superset of what the term
    patterns match). Plain substring tests, Latin terms tried in each case spelling, so the whole
    text need not be case-folded; a regex alternation over every position costs more than the
    record's encryption."""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return any(spelling in text for spelling in _term_spellings(policy))


@functools.lru_cache(maxsize=16)
def _term_spellings(policy: PrivacySettings) -> tuple[str, ...]:
    spellings: list[str] = []
    for term in (*policy.psy_terms, *policy.tb_terms, *policy.hiv_terms):
        folded = _fold(term.strip())
        if not folded:
            continue
        letters = sum(c.isascii() and c.isalpha() for c in folded)
        if letters > 6:  # too many spellings: fall back to a term that always forces the precise path
            return ("",)
        variants = [""]
        for c in folded:
            alts = {c, c.upper()} if c.isascii() and c.isalpha() else {c}
            variants = [v + a for v in variants for a in sorted(alts)]
        spellings += variants
    return tuple(spellings)


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


def archive_sensitivity(programmes: Iterable[str]) -> frozenset[str]:
    """severe_mental -> PSY, tuberculosis -> TB, hiv -> HIV; other programmes carry no tag."""
    return frozenset(_PROGRAMME_TAGS[p] for p in programmes if p in _PROGRAMME_TAGS)


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


# --------------------------------------------------------------------------- visibility

KEY_PROGRAMMES = frozenset({"hypertension", "diabetes"})
SENSITIVE_PROGRAMMES = frozenset(_PROGRAMME_TAGS)
# The order visibility() checks in; the first failing check is the reason.
# fmt: off
REASONS = ("county_closed", "status_closed", "sensitive_programme", "status_lost", "not_opened",
           "not_key_population")
# fmt: on


@dataclass(frozen=True, kw_only=True)
class VisibilityInput:
    """What decides whether an archive is shown. ``today`` is the Asia/Shanghai date.
    ``pregnant_or_postpartum`` None (the default) means: in the ``maternal`` programme."""

    county_open: bool
    phase: str  # "key_populations" | "all"
    open_to_resident: bool
    status: str  # "normal" | "lost" | "closed"
    birth_date: date
    programmes: frozenset[str]
    today: date
    pregnant_or_postpartum: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "programmes", frozenset(self.programmes))

    @property
    def is_pregnant_or_postpartum(self) -> bool:
        explicit = self.pregnant_or_postpartum
        return "maternal" in self.programmes if explicit is None else explicit


@dataclass(frozen=True)
class Decision:
    visible: bool
    reason: str  # "ok" or one of REASONS


def age_on(birth_date: date, today: date) -> int:
    """Completed years (周岁). Someone born on 29 February gains a year on 1 March in common years."""
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def in_key_population(v: VisibilityInput) -> bool:
    """65 or older, hypertension or type-2 diabetes managed, pregnant/postpartum, or under 7."""
    age = age_on(v.birth_date, v.today)
    return age >= 65 or 0 <= age < 7 or bool(v.programmes & KEY_PROGRAMMES) or v.is_pregnant_or_postpartum


def visibility(v: VisibilityInput) -> Decision:
    """Whether the resident may see the archive, and the first reason (in :data:`REASONS` order) if not.

    County-wide and terminal reasons come first, so a closed county or a closed archive never says
    "sensitive_programme" to staff; the sensitive programme comes before the reasons staff or time
    can lift (失访, the per-archive switch, the rollout phase), because it would still hide the
    archive after they are lifted. Any status but normal/lost counts as closed; any phase but
    ``all`` counts as ``key_populations``.
    """
    checks = (
        ("county_closed", v.county_open),
        ("status_closed", v.status in ("normal", "lost")),
        ("sensitive_programme", not v.programmes & SENSITIVE_PROGRAMMES),
        ("status_lost", v.status == "normal"),
        ("not_opened", v.open_to_resident),
        ("not_key_population", v.phase == "all" or in_key_population(v)),
    )
    for reason, passed in checks:
        if not passed:
            return Decision(False, reason)
    return Decision(True, "ok")


# --------------------------------------------------------------------------- masks


def _keep_ends(value: str, head: int, tail: int) -> str:
    """Keep ``head`` and ``tail`` characters; a value too short to hide anything is all stars."""
    head, tail = max(head, 0), max(tail, 0)
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[len(value) - tail :]


def mask_id_number(value: str | None, policy: PrivacySettings = DEFAULT_POLICY) -> str:
    """``11010519491231002X`` -> ``1***************2X`` (same length; 15-digit numbers too)."""
    return _keep_ends((value or "").strip().upper(), policy.mask_id_head, policy.mask_id_tail)


def mask_phone(value: str | None, policy: PrivacySettings = DEFAULT_POLICY) -> str:
    """``13800138000`` -> ``138****8000``."""
    return _keep_ends((value or "").strip(), policy.mask_phone_head, policy.mask_phone_tail)


def mask_name(value: str | None, policy: PrivacySettings = DEFAULT_POLICY) -> str:
    """``刘德华`` -> ``刘**``: the first character, one star per other character. A name no longer
    than the kept head (a one-character name) is all stars, so it is never shown whole."""
    return _keep_ends((value or "").strip(), policy.mask_name_head, 0)


_COMMUNITY = re.compile(r"([^\d]*?(?:街道|镇|乡))([^\d]{0,12}?(?:社区居委会|村委会|居委会|社区|村))?")


def mask_address(value: str | None, policy: PrivacySettings = DEFAULT_POLICY) -> str:
    """Cut to community level: through the first 街道/镇/乡 and the 社区/村/居委会 right after it,
    ``东昌府区古楼街道柳园社区3号楼2单元`` -> ``东昌府区古楼街道柳园社区``. Without one, the text before
    the first digit, at most 6 characters, with ``…`` when something was cut. ``policy`` is
    accepted for a uniform signature; no setting applies yet."""
    address = re.sub(r"\s+", "", value or "")
    match = _COMMUNITY.match(address)
    if match:
        return match.group(1) + (match.group(2) or "")
    kept = re.split(r"\d", address, maxsplit=1)[0][:6]
    return kept if kept == address else kept + "…"
