"""The bind start: the form's field checks, finding the archive, the checks that may refuse it, the
attempt row, and the SMS that carries the code.

``start`` finds the archive by the blind index of the ID number (or of the archive number, for a
newborn without one), checks name and phone, the opening policy, the relation and the limits,
commits an attempt holding only a keyed hash of the code, and then — outside any transaction —
hands the SMS to the provider. A resend (attempts.py) sends its code through the same allowances
and :func:`send_code`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .. import audit
from ..archives import decide, not_open_message, open_fields, place_from, with_place
from ..client_ip import rate_subject
from ..db.models import Archive, BindAttempt, Binding
from ..errors import AppError, BadInput, ConsentRequired, Mismatch, NotOpen, RateLimited, Unavailable
from ..ids import new_public_id
from ..privacy import mask_name, mask_phone
from ..rate_limits import Window, WindowFull
from ..sms import BindCodeSms, SmsResult
from ..validators import InvalidValue, parse_archive_no, parse_id_number, parse_mobile, parse_name
from .consent import NOTICE_VERSION
from .person import CallerState, caller_state
from .refusals import Refusal, cap_error, refuse
from .rules import RELATIONS, cap_refusal, match, names_match, new_code, relation_allowed

if TYPE_CHECKING:
    from .service import BindingService, Caller

log = logging.getLogger("wechat_backend.binding")

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
INSERT_ATTEMPT = insert(ATTEMPTS)
_SENDING = ATTEMPTS.c.public_id == bindparam("bind_id"), ATTEMPTS.c.status == "sending"
MARK_SENT = update(ATTEMPTS).where(*_SENDING).values(status="sent", outcome=bindparam("new_outcome"))
MARK_FAILED = (
    update(ATTEMPTS).where(*_SENDING).values(status="failed", outcome=bindparam("new_outcome"), code_hash=None)
)


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


# ---------------------------------------------------------------------- start


async def start_from(svc: BindingService, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`start` for a submitted form or JSON body. A field that fails its check is a failed
    attempt too: audited (which field, never its value) before the 400."""
    try:
        req = parse_bind_request(body, svc._clock.today())
    except BadInput as exc:
        async with svc._sessions.begin() as s:
            audit.by_identity(
                s,
                caller,
                "bind_start",
                result="failed",
                reason="bad_input",
                detail={"field": exc.extra.get("field")},
            )
        raise
    return await start(svc, caller, req)


async def start(svc: BindingService, caller: Caller, req: BindRequest) -> dict[str, Any]:
    # One session throughout: it keeps its connection across the two Redis checks, which costs
    # less than giving it back and taking another. Nothing is written (no lock is held) before
    # the last of them, and a Redis that stalls (1 s at most) stalls every request anyway:
    # the login sessions live there too.
    async with svc._sessions() as s:
        state = await caller_state(s, caller.identity_id, NOTICE_VERSION)
        # Refusals that depend only on the caller come before any lookup, so they say nothing
        # about whether the typed details match an archive.
        refusal = _caller_refusal(svc, state) or await _take_start(svc, caller, state.person_key)
        if refusal is not None:
            await refuse(s, caller, "bind_start", None, refusal)
        found, named = await _find(svc, s, caller, req)
        if found is None:
            archive_id, reason = named or (None, "unknown_identifier")
            mismatch = Mismatch(svc._settings.service.consult_phone)  # one answer for every case
            await refuse(s, caller, "bind_start", archive_id, (reason, mismatch), result="failed")
        archive_id, phone = found.row.id, found.fields[found.target]
        refusal = _archive_refusal(svc, req, found, state)
        if refusal is not None:
            await refuse(s, caller, "bind_start", archive_id, refusal)
        refusal = await _take_phone(svc, phone)
        if refusal is not None:
            await refuse(s, caller, "bind_code", archive_id, refusal)
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
                **armed(svc, bind_id, code),
            },
        )
        audit.by_identity(
            s, caller, "bind_start", archive_id, detail={"relation": req.relation, "target": found.target}
        )
        await s.commit()
    await send_code(svc, caller, bind_id, archive_id, phone, found.fields.get("name"), code)
    return started(svc, bind_id, phone)


# ---------------------------------------------------------------------- lookups and checks


def _caller_refusal(svc: BindingService, state: CallerState) -> Refusal | None:
    if not state.consented:
        return "consent_required", ConsentRequired()
    if len(state.bound) >= svc._limits_cfg.archives_per_identity:
        return "identity_full", cap_error("identity_full", svc._limits_cfg)
    return None


def _visible(svc: BindingService, row: Row[Any], fields: dict[str, Any]) -> bool:
    return decide(row, fields, place_from(row), svc._clock.today()).visible


def _archive_refusal(svc: BindingService, req: BindRequest, found: Found, state: CallerState) -> Refusal | None:
    """Why the matched archive cannot be bound by this caller, or None."""
    place = place_from(found.row)
    today = svc._clock.today()
    decision = decide(found.row, found.fields, place, today)
    if not decision.visible:
        return decision.reason, NotOpen(not_open_message(place), consult_phone=place.consult_phone)
    if not relation_allowed(req.relation, birth(found.fields), today):
        return "minor_needs_guardian", BadInput(
            "relation", "未满14周岁的儿童须由父母或其他监护人绑定，请选择关系“子女”"
        )
    return caps_refusal(svc, found.row.id, state.bound, found.row.bound_identities)


def caps_refusal(svc: BindingService, archive_id: int, bound: frozenset[int], on_archive: int) -> Refusal | None:
    """The caps (``[limits]``): archives per identity, identities per archive, not twice."""
    cfg = svc._limits_cfg
    reason = cap_refusal(
        archive_id,
        bound,
        on_archive,
        archives_per_identity=cfg.archives_per_identity,
        identities_per_archive=cfg.identities_per_archive,
    )
    return (reason, cap_error(reason, cfg)) if reason else None


async def _find(
    svc: BindingService, s: AsyncSession, caller: Caller, req: BindRequest
) -> tuple[Found | None, tuple[int, str] | None]:
    """The archive the request names, with its fields and the phone the code may go to; when
    none matches, the id of the archive the typed identifier belongs to (for the audit)."""
    if req.id_number is not None:
        query, bidx = FIND_BY_ID_NUMBER, svc._keys.blind_index("id_number", req.id_number)
    else:
        assert req.archive_no is not None
        query, bidx = FIND_BY_ARCHIVE_NO, svc._keys.blind_index("archive_no", req.archive_no)
    found: Found | None = None
    named: tuple[int, str] | None = None
    # Every row of the index slot: a truncated blind index is shared by design (see
    # [security] blind_index_bits), and any LIMIT would hide a real resident's archive.
    candidates = (await s.execute(query, {"bidx": bidx, "me": caller.identity_id})).all()
    for row in candidates:
        fields = open_fields(svc._keys, row)
        m = match(
            fields,
            name=req.name,
            phone=req.phone,
            relation=req.relation,
            id_number=req.id_number,
            archive_no=req.archive_no,
        )
        if m is not None and (
            found is None or (not _visible(svc, found.row, found.fields) and _visible(svc, row, fields))
        ):
            # One person may have two archives under one ID number (an old one closed after a
            # move): the one they can see wins, or the hidden one would answer not_open forever.
            found = Found(row, fields, m.target)
        elif _names_this(fields, req):
            named = (row.id, "phone_mismatch" if names_match(req.name, fields.get("name")) else "name_mismatch")
    if not candidates:
        decoy = {**svc._keys.open(svc._decoy, "decoy"), "id_number": req.id_number, "archive_no": None}
        match(decoy, name=req.name, phone=req.phone, relation=req.relation, id_number=req.id_number, archive_no=None)
        names_match(req.name, decoy["name"])
    return found, None if found else named


def _names_this(fields: Mapping[str, Any], req: BindRequest) -> bool:
    if req.id_number is not None:
        return fields.get("id_number") == req.id_number
    return fields.get("archive_no") == req.archive_no


def birth(fields: Mapping[str, Any]) -> dt.date:
    """The birth date among an archive's decrypted fields."""
    return dt.date.fromisoformat(fields["birth_date"])


# ---------------------------------------------------------------------- codes and SMS


def code_hash(svc: BindingService, bind_id: str, code: str) -> bytes:
    return svc._keys.mac("bind_code", f"{bind_id}:{code}")


def armed(svc: BindingService, bind_id: str, code: str) -> dict[str, Any]:
    """The columns of an attempt whose new code is about to be sent."""
    now = svc._clock.now()
    return {
        "status": "sending",
        "code_hash": code_hash(svc, bind_id, code),
        "code_expires_at": now + dt.timedelta(seconds=svc._limits_cfg.code_ttl_seconds),
        "tries": 0,
        "last_sent_at": now,
    }


async def _take_start(svc: BindingService, caller: Caller, person_key: int) -> Refusal | None:
    return await take(svc, start_windows(svc, caller, person_key), "bind start")


async def _take_phone(svc: BindingService, phone: str) -> Refusal | None:
    return await take(svc, phone_windows(svc, phone), "bind code")


def start_windows(svc: BindingService, caller: Caller, person_key: int) -> list[Window]:
    """A start's (or resend's) allowances: the client address's and the person's."""
    cfg = svc._limits_cfg
    return [
        Window(_rl_key(svc, "ip", rate_subject(caller.client_ip or "-")), 3600, cfg.bind_starts_per_ip_hour),
        # Per person: identities linked by unionid share one allowance.
        Window(_rl_key(svc, "identity", str(person_key)), 86400, cfg.bind_starts_per_identity_day),
    ]


def phone_windows(svc: BindingService, phone: str) -> list[Window]:
    """A code's limits: the phone's gap, hour and day, and the SMS budget over all phones."""
    cfg = svc._limits_cfg
    key = _rl_key(svc, "phone", phone)
    return [
        Window(key + ":gap", cfg.resend_after_seconds, 1),
        Window(key + ":hour", 3600, cfg.codes_per_phone_hour),
        Window(key + ":day", 86400, cfg.codes_per_phone_day),
        # Every phone together: the SMS budget, against bombing spread over many numbers.
        Window(svc._all_codes_key, 86400, cfg.codes_per_day_total),
    ]


async def take(svc: BindingService, windows: list[Window], what: str) -> Refusal | None:
    """None when every window had room (the event is counted), else the limit's refusal."""
    try:
        await svc._limits.take(windows, what)
    except WindowFull as exc:
        if exc.window.key != svc._all_codes_key:
            return exc.code, exc
        log.error("SMS daily cap reached (%d codes in 24 h): bind codes are refused", exc.window.limit)
        return "daily_cap", RateLimited(exc.retry_after, "今天发送的验证码已达上限，请明天再试或联系建档机构")
    except AppError as exc:  # Redis unreachable
        return exc.code, exc
    return None


async def send_code(
    svc: BindingService, caller: Caller, bind_id: str, archive_id: int, phone: str, name: str | None, code: str
) -> None:
    """Hand the code to the provider (no transaction open), then record what it said."""
    minutes = max(1, svc._limits_cfg.code_ttl_seconds // 60)
    try:
        result = await svc._sms.send(phone, BindCodeSms(mask_name(name, svc._policy), code, minutes))
    except Exception as exc:  # a provider bug must not leave the attempt "sending"
        log.error("sms provider %s raised %s", svc._sms.provider, type(exc).__name__)
        result = SmsResult("error", "短信发送失败，请稍后再试")
    if svc._on_sms is not None:
        svc._on_sms(svc._sms.provider, result.outcome)
    async with svc._sessions.begin() as s:
        await s.execute(MARK_SENT if result.ok else MARK_FAILED, {"bind_id": bind_id, "new_outcome": result.outcome})
        # Also when the attempt was replaced meanwhile: a code went out (or not) all the same.
        audit.by_identity(
            s,
            caller,
            "bind_code",
            archive_id,
            result="ok" if result.ok else "failed",
            reason=None if result.ok else result.outcome,
            detail={"provider": svc._sms.provider, "provider_code": result.provider_code or None},
        )
    if result.ok:
        return
    raise Unavailable(result.message or "短信发送失败，请稍后再试")


def started(svc: BindingService, bind_id: str, phone: str) -> dict[str, Any]:
    """What the caller is told of a code on its way."""
    return {
        "bind_id": bind_id,
        "phone": mask_phone(phone, svc._policy),
        "expires_in": svc._limits_cfg.code_ttl_seconds,
        "resend_after": svc._limits_cfg.resend_after_seconds,
    }


def _rl_key(svc: BindingService, kind: str, subject: str) -> str:
    """No phone, IP or id in clear in Redis: the subject is a keyed hash."""
    return f"{svc._prefix}:rl:{kind}:{svc._keys.mac('rate_limit', subject).hex()[:32]}"
