"""The CPU stage of an import: parse, validate, label, encrypt and index one batch. No I/O.

It also counts, per record kind, the payload keys the field dictionary (``records.forms``) does
not know: residents never see them, and the count tells a vendor's mapping what is missing.

It runs in worker processes during a file import (the write stage and the database keep the
other core busy), or in the calling process for the few lines of an API call. What crosses back
to the writer is encrypted rows plus the handful of clear fields the write stage needs to apply the
version rule and resolve references — never a name, ID number or phone in clear.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..blind_index import archive_indexes
from ..config import IngestSettings, PrivacySettings, SecuritySettings
from ..crypto import KeyRing
from ..ids import new_public_id
from ..notify.kinds import ANNOUNCED_RECORDS
from ..notify.schedule import Due, due_from_birth, due_from_record
from ..privacy import label_basic_info, label_record
from ..records.present import unknown_keys
from ..stats.key_group import key_group
from .lines import ArchiveLine, InstitutionLine, LineError, RecordLine, parse_line

RawLine = tuple[int, bytes | None, int]  # line number, content (None: too long), bytes consumed


class ArchiveMeta(NamedTuple):
    upstream_id: str
    version: int
    institution_code: str
    archive_county: str  # the archive number's first six digits
    due: tuple[Due, ...] = ()  # the reminders the birth date sets (notify.schedule.due_from_birth)
    birth_date: dt.date | None = None


class RecordMeta(NamedTuple):
    upstream_id: str
    version: int
    archive_upstream_id: str
    # For reminders, in memory only (never stored in clear): the record's date, whether it is
    # announced to its residents (labelled N, a follow-up/exam/check/maternal visit), the reminder
    # it sets (labelled N only), and its public id.
    date: dt.date | None = None
    announce: bool = False
    due: Due | None = None
    public_id: str = ""
    # A record not labelled N (e.g. a follow-up corrected to carry a psychiatric code) closes the
    # reminder its kind would set: no reminder stays tied to a record a resident may not see.
    closes: str | None = None


@dataclass
class Prepared:
    """One batch after the CPU stage: (line number, clear metadata, encrypted row) per line."""

    institutions: list[tuple[int, InstitutionLine]] = field(default_factory=list)
    archives: list[tuple[int, ArchiveMeta, dict[str, Any]]] = field(default_factory=list)
    records: list[tuple[int, RecordMeta, dict[str, Any]]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0
    consumed: int = 0
    # kind -> payload path the field dictionary does not know -> records with it (never shown)
    unknown_keys: dict[str, dict[str, int]] = field(default_factory=dict)

    def count_unknown(self, kind: str, payload: dict[str, Any]) -> None:
        paths = unknown_keys(kind, payload)
        if paths:
            counts = self.unknown_keys.setdefault(kind, {})
            for path in paths:
                counts[path] = counts.get(path, 0) + 1

    def only(self, no: int) -> Prepared:
        """The same batch restricted to one line (to isolate a conflict)."""
        return Prepared(
            [x for x in self.institutions if x[0] == no],
            [x for x in self.archives if x[0] == no],
            [x for x in self.records if x[0] == no],
        )

    def line_numbers(self) -> list[int]:
        return sorted(x[0] for x in (*self.institutions, *self.archives, *self.records))


class Preparer:
    def __init__(self, keyring: KeyRing, privacy: PrivacySettings, settings: IngestSettings) -> None:
        self._keys = keyring
        self._privacy = privacy
        self._settings = settings

    def prepare(self, chunk: list[RawLine], today: dt.date) -> Prepared:
        out = Prepared()
        now = dt.datetime.now(dt.UTC)
        for no, raw, size in chunk:
            out.consumed += size
            if raw is not None and not raw.strip():
                continue
            out.lines += 1
            if raw is None:
                out.errors.append((no, f"该行超过 {self._settings.max_line_bytes} 字节"))
                continue
            try:
                line = parse_line(raw, today)
            except LineError as exc:
                out.errors.append((no, exc.reason))
                continue
            if isinstance(line, InstitutionLine):
                out.institutions.append((no, line))
            elif isinstance(line, ArchiveLine):
                birth = dt.date.fromisoformat(line.birth_date)
                meta = ArchiveMeta(
                    line.upstream_id,
                    line.version,
                    line.institution_code,
                    line.archive_no[:6],
                    tuple(due_from_birth(birth, today)),
                    birth,
                )
                out.archives.append((no, meta, self._archive_row(line, now, today)))
            else:
                row, normal = self._record_row(line, now)
                due = due_from_record(line.kind, line.date, line.next_due_date, line.payload)
                meta = RecordMeta(
                    line.upstream_id,
                    line.version,
                    line.archive_upstream_id,
                    line.date,
                    normal and line.kind in ANNOUNCED_RECORDS,
                    due if normal else None,
                    row["public_id"],
                    due[0] if due is not None and not normal else None,
                )
                out.records.append((no, meta, row))
                out.count_unknown(line.kind, line.payload)
        return out

    def _archive_row(self, x: ArchiveLine, now: dt.datetime, today: dt.date) -> dict[str, Any]:
        fields = x.personal_fields()
        member, review_on = key_group(fields, today)
        fields["labels"] = {k: v.to_json() for k, v in label_basic_info(x.basic_info, self._privacy).items()}
        return {
            "public_id": new_public_id(),
            "upstream_id": x.upstream_id,
            "version": x.version,
            "county_code": "",  # set by the write stage, from the institution
            "institution_code": x.institution_code,
            "status": x.status,
            "open_to_resident": x.open_to_resident,
            "completeness": x.completeness,
            "key_group": member,
            "key_group_review_on": review_on,
            "sealed": self._keys.seal(fields, f"archive:{x.upstream_id}"),
            "key_id": self._keys.active_key,
            **archive_indexes(self._keys, fields),
            "created_at": now,
            "updated_at": now,
        }

    def _record_row(self, x: RecordLine, now: dt.datetime) -> tuple[dict[str, Any], bool]:
        """The encrypted row, and whether its label is N. Only an N record keeps its dates in clear
        (a TB or psychiatric follow-up's cadence would hint at the programme); all keep them sealed."""
        # The payload is serialised once: for the label's text scan and inside the ciphertext.
        payload_json = json.dumps(x.payload, ensure_ascii=False, separators=(",", ":"))
        label = label_record(x.kind, x.diagnosis_codes, x.payload, self._privacy, payload_json=payload_json)
        due = x.next_due_date.isoformat() if x.next_due_date else None
        head = json.dumps(
            {
                "kind": x.kind,
                "doctor": x.doctor,
                "diagnosis_codes": list(x.diagnosis_codes),
                "label": label.to_json(),
                "date": x.date.isoformat(),
                "next_due_date": due,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        normal = label.is_normal
        return (
            {
                "public_id": new_public_id(),
                "upstream_id": x.upstream_id,
                "version": x.version,
                "archive_id": 0,  # set by the write stage, from archive_upstream_id
                "date": x.date if normal else None,
                "next_due_date": x.next_due_date if normal else None,
                "institution_code": x.institution_code,
                "sealed": self._keys.seal_json(f'{head[:-1]},"payload":{payload_json}}}', f"record:{x.upstream_id}"),
                "key_id": self._keys.active_key,
                "created_at": now,
                "updated_at": now,
            },
            normal,
        )


# --------------------------------------------------------------------------- worker processes

_worker: Preparer | None = None


def init_worker(security: SecuritySettings, privacy: PrivacySettings, settings: IngestSettings) -> None:
    """Process-pool initializer: each worker builds its own key ring once. Ctrl+C is the parent's
    to handle (it cancels the import); a worker dying of it would only print a traceback."""
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = Preparer(KeyRing.from_settings(security), privacy, settings)


def prepare_in_worker(chunk: list[RawLine], today: dt.date) -> Prepared:
    assert _worker is not None, "init_worker was not run"
    return _worker.prepare(chunk, today)
