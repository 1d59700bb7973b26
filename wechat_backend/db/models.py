"""Tables. Personal data lives only in ``sealed`` columns (SM4-GCM, see crypto.py).

In clear stay only what the system must filter or count on without decrypting: upstream ids and
versions, county and institution codes, status, the opening flag, key ids, truncated blind indexes,
and the dates that drive reminders — only those of records a resident may see (labelled N). No clear
column says which kind of record a row is or which diagnosis it carries, and nothing in clear touches
a sensitive programme: ``due_items.kind`` says "a follow-up / a prenatal visit is due", and is only
ever derived from records labelled N.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import JSON, TypeDecorator

from ..ids import new_public_id

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use an aware UTC datetime")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class County(Timestamps, Base):
    """县级参数: the opening switch and the rollout phase, switched off until staff turn them on."""

    __tablename__ = "counties"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    opening: Mapped[bool] = mapped_column(Boolean, default=False)
    phase: Mapped[str] = mapped_column(String(20), default="key_populations")


class Institution(Timestamps, Base):
    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    upstream_id: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    county_code: Mapped[str] = mapped_column(ForeignKey("counties.code"), index=True)
    consult_phone: Mapped[str | None] = mapped_column(String(40))
    address: Mapped[str | None] = mapped_column(String(200))


class Archive(Timestamps, Base):
    __tablename__ = "archives"
    # The statistics place each push by its archive: an index-only join (PostgreSQL) instead of
    # reading the wide rows (each carries its ciphertext). SQLite gets a plain index on id.
    __table_args__ = (Index("ix_archives_id_place", "id", postgresql_include=["county_code", "institution_code"]),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    upstream_id: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(BigInteger)
    county_code: Mapped[str] = mapped_column(String(6), index=True)
    institution_code: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(10))
    open_to_resident: Mapped[bool] = mapped_column(Boolean)
    completeness: Mapped[int | None] = mapped_column(Integer)
    # name, id_number, archive_no, gender, birth_date, phones, contact, addresses, programmes,
    # family_doctor, basic_info — one SM4-GCM ciphertext, associated data "archive:<upstream_id>".
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(16))
    # Truncated HMAC-SM3 blind indexes; bidx_fp names the key that made them (for rotation).
    id_bidx: Mapped[int | None] = mapped_column(BigInteger, index=True)
    archive_no_bidx: Mapped[int] = mapped_column(BigInteger, index=True)
    phone_bidx: Mapped[int | None] = mapped_column(BigInteger, index=True)
    contact_phone_bidx: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # Name and birth date together (staff find an archive by both when no number is at hand).
    name_birth_bidx: Mapped[int | None] = mapped_column(BigInteger, index=True)
    bidx_fp: Mapped[str] = mapped_column(String(16))
    # Staff's local decision on 是否开放给居民 (None: follow the upstream's ``open_to_resident``).
    # An import never writes these, so a later import does not undo the decision; see
    # ``staff/opening.py`` for how the two combine.
    open_override: Mapped[bool | None] = mapped_column(Boolean)
    open_override_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    open_override_by: Mapped[int | None] = mapped_column(Integer)  # staff.id
    # In one of the notice's key groups (0–6, 65+, pregnant/postpartum, hypertension, diabetes) as
    # of the last import or refresh; counted by the assessment's statistics. ``key_group_review_on``
    # is the next day an age boundary (7th or 65th birthday) changes it. Never a sensitive programme.
    key_group: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    key_group_review_on: Mapped[dt.date | None] = mapped_column(Date, index=True)


class ServiceRecord(Timestamps, Base):
    __tablename__ = "service_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    upstream_id: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(BigInteger)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id", ondelete="CASCADE"), index=True)
    # In clear only on records labelled N (what a resident may see): the cadence of a TB or
    # psychiatric follow-up would hint at the programme. Always inside ``sealed`` too.
    date: Mapped[dt.date | None] = mapped_column(Date)
    next_due_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    institution_code: Mapped[str | None] = mapped_column(String(32))
    # kind, doctor, diagnosis_codes, date, next_due_date, payload and the sensitivity label;
    # aad "record:<upstream_id>".
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(String(16))


class Identity(Timestamps, Base):
    """A WeChat identity: one row per (channel, openid); oa and mp rows share a unionid."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("channel", "openid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    channel: Mapped[str] = mapped_column(String(2))  # "oa" official account, "mp" mini-program
    openid: Mapped[str] = mapped_column(String(64))
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=False)
    subscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    scene_institution_code: Mapped[str | None] = mapped_column(String(32), index=True)


class Binding(Timestamps, Base):
    __tablename__ = "bindings"
    __table_args__ = (UniqueConstraint("identity_id", "archive_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id", ondelete="CASCADE"), index=True)
    relation: Mapped[str] = mapped_column(String(10))  # self, child, parent, spouse, other
    # The binder's private note (备注, e.g. 大宝), to tell two children apart; aad "binding:<public_id>".
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(16))


class Consent(Base):
    """The privacy notice an identity agreed to (PIPL art. 29: separate consent for health data)."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("identity_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(20))
    agreed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BindAttempt(Timestamps, Base):
    """One request to bind an archive: the code goes to a phone the archive registers.

    Only a keyed hash of the current code is kept. ``status``: ``sending`` (committed, the SMS not
    yet handed over), ``sent``, ``failed`` (the provider refused), ``verified``, ``locked`` (too
    many wrong codes). ``target`` says which registered phone got the code: ``phone`` or
    ``contact_phone``.
    """

    __tablename__ = "bind_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id", ondelete="CASCADE"), index=True)
    relation: Mapped[str] = mapped_column(String(10))
    target: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(10))
    code_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    code_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    sends: Mapped[int] = mapped_column(Integer, default=0)
    last_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(20))  # the SMS provider's result


class Staff(Timestamps, Base):
    """A staff member of the city, a county or an institution. Name and phone are sealed (aad
    ``staff:<public_id>``); the phone is found by its blind index. ``identity_id`` is the WeChat
    identity linked once by an SMS code to the staff phone; ``sms_verified_at`` is the last time a
    code was verified (a staff session needs one at most 12 hours old)."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    role: Mapped[str] = mapped_column(String(20))  # city, county, institution
    county_code: Mapped[str | None] = mapped_column(String(6))
    institution_code: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # {"name", "phone"}
    key_id: Mapped[str] = mapped_column(String(16))
    phone_bidx: Mapped[int] = mapped_column(BigInteger, index=True)
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("identities.id", ondelete="SET NULL"), unique=True, nullable=True
    )
    linked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sms_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Notification(Timestamps, Base):
    """Outbox of pushes: written in the transaction that causes them, sent later by the worker.
    ``status``: pending, sent, skipped (not following, refused, archive hidden since), dead (tries
    used up). ``priority`` 0 goes first (security alerts), 1 the rest."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_priority_due_at", "status", "priority", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    archive_id: Mapped[int | None] = mapped_column(ForeignKey("archives.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    dedup_key: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_errcode: Mapped[int | None] = mapped_column(Integer)
    msgid: Mapped[int | None] = mapped_column(BigInteger)  # the platform's id of the sent message
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary)  # aad "notification:<dedup_key>"
    key_id: Mapped[str | None] = mapped_column(String(16))


class DueItem(Base):
    """The next date an archive is due for a kind of reminder (``followup_due``, ``exam_due``,
    ``child_check_due``, ``prenatal_due``): kept at import from records labelled N and the birth
    date, so the daily scan reads an index range instead of every record. ``basis_on`` is the date
    of what set it (a record's date; the birth date for a schedule by age): a later one replaces it."""

    __tablename__ = "due_items"
    __table_args__ = (UniqueConstraint("archive_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    due_on: Mapped[dt.date] = mapped_column(Date, index=True)
    basis_on: Mapped[dt.date] = mapped_column(Date)


class NotifyMute(Base):
    """A kind of push one identity does not want for one archive (present = muted)."""

    __tablename__ = "notify_mutes"
    __table_args__ = (UniqueConstraint("identity_id", "archive_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"))
    archive_id: Mapped[int] = mapped_column(ForeignKey("archives.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))


class DataStep(Base):
    """A data migration that needs the keys (which migrations do not hold), done by ``db upgrade``
    after the schema: present once it finished for every row."""

    __tablename__ = "data_steps"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    done_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class DueScan(Base):
    """One row per day the due scan ran (or runs): the worker that inserts it runs the day's scan."""

    __tablename__ = "due_scans"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    queued: Mapped[int] = mapped_column(Integer, default=0)


class Feedback(Timestamps, Base):
    """A resident's question (留言) and its answer. It goes to the inbox of ``institution_code``
    (the archive's institution, else the one whose QR code the asker followed) or, when that is
    None, the city's; ``route`` says which (archive, qr, city). ``channel``: page or message (a
    text sent to the account). ``delivery``: how the answer reached the resident (custom, template,
    failed)."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_public_id)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    archive_id: Mapped[int | None] = mapped_column(ForeignKey("archives.id", ondelete="SET NULL"))
    county_code: Mapped[str | None] = mapped_column(String(6), index=True)
    institution_code: Mapped[str | None] = mapped_column(String(32), index=True)
    route: Mapped[str] = mapped_column(String(10), default="city")
    channel: Mapped[str] = mapped_column(String(10), default="page")
    status: Mapped[str] = mapped_column(String(10), default="open")  # open answered closed
    sealed: Mapped[bytes] = mapped_column(LargeBinary)  # text and reply; aad "feedback:<public_id>"
    key_id: Mapped[str] = mapped_column(String(16))
    replied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    replied_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    delivery: Mapped[str | None] = mapped_column(String(12))


class ArchiveCount(Base):
    """Stock figures per institution, kept current at import and on every change that moves
    them (``stats/tally.py``): archives, key-group archives, opened (是否开放给居民 on and status
    正常; the county switch is applied when read) and bound among opened."""

    __tablename__ = "archive_counts"

    county_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    archives: Mapped[int] = mapped_column(Integer, default=0)
    key_group: Mapped[int] = mapped_column(Integer, default=0)
    opened: Mapped[int] = mapped_column(Integer, default=0)
    bound: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StatSnapshot(Base):
    """The stock figures of one day per institution (the worker copies ``archive_counts`` once a
    day, with the county switch applied), so ``stats --to`` a past day reads that day's figures."""

    __tablename__ = "stat_snapshots"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    institution_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    archives: Mapped[int] = mapped_column(Integer, default=0)
    key_group: Mapped[int] = mapped_column(Integer, default=0)
    opened: Mapped[int] = mapped_column(Integer, default=0)
    bound: Mapped[int] = mapped_column(Integer, default=0)


class ReaderDay(Base):
    """A resident identity that read an archive of the institution on that day (Asia/Shanghai),
    written with the ``archive_read`` audit row (``stats/readers.py``) and filled from the audit log
    by the 0006 backfill: the statistics count distinct readers here, not in the audit log."""

    __tablename__ = "reader_days"
    # Per county: an index-only range scan (PostgreSQL) that can still limit to some institutions.
    __table_args__ = (
        Index(
            "ix_reader_days_county_code_day",
            "county_code",
            "day",
            postgresql_include=["institution_code", "identity_id"],
        ),
    )

    institution_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6))


class QrCode(Base):
    """An institution's permanent QR code (QR_LIMIT_STR_SCENE, scene = the institution code):
    asked of WeChat once, then reused."""

    __tablename__ = "qr_codes"

    institution_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who did what to which archive, and why it was refused. Never personal data in clear: a
    reason that could say something about the archive or the person is sealed (see audit.py), and
    every row is chained by ``seq`` and ``mac`` once a sealer has taken it (see audit_chain.py)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_type: Mapped[str] = mapped_column(String(10))  # identity, staff, system
    actor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(40))
    archive_id: Mapped[int | None] = mapped_column(Integer, index=True)
    record_id: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[str] = mapped_column(String(10))  # ok, denied, failed
    reason: Mapped[str | None] = mapped_column(String(40))  # in clear only from audit.CLEAR_REASONS
    request_id: Mapped[str | None] = mapped_column(String(32))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    detail: Mapped[dict[str, object] | None] = mapped_column(JSON)
    # Any other reason, SM4-GCM under the key ring (fixed width; aad from audit.reason_aad).
    reason_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(16))
    # Set by the sealer, in the order it takes rows: 1, 2, 3 … and HMAC-SM3(prev mac || the row).
    seq: Mapped[int | None] = mapped_column(BigInteger, index=True, unique=True)
    mac: Mapped[bytes | None] = mapped_column(LargeBinary)


class AuditChainHead(Base):
    """The audit chain's one head row (id 1): the last sealed seq and mac. Sealers lock it."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    mac: Mapped[bytes | None] = mapped_column(LargeBinary)
    sealed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AuditCheckpoint(Base):
    """The chain's (seq, mac) at a moment, tagged with the audit key: rows up to ``seq`` may be
    deleted by retention and the rest still verify from here."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    mac: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    tag: Mapped[bytes] = mapped_column(LargeBinary)


__all__ = [
    "Archive",
    "ArchiveCount",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "BindAttempt",
    "Binding",
    "Consent",
    "County",
    "DataStep",
    "DueItem",
    "DueScan",
    "Feedback",
    "Identity",
    "Institution",
    "Notification",
    "NotifyMute",
    "QrCode",
    "ServiceRecord",
    "Staff",
    "StatSnapshot",
]
