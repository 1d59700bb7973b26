"""What a push says: the template message's fields and link, from the row's sealed payload. Pure.

The payload (sealed in the outbox row) holds only ``archive`` and ``record`` public ids, ``date``,
``institution``, and ``name`` (None for the person's own archive, else the masked name); a
``feedback_answered`` push holds the question's public id (``feedback``) instead of an archive. Under the
2023 rules a template has no first line, remark or colour, and each value is at most 20
characters with no line break: longer values are cut (with "…").
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from typing import Any

from ..config import TemplateSpec
from .kinds import FEEDBACK_ANSWERED, RECORD_ADDED, WORDS

MAX_VALUE = 20


def fit(value: object, limit: int = MAX_VALUE) -> str:
    """One line, at most ``limit`` characters (code points; a cut never splits one)."""
    text = " ".join(str(value or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def date_words(value: str | None) -> str:
    """2026-12-08 → 2026年12月8日 (the date as residents write it)."""
    if not value:
        return ""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return ""
    return f"{day.year}年{day.month}月{day.day}日"


def values(kind: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """Our value names → text: ``kind``, ``date``, ``institution``, ``name``."""
    name = payload.get("name")
    return {
        "kind": WORDS.get(kind, ""),
        "date": date_words(payload.get("date")),
        "institution": str(payload.get("institution") or "建档机构"),
        "name": f"您的家人{name}" if name else "本人",
    }


def template_data(spec: TemplateSpec, kind: str, payload: Mapping[str, Any]) -> dict[str, str]:
    """The ``data`` of the template send: each template field from the value it maps to, fitted."""
    mine = values(kind, payload)
    return {field: fit(mine.get(source, "")) for field, source in spec.fields.items()}


def link(public_base_url: str, kind: str, payload: Mapping[str, Any]) -> str:
    """The page the push opens (a page without a session sends the browser through OAuth first):
    the new record, else the archive."""
    base = public_base_url.rstrip("/")
    if kind == FEEDBACK_ANSWERED and payload.get("feedback"):  # the answer page, for its asker only
        return f"{base}/r/feedback/{payload['feedback']}"
    if kind == RECORD_ADDED and payload.get("record"):
        return f"{base}/r/records/{payload['record']}"
    if payload.get("archive"):
        return f"{base}/r/archives/{payload['archive']}"
    return f"{base}/r/home"


def client_msg_id(dedup_key: str) -> str:
    """The platform drops a second message with the same id to the same person within 10 minutes:
    the row's dedup key, hashed to a short fixed width (it may hold an upstream id)."""
    return "wb" + hashlib.sha256(dedup_key.encode()).hexdigest()[:30]
