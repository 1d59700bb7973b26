"""The binding policy as pure functions: who may bind which archive, to which phone the code goes,
and how a typed name is compared. No I/O here, so every rule is tested exhaustively."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..privacy import age_on
from ..validators import normalize_name

RELATIONS = ("self", "child", "parent", "spouse", "other")
GUARDIAN_RELATIONS = ("child", "other")  # a parent or another guardian binds a young child
GUARDIAN_ONLY_UNDER = 14  # PIPL art. 31: under 14 only with a guardian
CODE_DIGITS = 6

RELATION_LABELS = {"self": "本人", "child": "子女", "parent": "父母", "spouse": "配偶", "other": "其他家人"}


@dataclass(frozen=True)
class Match:
    """Which of the archive's registered phones the typed phone is (``phone`` or ``contact_phone``)."""

    target: str


def names_match(typed: str, registered: str | None) -> bool:
    """Equal after NFKC, without spaces, with one form of the middle dot; compared in constant time."""
    a, b = normalize_name(typed).encode(), normalize_name(registered or "").encode()
    return bool(b) and hmac.compare_digest(a, b)


def phone_target(relation: str, typed_phone: str, fields: Mapping[str, Any]) -> str | None:
    """Where the code may go. Oneself: only the archive's own phone. Family: its own phone or its
    contact phone (联系人电话) — a child's archive lists the guardian, an elder's lists a child."""
    own, contact = fields.get("phone") or "", fields.get("contact_phone") or ""
    if own and hmac.compare_digest(own.encode(), typed_phone.encode()):
        return "phone"
    if relation != "self" and contact and hmac.compare_digest(contact.encode(), typed_phone.encode()):
        return "contact_phone"
    return None


def match(
    fields: Mapping[str, Any], *, name: str, phone: str, relation: str, id_number: str | None, archive_no: str | None
) -> Match | None:
    """The archive matches when the typed identifier is its own, the name is its name and the phone
    one it registers for this relation; None otherwise (the caller answers all misses alike)."""
    if id_number is not None and fields.get("id_number") != id_number:
        return None  # a blind-index collision, or no such number
    if archive_no is not None and (fields.get("archive_no") != archive_no or fields.get("id_number")):
        return None  # the archive-number route is for newborns without an ID number only
    name_ok = names_match(name, fields.get("name"))
    target = phone_target(relation, phone, fields)
    return Match(target) if name_ok and target else None


def relation_allowed(relation: str, birth_date: date, today: date) -> bool:
    """Under 14 only through a guardian (关系“子女”或“其他家人”); 14 and older any relation."""
    return age_on(birth_date, today) >= GUARDIAN_ONLY_UNDER or relation in GUARDIAN_RELATIONS


def owner_relations(birth_date: date, today: date) -> tuple[str, ...]:
    """Who speaks for an archive — is told of new bindings, sees them and may remove them: the
    person bound as oneself, or for a child under 14 (who cannot be) those bound as its parents
    (the archive is their 子女). Other family may bind a young child too, but do not own it."""
    return ("self",) if age_on(birth_date, today) >= GUARDIAN_ONLY_UNDER else ("child",)


def owner_may_remove(relation: str, owners: tuple[str, ...]) -> bool:
    """An owner may remove anyone else's binding of the archive except another owner's: whoever
    can read the registered phone could otherwise evict the person, or a parent, with one code.
    Two owners who do not know each other ask the institution."""
    return relation not in owners


def new_code() -> str:
    """Six digits from the CSPRNG (ASVS 6.5.3: 20 bits)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def cap_refusal(
    archive_id: int,
    bound: frozenset[int],
    identities_on_archive: int,
    *,
    archives_per_identity: int,
    identities_per_archive: int,
) -> str | None:
    """Why a person who has bound ``bound`` may not bind this archive too (which already has
    ``identities_on_archive`` identities), or None: ``already_bound``, ``identity_full``,
    ``archive_full``."""
    if archive_id in bound:
        return "already_bound"
    if len(bound) >= archives_per_identity:
        return "identity_full"
    if identities_on_archive >= identities_per_archive:
        return "archive_full"
    return None
