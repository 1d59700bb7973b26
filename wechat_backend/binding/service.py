"""Binding a WeChat identity to archives with an SMS code sent to a phone the archive registers.

``start`` finds the archive by the blind index of the ID number (or of the archive number, for a
newborn without one), checks name and phone, the opening policy, the relation and the limits,
commits an attempt holding only a keyed hash of the code, and then — outside any transaction —
hands the SMS to the provider. ``verify`` checks the code (five tries, five minutes, single use)
and creates the binding. Every refusal is audited with its precise reason; the person sees one of
a few fixed answers, so the form cannot tell who has an archive.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import Place, decide, not_open_message, open_fields, place_from, place_of, summary, with_place
from ..client_ip import rate_subject
from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..db.models import Archive, BindAttempt, Binding, Identity, Notification
from ..errors import (
    AppError,
    BadInput,
    Conflict,
    ConsentRequired,
    Mismatch,
    NotFound,
    NotOpen,
    RateLimited,
    Unavailable,
)
from ..ids import new_public_id
from ..notify import Outbox, Push
from ..notify.outbox import LEASE
from ..privacy import mask_name, mask_phone
from ..rate_limits import RateLimits, Window, WindowFull
from ..sms import BindCodeSms, SmsResult, SmsSender
from ..validators import InvalidValue, parse_archive_no, parse_id_number, parse_mobile, parse_name
from .consent import NOTICE_VERSION, ConsentService
from .notice import KIND as NOTICE
from .person import IDENTITIES, PERSON_IDS, CallerState, caller_state, person_identity_ids
from .rules import (
    RELATION_LABELS,
    RELATIONS,
    cap_refusal,
    match,
    names_match,
    new_code,
    owner_relations,
    relation_allowed,
)

log = logging.getLogger("wechat_backend.binding")

OnSms = Callable[[str, str], None]
"""Counts an SMS by ``(provider, outcome)`` (the metrics)."""


ARCHIVES = Archive.__table__
ATTEMPTS = BindAttempt.__table__
BINDINGS = Binding.__table__
LIVE = ("sending", "sent", "failed")  # an attempt a new code replaces

# The hot paths' statements, built once (see person.py). ``me``: the caller's identity id.
_CANDIDATES = with_place(
    select(func.count()).where(BINDINGS.c.archive_id == ARCHIVES.c.id).scalar_subquery().label("bound_identities")
)
FIND_BY_ID_NUMBER = _CANDIDATES.where(ARCHIVES.c.id_bidx == bindparam("bidx")).order_by(ARCHIVES.c.id)
FIND_BY_ARCHIVE_NO = _CANDIDATES.where(ARCHIVES.c.archive_no_bidx == bindparam("bidx")).order_by(ARCHIVES.c.id)
REPLACE_LIVE = (
    update(ATTEMPTS)
    .where(
        ATTEMPTS.c.identity_id == bindparam("me"),
        ATTEMPTS.c.archive_id == bindparam("archive"),
        ATTEMPTS.c.status.in_(LIVE),
    )
    .values(status="replaced", code_hash=None)
)
# Counting a try in one statement: concurrent guesses can never share a count (on PostgreSQL it
# also takes the row's lock; SQLite has one writer at a time anyway).
COUNT_TRY = (
    update(ATTEMPTS)
    .where(
        ATTEMPTS.c.public_id == bindparam("bind_id"),
        ATTEMPTS.c.identity_id == bindparam("me"),
        ATTEMPTS.c.status == "sent",
        ATTEMPTS.c.tries < bindparam("max_tries"),
    )
    .values(tries=ATTEMPTS.c.tries + 1)
    .returning(
        ATTEMPTS.c.id,
        ATTEMPTS.c.archive_id,
        ATTEMPTS.c.relation,
        ATTEMPTS.c.tries,
        ATTEMPTS.c.code_hash,
        ATTEMPTS.c.code_expires_at,
    )
)
ATTEMPT_STATE = select(ATTEMPTS.c.status, ATTEMPTS.c.code_expires_at, ATTEMPTS.c.tries).where(
    ATTEMPTS.c.public_id == bindparam("bind_id"), ATTEMPTS.c.identity_id == bindparam("me")
)
# FOR NO KEY UPDATE: it serialises verifies all the same, but does not block the KEY SHARE locks
# that foreign-key checks take — two people binding each other's archives at once (each telling
# the other's identity in the outbox) would otherwise deadlock.
LOCK_ARCHIVE = with_place().where(ARCHIVES.c.id == bindparam("archive")).with_for_update(of=ARCHIVES, key_share=True)
LOCK_PERSON = (
    select(IDENTITIES.c.id)
    .where(IDENTITIES.c.id.in_(PERSON_IDS))
    .order_by(IDENTITIES.c.id)
    .with_for_update(key_share=True)
)
# Every binding on the archive or of the person: the caps, and the owners to tell.
AROUND = select(BINDINGS.c.identity_id, BINDINGS.c.archive_id, BINDINGS.c.relation).where(
    (BINDINGS.c.archive_id == bindparam("archive")) | BINDINGS.c.identity_id.in_(bindparam("mine", expanding=True))
)
INSERT_ATTEMPT = insert(ATTEMPTS)
INSERT_BINDING = insert(BINDINGS)
FINISH = (
    update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("attempt")).values(status=bindparam("new_status"), code_hash=None)
)
_SENDING = ATTEMPTS.c.public_id == bindparam("bind_id"), ATTEMPTS.c.status == "sending"
MARK_SENT = update(ATTEMPTS).where(*_SENDING).values(status="sent", outcome=bindparam("new_outcome"))
MARK_FAILED = (
    update(ATTEMPTS).where(*_SENDING).values(status="failed", outcome=bindparam("new_outcome"), code_hash=None)
)

AttemptState = Literal["open", "expired", "done", "unknown"]

Refusal = tuple[str, AppError]
"""Why (for the audit) and what the person is told."""


@dataclass(frozen=True)
class Found:
    """A matched archive (a :func:`~wechat_backend.archives.with_place` row with ``bound_identities``),
    its decrypted fields, and which registered phone gets the code."""

    row: Row[Any]
    fields: dict[str, Any] = field(repr=False)
    target: str


@dataclass(frozen=True)
class BindRequest:
    name: str
    phone: str
    relation: str
    id_number: str | None = None
    archive_no: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who asks: the identity, and for the audit the request id and client address."""

    identity_id: int
    request_id: str | None = None
    client_ip: str | None = None


def parse_bind_request(body: Mapping[str, Any], today: dt.date) -> BindRequest:
    """Field checks before any lookup: a bad ID check digit is a ``bad_input`` on that field."""

    def text(field: str) -> str:
        value = body.get(field)
        if value is None or value == "":
            return ""
        if not isinstance(value, str) or len(value) > 64:
            raise BadInput(field)
        return value.strip()

    relation = text("relation") or "self"
    if relation not in RELATIONS:
        raise BadInput("relation", "请选择与档案主人的关系")
    try:
        name = parse_name(text("name"))
        id_raw, no_raw = text("id_number"), text("archive_no")
        if id_raw:
            id_number, archive_no = parse_id_number(id_raw, today=today), None
        elif no_raw:
            id_number, archive_no = None, parse_archive_no(no_raw)
        else:
            raise BadInput("id_number", "请填写身份证号（尚未办理身份证的新生儿可填写档案编号）")
        phone = parse_mobile(text("phone"))
    except InvalidValue as exc:
        raise BadInput(exc.field, exc.message) from None
    return BindRequest(name=name, phone=phone, relation=relation, id_number=id_number, archive_no=archive_no)


class BindingService:
    def __init__(
        self,
        settings: Settings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        limits: RateLimits,
        sms: SmsSender,
        consent: ConsentService,
        clock: Clock,
        on_sms: OnSms | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._settings = settings
        self._limits_cfg = settings.limits
        self._policy = settings.privacy
        self._prefix = settings.redis.key_prefix
        self._all_codes_key = f"{self._prefix}:rl:codes:all"
        self._sessions = sessions
        self._keys = keyring
        self._limits = limits
        self._sms = sms
        self._consent = consent
        self._clock = clock
        self._on_sms = on_sms
        self._outbox = outbox  # sends the owners' notices right after the commit
        # Decrypted and compared when no archive has the typed identifier, so an unknown ID costs
        # what a known one with a wrong name or phone does.
        decoy = {"name": "某某某", "phone": "10000000000", "contact_phone": "10000000001", "birth_date": "2000-01-01"}
        self._decoy = keyring.seal(decoy, "decoy")

    # ------------------------------------------------------------------ start / resend

    async def start_from(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`start` for a submitted form or JSON body. A field that fails its check is a
        failed attempt too: audited (which field, never its value) before the 400."""
        try:
            req = parse_bind_request(body, self._clock.today())
        except BadInput as exc:
            async with self._sessions.begin() as s:
                audit.by_identity(
                    s,
                    caller,
                    "bind_start",
                    result="failed",
                    reason="bad_input",
                    detail={"field": exc.extra.get("field")},
                )
            raise
        return await self.start(caller, req)

    async def start(self, caller: Caller, req: BindRequest) -> dict[str, Any]:
        # One session throughout: it keeps its connection across the two Redis checks, which costs
        # less than giving it back and taking another. Nothing is written (no lock is held) before
        # the last of them, and a Redis that stalls (1 s at most) stalls every request anyway:
        # the login sessions live there too.
        async with self._sessions() as s:
            state = await caller_state(s, caller.identity_id, NOTICE_VERSION)
            # Refusals that depend only on the caller come before any lookup, so they say nothing
            # about whether the typed details match an archive.
            refusal = self._caller_refusal(state) or await self._take_start(caller, state.person_key)
            if refusal is not None:
                await _refuse(s, caller, "bind_start", None, refusal)
            found, named = await self._find(s, caller, req)
            if found is None:
                archive_id, reason = named or (None, "unknown_identifier")
                mismatch = Mismatch(self._settings.service.consult_phone)  # one answer for every case
                await _refuse(s, caller, "bind_start", archive_id, (reason, mismatch), result="failed")
            archive_id, phone = found.row.id, found.fields[found.target]
            refusal = self._archive_refusal(req, found, state)
            if refusal is not None:
                await _refuse(s, caller, "bind_start", archive_id, refusal)
            refusal = await self._take_phone(phone)
            if refusal is not None:
                await _refuse(s, caller, "bind_code", archive_id, refusal)
            code, bind_id = new_code(), new_public_id()
            # A new code replaces any earlier one for this archive (checked here, in the writing
            # transaction, not at the lookup: another start may have written one since).
            await s.execute(REPLACE_LIVE, {"me": caller.identity_id, "archive": archive_id})
            await s.execute(
                INSERT_ATTEMPT,
                {
                    "public_id": bind_id,
                    "identity_id": caller.identity_id,
                    "archive_id": archive_id,
                    "relation": req.relation,
                    "target": found.target,
                    "sends": 1,
                    **self._armed(bind_id, code),
                },
            )
            audit.by_identity(
                s, caller, "bind_start", archive_id, detail={"relation": req.relation, "target": found.target}
            )
            await s.commit()
        await self._send(caller, bind_id, archive_id, phone, found.fields.get("name"), code)
        return self._started(bind_id, phone)

    async def resend(self, caller: Caller, bind_id: str) -> dict[str, Any]:
        async with self._sessions() as s:
            attempt = await self._attempt(s, caller, bind_id, "bind_resend")
            refusal: AppError | None = None
            if attempt.status not in self._resendable(attempt):
                refusal = _finished(attempt.status)
            archive = await s.get(Archive, attempt.archive_id)
            assert archive is not None
            fields = open_fields(self._keys, archive)
            if refusal is None:
                place = await place_of(s, archive)
                decision = decide(archive, fields, place, self._clock.today())
                if not decision.visible:  # closed since the code was asked for
                    refusal = NotOpen(not_open_message(place), consult_phone=place.consult_phone)
                    attempt.status, attempt.code_hash = "locked", None
            if refusal is not None:
                reason = refusal.code if not isinstance(refusal, NotOpen) else decision.reason
                audit.by_identity(s, caller, "bind_resend", archive.id, result="denied", reason=reason)
                await s.commit()
                raise refusal
            # A resend sends a code as a start does: it counts against the person's and the
            # address's allowances too, or resends would multiply them (30 starts × 10 codes).
            # All windows in one call, so a resend refused (say, within the phone's minute) costs
            # no allowance: pressing 重新发送 too early must not use up a day's binds.
            person = (await person_identity_ids(s, caller.identity_id))[0]
            phone = fields.get(attempt.target) or ""
            starts = self._start_windows(caller, person)
            limited = await self._take([*starts, *self._phone_windows(phone)], "bind resend")
            if limited is not None:
                full = getattr(limited[1], "window", None)
                await _refuse(s, caller, "bind_resend" if full in starts else "bind_code", archive.id, limited)
            code = new_code()
            row = await s.get(BindAttempt, attempt.id, with_for_update=True, populate_existing=True)
            if row is None or row.status not in self._resendable(row):
                raise _finished(row.status if row else "replaced")
            for key, value in self._armed(bind_id, code).items():
                setattr(row, key, value)
            row.sends = (row.sends or 0) + 1
            audit.by_identity(s, caller, "bind_resend", attempt.archive_id)
            await s.commit()
        await self._send(caller, bind_id, attempt.archive_id, phone, fields.get("name"), code)
        return self._started(bind_id, phone)

    def _resendable(self, attempt: BindAttempt) -> tuple[str, ...]:
        """``sent`` and ``failed``; also ``sending`` once it is clearly stuck (the outcome was never
        recorded, e.g. the database failed after the provider took the message)."""
        stuck_after = dt.timedelta(seconds=2 * self._settings.sms.timeout_seconds + 30)
        sent_at = attempt.last_sent_at
        if sent_at is not None and self._clock.now() - sent_at > stuck_after:
            return ("sent", "failed", "sending")
        return ("sent", "failed")

    # ------------------------------------------------------------------ the code page's link

    async def attempt_state(self, caller: Caller, bind_id: str, action: str = "bind_link") -> AttemptState:
        """Where the caller's bind link stands: ``open`` (the code page applies: a code out and
        still good, or one that a resend can replace), ``expired`` (the code ran out of time or
        tries, or a newer code replaced it), ``done`` (verified: the archive is bound) or
        ``unknown`` (no such attempt, or someone else's — the same answer, audited under ``action``)."""
        if not isinstance(bind_id, str) or not 1 <= len(bind_id) <= 24:
            return "unknown"
        async with self._sessions() as s:
            row = (await s.execute(ATTEMPT_STATE, {"bind_id": bind_id, "me": caller.identity_id})).first()
            if row is None:
                audit.by_identity(s, caller, action, result="denied", reason="unknown_bind_id")
                await s.commit()
                return "unknown"
        if row.status in ("sending", "failed"):
            return "open"
        if row.status == "sent":
            live = row.code_expires_at is not None and row.code_expires_at > self._clock.now()
            return "open" if live and row.tries < self._limits_cfg.code_max_tries else "expired"
        return "done" if row.status == "verified" else "expired"  # locked, replaced

    # ------------------------------------------------------------------ verify

    async def verify(self, caller: Caller, bind_id: str, code: str) -> dict[str, Any]:
        code = (code or "").strip() if isinstance(code, str) else ""
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            # Audited as every failed attempt is, but not counted as a try: it cannot be a guess,
            # and an elderly person's slip of the finger should not use up the code.
            async with self._sessions.begin() as s:
                audit.by_identity(
                    s, caller, "bind_verify", result="failed", reason="bad_input", detail={"field": "code"}
                )
            raise BadInput("code", "请输入短信中的6位数字验证码")
        if not isinstance(bind_id, str) or not 1 <= len(bind_id) <= 24:
            raise NotFound("未找到这次绑定，请重新开始")
        now = self._clock.now()
        max_tries = self._limits_cfg.code_max_tries
        async with self._sessions() as s:
            counted = (
                await s.execute(COUNT_TRY, {"bind_id": bind_id, "me": caller.identity_id, "max_tries": max_tries})
            ).first()
            if counted is None:  # not the caller's, finished, or used up: say which
                attempt = await self._attempt(s, caller, bind_id, "bind_verify")
                used_up = attempt.status == "sent"
                refusal = ("used_up", _locked()) if used_up else (attempt.status, _finished(attempt.status))
                await _refuse(s, caller, "bind_verify", attempt.archive_id, refusal)
            tries = counted.tries
            right = hmac.compare_digest(counted.code_hash or b"", self._code_hash(bind_id, code))
            expired = counted.code_expires_at is None or counted.code_expires_at <= now
            if right and not expired:
                return await self._bind(s, caller, counted)
            locked = tries >= max_tries
            if locked or expired:
                await self._finish_attempt(s, counted.id, "locked")
            reason = "expired" if expired else "locked" if locked else "wrong_code"
            audit.by_identity(s, caller, "bind_verify", counted.archive_id, result="failed", reason=reason)
            await s.commit()
        if expired:
            raise BadInput("code", "验证码已过期，请重新获取验证码")
        if locked:
            raise _locked()
        raise BadInput("code", f"验证码不正确，还可以再输入{max_tries - tries}次")

    async def _bind(self, s: AsyncSession, caller: Caller, attempt: Row[Any]) -> dict[str, Any]:
        # Row locks (PostgreSQL; SQLite has one writer anyway) so that two verifies at once cannot
        # both see room under the caps: the archive, then the person's identities, in id order.
        # The caps are counted after both locks are held, in a statement of their own.
        archive = (await s.execute(LOCK_ARCHIVE, {"archive": attempt.archive_id})).one()
        mine = sorted(set((await s.scalars(LOCK_PERSON, {"me": caller.identity_id})).all()) | {caller.identity_id})
        rows = (await s.execute(AROUND, {"archive": archive.id, "mine": mine})).all()
        fields = open_fields(self._keys, archive)
        place = place_from(archive)
        today = self._clock.today()
        decision = decide(archive, fields, place, today)
        refusal: Refusal | None = None
        if not decision.visible:  # closed meanwhile
            refusal = decision.reason, NotOpen(not_open_message(place), consult_phone=place.consult_phone)
        else:
            bound = frozenset(r.archive_id for r in rows if r.identity_id in mine)
            refusal = self._cap_refusal(archive.id, bound, sum(r.archive_id == archive.id for r in rows))
        if refusal is not None:
            await self._finish_attempt(s, attempt.id, "locked" if isinstance(refusal[1], NotOpen) else "sent")
            await _refuse(s, caller, "bind", archive.id, refusal)
        binding_id = new_public_id()
        try:
            await s.execute(
                INSERT_BINDING,
                {
                    "public_id": binding_id,
                    "identity_id": caller.identity_id,
                    "archive_id": archive.id,
                    "relation": attempt.relation,
                },
            )
        except IntegrityError:
            raise Conflict("您已绑定这份档案") from None
        await self._finish_attempt(s, attempt.id, "verified")
        audit.by_identity(s, caller, "bind", archive.id, detail={"relation": attempt.relation})
        owners = {r.identity_id for r in rows if r.archive_id == archive.id} - set(mine)
        relations = owner_relations(_birth(fields), today)
        owners = {r.identity_id for r in rows if r.identity_id in owners and r.relation in relations}
        notes = await self._tell_owners(s, caller, archive, sorted(owners), attempt.relation) if owners else []
        out = summary(archive, fields, place, decision, today, self._policy)
        out.update(binding_id=binding_id, relation=attempt.relation)
        await s.commit()
        for push in notes:
            await self._push(push)
        return out

    async def _finish_attempt(self, s: AsyncSession, attempt_id: int, status: str) -> None:
        """``verified`` or ``locked`` drop the code's hash; ``sent`` leaves the attempt as it is."""
        if status != "sent":
            await s.execute(FINISH, {"attempt": attempt_id, "new_status": status})

    # ------------------------------------------------------------------ lookups and checks

    def _caller_refusal(self, state: CallerState) -> Refusal | None:
        if not state.consented:
            return "consent_required", ConsentRequired()
        if len(state.bound) >= self._limits_cfg.archives_per_identity:
            return "identity_full", _cap_error("identity_full", self._limits_cfg)
        return None

    def _visible(self, row: Row[Any], fields: dict[str, Any]) -> bool:
        return decide(row, fields, place_from(row), self._clock.today()).visible

    def _archive_refusal(self, req: BindRequest, found: Found, state: CallerState) -> Refusal | None:
        """Why the matched archive cannot be bound by this caller, or None."""
        place = place_from(found.row)
        today = self._clock.today()
        decision = decide(found.row, found.fields, place, today)
        if not decision.visible:
            return decision.reason, NotOpen(not_open_message(place), consult_phone=place.consult_phone)
        if not relation_allowed(req.relation, _birth(found.fields), today):
            return "minor_needs_guardian", BadInput(
                "relation", "未满14周岁的儿童须由父母或其他监护人绑定，请选择关系“子女”"
            )
        return self._cap_refusal(found.row.id, state.bound, found.row.bound_identities)

    def _cap_refusal(self, archive_id: int, bound: frozenset[int], on_archive: int) -> Refusal | None:
        cfg = self._limits_cfg
        reason = cap_refusal(
            archive_id,
            bound,
            on_archive,
            archives_per_identity=cfg.archives_per_identity,
            identities_per_archive=cfg.identities_per_archive,
        )
        return (reason, _cap_error(reason, cfg)) if reason else None

    async def _find(
        self, s: AsyncSession, caller: Caller, req: BindRequest
    ) -> tuple[Found | None, tuple[int, str] | None]:
        """The archive the request names, with its fields and the phone the code may go to; when
        none matches, the id of the archive the typed identifier belongs to (for the audit)."""
        if req.id_number is not None:
            query, bidx = FIND_BY_ID_NUMBER, self._keys.blind_index("id_number", req.id_number)
        else:
            assert req.archive_no is not None
            query, bidx = FIND_BY_ARCHIVE_NO, self._keys.blind_index("archive_no", req.archive_no)
        found: Found | None = None
        named: tuple[int, str] | None = None
        # Every row of the index slot: a truncated blind index is shared by design (see
        # [security] blind_index_bits), and any LIMIT would hide a real resident's archive.
        candidates = (await s.execute(query, {"bidx": bidx, "me": caller.identity_id})).all()
        for row in candidates:
            fields = open_fields(self._keys, row)
            m = match(
                fields,
                name=req.name,
                phone=req.phone,
                relation=req.relation,
                id_number=req.id_number,
                archive_no=req.archive_no,
            )
            if m is not None and (
                found is None or (not self._visible(found.row, found.fields) and self._visible(row, fields))
            ):
                # One person may have two archives under one ID number (an old one closed after a
                # move): the one they can see wins, or the hidden one would answer not_open forever.
                found = Found(row, fields, m.target)
            elif _names_this(fields, req):
                named = (row.id, "phone_mismatch" if names_match(req.name, fields.get("name")) else "name_mismatch")
        if not candidates:
            decoy = {**self._keys.open(self._decoy, "decoy"), "id_number": req.id_number, "archive_no": None}
            match(
                decoy, name=req.name, phone=req.phone, relation=req.relation, id_number=req.id_number, archive_no=None
            )
            names_match(req.name, decoy["name"])
        return found, None if found else named

    async def _attempt(self, s: AsyncSession, caller: Caller, bind_id: str, action: str) -> BindAttempt:
        """The caller's own attempt; anyone else's ``bind_id`` is simply not found (and audited
        under ``action``)."""
        if not isinstance(bind_id, str) or not 1 <= len(bind_id) <= 24:
            raise NotFound("未找到这次绑定，请重新开始")
        attempt = (
            await s.scalars(
                select(BindAttempt).where(
                    BindAttempt.public_id == bind_id, BindAttempt.identity_id == caller.identity_id
                )
            )
        ).first()
        if attempt is None:
            audit.by_identity(s, caller, action, result="denied", reason="unknown_bind_id")
            await s.commit()
            raise NotFound("未找到这次绑定，请重新开始")
        return attempt

    # ------------------------------------------------------------------ codes and SMS

    def _code_hash(self, bind_id: str, code: str) -> bytes:
        return self._keys.mac("bind_code", f"{bind_id}:{code}")

    def _armed(self, bind_id: str, code: str) -> dict[str, Any]:
        """The columns of an attempt whose new code is about to be sent."""
        now = self._clock.now()
        return {
            "status": "sending",
            "code_hash": self._code_hash(bind_id, code),
            "code_expires_at": now + dt.timedelta(seconds=self._limits_cfg.code_ttl_seconds),
            "tries": 0,
            "last_sent_at": now,
        }

    async def _take_start(self, caller: Caller, person_key: int) -> Refusal | None:
        return await self._take(self._start_windows(caller, person_key), "bind start")

    async def _take_phone(self, phone: str) -> Refusal | None:
        return await self._take(self._phone_windows(phone), "bind code")

    def _start_windows(self, caller: Caller, person_key: int) -> list[Window]:
        """A start's (or resend's) allowances: the client address's and the person's."""
        cfg = self._limits_cfg
        return [
            Window(self._rl_key("ip", rate_subject(caller.client_ip or "-")), 3600, cfg.bind_starts_per_ip_hour),
            # Per person: identities linked by unionid share one allowance.
            Window(self._rl_key("identity", str(person_key)), 86400, cfg.bind_starts_per_identity_day),
        ]

    def _phone_windows(self, phone: str) -> list[Window]:
        """A code's limits: the phone's gap, hour and day, and the SMS budget over all phones."""
        cfg = self._limits_cfg
        key = self._rl_key("phone", phone)
        return [
            Window(key + ":gap", cfg.resend_after_seconds, 1),
            Window(key + ":hour", 3600, cfg.codes_per_phone_hour),
            Window(key + ":day", 86400, cfg.codes_per_phone_day),
            # Every phone together: the SMS budget, against bombing spread over many numbers.
            Window(self._all_codes_key, 86400, cfg.codes_per_day_total),
        ]

    async def _take(self, windows: list[Window], what: str) -> Refusal | None:
        """None when every window had room (the event is counted), else the limit's refusal."""
        try:
            await self._limits.take(windows, what)
        except WindowFull as exc:
            if exc.window.key != self._all_codes_key:
                return exc.code, exc
            log.error("SMS daily cap reached (%d codes in 24 h): bind codes are refused", exc.window.limit)
            return "daily_cap", RateLimited(exc.retry_after, "今天发送的验证码已达上限，请明天再试或联系建档机构")
        except AppError as exc:  # Redis unreachable
            return exc.code, exc
        return None

    async def _send(
        self, caller: Caller, bind_id: str, archive_id: int, phone: str, name: str | None, code: str
    ) -> None:
        """Hand the code to the provider (no transaction open), then record what it said."""
        minutes = max(1, self._limits_cfg.code_ttl_seconds // 60)
        try:
            result = await self._sms.send(phone, BindCodeSms(mask_name(name, self._policy), code, minutes))
        except Exception as exc:  # a provider bug must not leave the attempt "sending"
            log.error("sms provider %s raised %s", self._sms.provider, type(exc).__name__)
            result = SmsResult("error", "短信发送失败，请稍后再试")
        if self._on_sms is not None:
            self._on_sms(self._sms.provider, result.outcome)
        async with self._sessions.begin() as s:
            await s.execute(
                MARK_SENT if result.ok else MARK_FAILED, {"bind_id": bind_id, "new_outcome": result.outcome}
            )
            # Also when the attempt was replaced meanwhile: a code went out (or not) all the same.
            audit.by_identity(
                s,
                caller,
                "bind_code",
                archive_id,
                result="ok" if result.ok else "failed",
                reason=None if result.ok else result.outcome,
                detail={"provider": self._sms.provider, "provider_code": result.provider_code or None},
            )
        if result.ok:
            return
        raise Unavailable(result.message or "短信发送失败，请稍后再试")

    def _started(self, bind_id: str, phone: str) -> dict[str, Any]:
        return {
            "bind_id": bind_id,
            "phone": mask_phone(phone, self._policy),
            "expires_in": self._limits_cfg.code_ttl_seconds,
            "resend_after": self._limits_cfg.resend_after_seconds,
        }

    def _rl_key(self, kind: str, subject: str) -> str:
        """No phone, IP or id in clear in Redis: the subject is a keyed hash."""
        return f"{self._prefix}:rl:{kind}:{self._keys.mac('rate_limit', subject).hex()[:32]}"

    # ------------------------------------------------------------------ owners are told

    async def _tell_owners(
        self, s: AsyncSession, caller: Caller, archive: Row[Any], owner_ids: list[int], relation: str
    ) -> list[Push]:
        """An outbox row for each owner of this archive (other than the caller): the person bound
        as oneself, or a young child's guardians (``rules.owner_relations``)."""
        # Pushes go through the official account: to the owner's own oa identity, or the one
        # linked to their mini-program identity by unionid — and only while they follow it.
        rows = []
        for owner_id in owner_ids:
            linked = await person_identity_ids(s, owner_id)
            oa = (
                await s.execute(
                    select(Identity.id, Identity.openid).where(
                        Identity.id.in_(linked), Identity.channel == "oa", Identity.subscribed.is_(True)
                    )
                )
            ).first()
            if oa is not None:
                rows.append((oa.id, oa.openid))
        now = self._clock.now()
        payload = {"relation": relation}
        notes = []
        for owner_id, openid in rows:
            dedup = f"{NOTICE}:{archive.public_id}:{caller.identity_id}:{owner_id}:{int(now.timestamp())}"[:128]
            note = Notification(
                identity_id=owner_id,
                archive_id=archive.id,
                kind=NOTICE,
                dedup_key=dedup,
                status="pending",
                attempts=0,
                # Sent at once after the commit; the worker's turn comes if that never records.
                due_at=now + LEASE,
                sealed=self._keys.seal(payload, f"notification:{dedup}"),
                key_id=self._keys.active_key,
            )
            s.add(note)
            notes.append((note, openid))
        await s.flush()  # the rows' ids, for the pushes after the commit
        return [Push(id=note.id, kind=NOTICE, attempts=0, openid=openid, payload=payload) for note, openid in notes]

    async def _push(self, push: Push) -> None:
        if self._outbox is None:
            return
        try:
            await self._outbox.deliver(push)
        except Exception as exc:  # the row stays pending: the worker sends it
            log.warning("binding notice not recorded now (%s); left to the worker", type(exc).__name__)


def _names_this(fields: Mapping[str, Any], req: BindRequest) -> bool:
    if req.id_number is not None:
        return fields.get("id_number") == req.id_number
    return fields.get("archive_no") == req.archive_no


def _birth(fields: Mapping[str, Any]) -> dt.date:
    return dt.date.fromisoformat(fields["birth_date"])


async def archive_owner_relations(s: AsyncSession, keys: KeyRing, archive_id: int, today: dt.date) -> tuple[str, ...]:
    archive = await s.get(Archive, archive_id)
    return owner_relations(_birth(open_fields(keys, archive)), today) if archive else ("self",)


async def _refuse(
    s: AsyncSession, caller: Caller, action: str, archive_id: int | None, refusal: Refusal, *, result: str = "denied"
) -> NoReturn:
    """Audit a refusal with its precise reason, commit that row, and answer with the error."""
    audit.by_identity(s, caller, action, archive_id, result=result, reason=refusal[0])
    await s.commit()
    raise refusal[1]


def _cap_error(reason: str, cfg: Any) -> Conflict:
    if reason == "already_bound":
        return Conflict("您已绑定这份档案，可在“我的档案”中查看")
    if reason == "identity_full":
        return Conflict(f"每个微信最多绑定{cfg.archives_per_identity}份档案，请先解除不再需要的档案")
    return Conflict(f"这份档案已绑定{cfg.identities_per_archive}个微信，请档案本人解除不需要的绑定后再试")


def _locked() -> BadInput:
    return BadInput("code", "验证码错误次数过多，已失效，请重新获取验证码")


def _finished(status: str) -> AppError:
    if status == "verified":
        return Conflict("这次绑定已经完成，可在“我的档案”中查看")
    if status == "sending":
        return Conflict("验证码正在发送，请稍候")
    return BadInput("bind_id", "验证码已失效，请重新获取验证码")


def relation_label(relation: str) -> str:
    return RELATION_LABELS.get(relation, "家人")


__all__ = ["BindRequest", "BindingService", "Caller", "Place", "parse_bind_request", "person_identity_ids"]
