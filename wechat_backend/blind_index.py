"""Which archive fields get a blind index, and their values: one place for import and rotation."""

from __future__ import annotations

from typing import Any

from .crypto import KeyRing


def archive_indexes(keys: KeyRing, fields: dict[str, Any]) -> dict[str, Any]:
    """The blind-index columns of an archive row from its personal fields (clear, in memory only)."""

    def bidx(purpose: str, value: str | None) -> int | None:
        return keys.blind_index(purpose, value) if value else None

    return {
        "id_bidx": bidx("id_number", fields.get("id_number")),
        "archive_no_bidx": bidx("archive_no", fields.get("archive_no")),
        "phone_bidx": bidx("phone", fields.get("phone")),
        "contact_phone_bidx": bidx("phone", fields.get("contact_phone")),
        "name_birth_bidx": bidx("name_birth", name_birth(fields.get("name"), fields.get("birth_date"))),
        "bidx_fp": keys.blind_fingerprint,
    }


def name_birth(name: str | None, birth_date: str | None) -> str | None:
    """The value behind ``name_birth_bidx``: the name without any whitespace, and the ISO birth date."""
    if not name or not birth_date:
        return None
    return "".join(name.split()) + "|" + birth_date
