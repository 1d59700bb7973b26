"""What a question or an answer may be, and the question inside a text sent to the account. Pure.

Text is stored as typed (sealed) and escaped wherever it is shown: HTML or SQL in it is only text.
Line breaks and tabs are kept; any other control character is refused, so nothing invisible or
terminal-bending ends up in the inbox.
"""

from __future__ import annotations

import unicodedata

from ..errors import BadInput

QUESTION_MAX = 500  # characters, after trimming
ANSWER_MAX = 1000
PREFIX = "留言"
# What may separate 留言 from the question: 留言：… 留言 … 留言，…
SEPARATORS = " \t\n\u3000:：,，、"
_KEPT_CONTROLS = frozenset("\n\t")


def _clean(text: str, *, field: str, limit: int, what: str) -> str:
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise BadInput(field, f"请填写{what}（1–{limit} 字）")
    if any(unicodedata.category(c) == "Cc" and c not in _KEPT_CONTROLS for c in text):
        raise BadInput(field, f"{what}里有无法识别的字符，请删除后重新填写")
    if len(text) > limit:
        raise BadInput(field, f"{what}最多 {limit} 字，现在是 {len(text)} 字，请精简后再提交")
    return text


def clean_question(text: str) -> str:
    """The question as stored: trimmed, 1–500 characters; else ``BadInput("text")``."""
    return _clean(text, field="text", limit=QUESTION_MAX, what="问题")


def clean_answer(text: str) -> str:
    """The staff answer as stored: trimmed, 1–1000 characters; else ``BadInput("reply")``."""
    return _clean(text, field="reply", limit=ANSWER_MAX, what="回复")


def question_in_message(content: str) -> str | None:
    """The question in a text message: what follows 留言 and a separator (``留言：…``, ``留言 …``).
    None when the text is not a question — 留言 alone, or a word that merely starts with it
    (留言板…) — which then gets the account's how-to answer."""
    text = (content or "").strip()
    if not text.startswith(PREFIX):
        return None
    rest = text[len(PREFIX) :]
    if not rest or rest[0] not in SEPARATORS:
        return None
    return rest.lstrip(SEPARATORS) or None
