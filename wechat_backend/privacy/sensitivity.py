"""Which sensitivities (PSY, TB, HIV) a diagnosis code, a text or an archive's programmes carry under
a :class:`~wechat_backend.config.PrivacySettings`, with the policy compiled once per settings."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import PrivacySettings

PSY, TB, HIV = "PSY", "TB", "HIV"
SENSITIVITIES = frozenset({PSY, TB, HIV})
# In a set returned by code_sensitivity/codes_sensitivity: "a code here could not be read". It is
# not a sensitivity; Label.of turns it into R with no tag.
UNPARSEABLE = "UNPARSEABLE"
DEFAULT_POLICY = PrivacySettings()

_PROGRAMME_TAGS = {"severe_mental": PSY, "tuberculosis": TB, "hiv": HIV}

# F70–F79 (精神发育迟滞) count as PSY only beside a psychotic code; not a setting (yet).
_INTELLECTUAL = re.compile(r"F7\d")
_PSYCHOTIC = re.compile(r"F2\d|F31")


# --------------------------------------------------------------------------- the compiled policy


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


# --------------------------------------------------------------------------- free text


def text_sensitivity(text: object, policy: PrivacySettings = DEFAULT_POLICY) -> frozenset[str]:
    """Tags whose free-text terms occur in ``text`` (NFKC, case-insensitive for Latin letters)."""
    if not isinstance(text, str) or not text:
        return frozenset()
    folded = _fold(text)
    return frozenset(tag for tag, pattern in _compiled(policy).terms if pattern.search(folded))


def _joined_tags(strings: list[str], policy: PrivacySettings) -> set[str]:
    """Tags of the terms in any of ``strings``, searched once over their joined, folded text."""
    if not strings:
        return set()
    joined = "\n".join(strings)
    if not _mentions_terms(joined, policy):
        return set()
    folded = _fold(joined)
    return {tag for tag, pattern in _compiled(policy).terms if pattern.search(folded)}


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


# --------------------------------------------------------------------------- programmes


def archive_sensitivity(programmes: Iterable[str]) -> frozenset[str]:
    """severe_mental -> PSY, tuberculosis -> TB, hiv -> HIV; other programmes carry no tag."""
    return frozenset(_PROGRAMME_TAGS[p] for p in programmes if p in _PROGRAMME_TAGS)
