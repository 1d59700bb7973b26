"""Masks for identifiers on screens and in logs: :func:`mask_id_number` and friends."""

from __future__ import annotations

import re

from ..config import PrivacySettings
from .sensitivity import DEFAULT_POLICY


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
