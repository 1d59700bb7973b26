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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .. import audit
from ..archives import Place, decide, not_open_message, open_fields, place_of, summary
from ..client_ip import rate_subject
from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..db.models import Archive, BindAttempt, Binding, Identity, Notification
from ..errors import AppError, BadInput, Conflict, ConsentRequired, Mismatch, NotFound, NotOpen, Unavailable
from ..ids import new_public_id
from ..privacy import mask_name, mask_phone
from ..sms import BindCodeSms, SmsResult, SmsSender
from ..validators import InvalidValue, parse_archive_no, parse_id_number, parse_mobile, parse_name
from .consent import ConsentService
from .limits import RateLimits, Window
from .rules import RELATION_LABELS, RELATIONS, match, names_match, new_code, owner_relations, relation_allowed

log = logging.getLogger("wechat_backend.binding")

OnSms = Callable[[str, str], None]
"""Counts an SMS by ``(provider, outcome)`` (the metrics)."""

Notify = Callable[[Notification, str, str], Awaitable[None]]
"""Sends one outbox row to its identity (``(row, openid, relation)``) right after the commit that
wrote it."""


Found = tuple[Archive, dict[str, Any], str]
"""A matched archive, its decrypted fields, and which registered phone gets the code."""


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
        notify: Notify | None = None,
    ) -> None:
        self._settings = settings
        self._limits_cfg = settings.limits
        self._policy = settings.privacy
        self._prefix = settings.redis.key_prefix
        self._sessions = sessions
        self._keys = keyring
        self._limits = limits
        self._sms = sms
        self._consent = consent
        self._clock = clock
        self._on_sms = on_sms
        self._notify = notify
        # Decrypted when no archive matched, so an unknown ID costs what a known one does.
        self._decoy = keyring.seal({"name": "", "id_number": "", "phone": "", "birth_date": "2000-01-01"}, "decoy")

    # ------------------------------------------------------------------ start / resend

    async def start(self, caller: Caller, req: BindRequest) -> dict[str, Any]:
        cfg = self._limits_cfg
        async with self._sessions() as s:
            # Refusals that depend only on the caller come before any lookup, so they say nothing
            # about whether the typed details match an archive.
            refusal: AppError | None = None
            mine = await person_identity_ids(s, caller.identity_id)
            if not await self._consent.agreed(s, caller.identity_id):
                refusal, reason = ConsentRequired(), "consent_required"
            elif await _bound_count(s, mine) >= cfg.archives_per_identity:
                n = cfg.archives_per_identity
                refusal, reason = Conflict(f"每个微信最多绑定{n}份档案，请先解除不再需要的档案"), "identity_full"
            if refusal is not None:
                audit.by_identity(s, caller, "bind_start", result="denied", reason=reason)
                await s.commit()
                raise refusal
        try:
            await self._limits.take(
                [
                    Window(
                        self._rl_key("ip", rate_subject(caller.client_ip or "-")), 3600, cfg.bind_starts_per_ip_hour
                    ),
                    # Per person: identities linked by unionid share one allowance.
                    Window(self._rl_key("identity", str(min(mine))), 86400, cfg.bind_starts_per_identity_day),
                ],
                "bind start",
            )
        except AppError as exc:
            await self._audit_alone(caller, "bind_start", None, exc)
            raise
        today = self._clock.today()
        async with self._sessions.begin() as s:
            found, named = await self._find(s, req)
            refusal = await self._refusal(s, caller, req, found, named, today)
        if refusal is not None:
            raise refusal
        assert found is not None
        archive, fields, target = found
        phone = fields[target]
        await self._take_phone(caller, archive.id, phone)
        code = new_code()
        async with self._sessions.begin() as s:
            # A new code replaces any earlier one for the same archive and identity.
            await s.execute(
                update(BindAttempt)
                .where(
                    BindAttempt.identity_id == caller.identity_id,
                    BindAttempt.archive_id == archive.id,
                    BindAttempt.status.in_(("sending", "sent", "failed")),
                )
                .values(status="replaced", code_hash=None)
            )
            attempt = BindAttempt(
                public_id=new_public_id(),
                identity_id=caller.identity_id,
                archive_id=archive.id,
                relation=req.relation,
                target=target,
                sends=0,
            )
            self._arm(attempt, code)
            s.add(attempt)
            audit.by_identity(s, caller, "bind_start", archive.id, detail={"relation": req.relation, "target": target})
            bind_id = attempt.public_id
        await self._send(caller, bind_id, phone, fields.get("name"), code)
        return self._started(bind_id, phone)

    async def resend(self, caller: Caller, bind_id: str) -> dict[str, Any]:
        async with self._sessions() as s:
            attempt = await self._attempt(s, caller, bind_id)
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
        phone = fields.get(attempt.target) or ""
        await self._take_phone(caller, attempt.archive_id, phone)
        code = new_code()
        async with self._sessions.begin() as s:
            row = await s.get(BindAttempt, attempt.id, with_for_update=True)
            if row is None or row.status not in self._resendable(row):
                raise _finished(row.status if row else "replaced")
            self._arm(row, code)
            audit.by_identity(s, caller, "bind_resend", attempt.archive_id)
        await self._send(caller, bind_id, phone, fields.get("name"), code)
        return self._started(bind_id, phone)

    def _resendable(self, attempt: BindAttempt) -> tuple[str, ...]:
        """``sent`` and ``failed``; also ``sending`` once it is clearly stuck (the outcome was never
        recorded, e.g. the database failed after the provider took the message)."""
        stuck_after = dt.timedelta(seconds=2 * self._settings.sms.timeout_seconds + 30)
        sent_at = attempt.last_sent_at
        if sent_at is not None and self._clock.now() - sent_at > stuck_after:
            return ("sent", "failed", "sending")
        return ("sent", "failed")

    # ------------------------------------------------------------------ verify

    async def verify(self, caller: Caller, bind_id: str, code: str) -> dict[str, Any]:
        code = (code or "").strip() if isinstance(code, str) else ""
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise BadInput("code", "请输入短信中的6位数字验证码")
        now = self._clock.now()
        max_tries = self._limits_cfg.code_max_tries
        async with self._sessions() as s:
            attempt = await self._attempt(s, caller, bind_id, lock=True)
            if attempt.status != "sent":
                audit.by_identity(s, caller, "bind_verify", attempt.archive_id, result="denied", reason=attempt.status)
                await s.commit()
                raise _finished(attempt.status)
            # Count the try in one statement, so concurrent guesses can never share a count
            # (SQLite has no FOR UPDATE).
            counted = (
                await s.execute(
                    update(BindAttempt)
                    .where(BindAttempt.id == attempt.id, BindAttempt.status == "sent", BindAttempt.tries < max_tries)
                    .values(tries=BindAttempt.tries + 1)
                    .returning(BindAttempt.tries, BindAttempt.code_hash, BindAttempt.code_expires_at)
                    .execution_options(synchronize_session=False)
                )
            ).first()
            if counted is None:  # used up, or finished by a concurrent request
                audit.by_identity(s, caller, "bind_verify", attempt.archive_id, result="denied", reason="used_up")
                await s.commit()
                raise _locked()
            tries = counted.tries
            right = hmac.compare_digest(counted.code_hash or b"", self._code_hash(attempt.public_id, code))
            expired = counted.code_expires_at is None or counted.code_expires_at <= now
            if right and not expired:
                return await self._bind(s, caller, attempt)
            locked = tries >= max_tries
            if locked or expired:
                attempt.status, attempt.code_hash = "locked", None
            reason = "expired" if expired else "locked" if locked else "wrong_code"
            audit.by_identity(s, caller, "bind_verify", attempt.archive_id, result="failed", reason=reason)
            await s.commit()
        if expired:
            raise BadInput("code", "验证码已过期，请重新获取验证码")
        if locked:
            raise _locked()
        raise BadInput("code", f"验证码不正确，还可以再输入{max_tries - tries}次")

    async def _bind(self, s: AsyncSession, caller: Caller, attempt: BindAttempt) -> dict[str, Any]:
        # Row locks (PostgreSQL; SQLite has one writer anyway) so that two verifies at once cannot
        # both see room under the caps: the archive, then the caller's identities, in id order.
        archive = (await s.scalars(select(Archive).where(Archive.id == attempt.archive_id).with_for_update())).one()
        mine = await person_identity_ids(s, caller.identity_id)
        await s.execute(select(Identity.id).where(Identity.id.in_(mine)).order_by(Identity.id).with_for_update())
        fields = open_fields(self._keys, archive)
        place = await place_of(s, archive)
        today = self._clock.today()
        decision = decide(archive, fields, place, today)
        if not decision.visible:  # closed meanwhile
            attempt.status, attempt.code_hash = "locked", None
            audit.by_identity(s, caller, "bind", archive.id, result="denied", reason=decision.reason)
            await s.commit()
            raise NotOpen(not_open_message(place), consult_phone=place.consult_phone)
        conflict = await self._over_limits(s, caller.identity_id, archive.id)
        if conflict is not None:
            audit.by_identity(s, caller, "bind", archive.id, result="denied", reason=conflict[0])
            await s.commit()
            raise conflict[1]
        binding = Binding(identity_id=caller.identity_id, archive_id=archive.id, relation=attempt.relation)
        s.add(binding)
        attempt.status, attempt.code_hash = "verified", None
        audit.by_identity(s, caller, "bind", archive.id, detail={"relation": attempt.relation})
        owners = await self._tell_owners(s, caller, archive, fields, attempt.relation)
        try:
            await s.flush()
        except IntegrityError:
            raise Conflict("您已绑定这份档案") from None
        out = summary(archive, fields, place, decision, today, self._policy)
        out.update(binding_id=binding.public_id, relation=binding.relation)
        await s.commit()
        for row, openid in owners:
            await self._push(row, openid, attempt.relation)
        return out

    # ------------------------------------------------------------------ lookups and checks

    async def _find(self, s: AsyncSession, req: BindRequest) -> tuple[Found | None, tuple[int, str] | None]:
        """The archive the request names, with its fields and the phone the code may go to; when
        none matches, the id of the archive the typed identifier belongs to (for the audit)."""
        if req.id_number is not None:
            where = Archive.id_bidx == self._keys.blind_index("id_number", req.id_number)
        else:
            assert req.archive_no is not None
            where = Archive.archive_no_bidx == self._keys.blind_index("archive_no", req.archive_no)
        found: Found | None = None
        named: tuple[int, str] | None = None
        # Every row of the index slot: a truncated blind index is shared by design (see
        # [security] blind_index_bits), and any LIMIT would hide a real resident's archive.
        candidates = (await s.scalars(select(Archive).where(where).order_by(Archive.id))).all()
        for archive in candidates:
            fields = open_fields(self._keys, archive)
            m = match(
                fields,
                name=req.name,
                phone=req.phone,
                relation=req.relation,
                id_number=req.id_number,
                archive_no=req.archive_no,
            )
            if m is not None and found is None:
                found = (archive, fields, m.target)
            elif _names_this(fields, req):
                named = (archive.id, "phone_mismatch" if names_match(req.name, fields.get("name")) else "name_mismatch")
        if not candidates:
            self._keys.open(self._decoy, "decoy")
        return found, None if found else named

    async def _refusal(
        self,
        s: AsyncSession,
        caller: Caller,
        req: BindRequest,
        found: Found | None,
        named: tuple[int, str] | None,
        today: dt.date,
    ) -> Exception | None:
        """The error to answer with (after this transaction commits its audit row), or None."""
        if found is None:
            archive_id, reason = named or (None, "unknown_identifier")
            audit.by_identity(s, caller, "bind_start", archive_id, result="failed", reason=reason)
            return Mismatch()
        archive, fields, _ = found
        place = await place_of(s, archive)
        decision = decide(archive, fields, place, today)
        if not decision.visible:
            audit.by_identity(s, caller, "bind_start", archive.id, result="denied", reason=decision.reason)
            return NotOpen(not_open_message(place), consult_phone=place.consult_phone)
        if not relation_allowed(req.relation, dt.date.fromisoformat(fields["birth_date"]), today):
            audit.by_identity(s, caller, "bind_start", archive.id, result="denied", reason="minor_needs_guardian")
            return BadInput("relation", "未满14周岁的儿童须由父母或其他监护人绑定，请选择关系“子女”")
        conflict = await self._over_limits(s, caller.identity_id, archive.id)
        if conflict is not None:
            audit.by_identity(s, caller, "bind_start", archive.id, result="denied", reason=conflict[0])
            return conflict[1]
        return None

    async def _over_limits(self, s: AsyncSession, identity_id: int, archive_id: int) -> tuple[str, Conflict] | None:
        cfg = self._limits_cfg
        mine = await person_identity_ids(s, identity_id)
        bound = (await s.scalars(select(Binding.archive_id).where(Binding.identity_id.in_(mine)))).all()
        if archive_id in bound:
            return "already_bound", Conflict("您已绑定这份档案，可在“我的档案”中查看")
        if len(set(bound)) >= cfg.archives_per_identity:
            n = cfg.archives_per_identity
            return "identity_full", Conflict(f"每个微信最多绑定{n}份档案，请先解除不再需要的档案")
        others = await s.scalar(select(func.count()).select_from(Binding).where(Binding.archive_id == archive_id))
        if (others or 0) >= cfg.identities_per_archive:
            n = cfg.identities_per_archive
            return "archive_full", Conflict(f"这份档案已绑定{n}个微信，请档案本人解除不需要的绑定后再试")
        return None

    async def _attempt(self, s: AsyncSession, caller: Caller, bind_id: str, *, lock: bool = False) -> BindAttempt:
        """The caller's own attempt; anyone else's ``bind_id`` is simply not found."""
        if not isinstance(bind_id, str) or not 1 <= len(bind_id) <= 24:
            raise NotFound("未找到这次绑定，请重新开始")
        query = select(BindAttempt).where(
            BindAttempt.public_id == bind_id, BindAttempt.identity_id == caller.identity_id
        )
        attempt = (await s.scalars(query.with_for_update() if lock else query)).first()
        if attempt is None:
            audit.by_identity(s, caller, "bind_verify", result="denied", reason="unknown_bind_id")
            await s.commit()
            raise NotFound("未找到这次绑定，请重新开始")
        return attempt

    async def _audit_alone(self, caller: Caller, action: str, archive_id: int | None, exc: AppError) -> None:
        """The audit row of a refusal that happened outside any transaction (limits, Redis)."""
        async with self._sessions.begin() as s:
            audit.by_identity(s, caller, action, archive_id, result="denied", reason=exc.code)

    # ------------------------------------------------------------------ codes and SMS

    def _code_hash(self, bind_id: str, code: str) -> bytes:
        return self._keys.mac("bind_code", f"{bind_id}:{code}")

    def _arm(self, attempt: BindAttempt, code: str) -> None:
        now = self._clock.now()
        attempt.status = "sending"
        attempt.code_hash = self._code_hash(attempt.public_id, code)
        attempt.code_expires_at = now + dt.timedelta(seconds=self._limits_cfg.code_ttl_seconds)
        attempt.tries = 0
        attempt.sends = (attempt.sends or 0) + 1
        attempt.last_sent_at = now

    async def _take_phone(self, caller: Caller, archive_id: int, phone: str) -> None:
        cfg = self._limits_cfg
        key = self._rl_key("phone", phone)
        try:
            await self._limits.take(
                [
                    Window(key + ":gap", cfg.resend_after_seconds, 1),
                    Window(key + ":hour", 3600, cfg.codes_per_phone_hour),
                    Window(key + ":day", 86400, cfg.codes_per_phone_day),
                ],
                "bind code",
            )
        except AppError as exc:
            await self._audit_alone(caller, "bind_code", archive_id, exc)
            raise

    async def _send(self, caller: Caller, bind_id: str, phone: str, name: str | None, code: str) -> None:
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
            values: dict[str, Any] = {"status": "sent" if result.ok else "failed", "outcome": result.outcome}
            if not result.ok:
                values["code_hash"] = None
            archive_id = await s.scalar(
                update(BindAttempt)
                .where(BindAttempt.public_id == bind_id, BindAttempt.status == "sending")
                .values(**values)
                .returning(BindAttempt.archive_id)
                .execution_options(synchronize_session=False)
            )
            audit.by_identity(
                s,
                caller,
                "bind_code",
                archive_id,
                result="ok" if result.ok else "failed",
                reason=None if result.ok else result.outcome,
                detail={"provider": self._sms.provider, "provider_code": result.provider_code or None},
            )
        if not result.ok:
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
        self, s: AsyncSession, caller: Caller, archive: Archive, fields: Mapping[str, Any], relation: str
    ) -> list[tuple[Notification, str]]:
        """An outbox row for each owner of this archive (other than the caller): the person bound
        as oneself, or a young child's guardians (``rules.owner_relations``)."""
        owner_ids = (
            await s.scalars(
                select(Binding.identity_id).where(
                    Binding.archive_id == archive.id,
                    Binding.relation.in_(owner_relations(_birth(fields), self._clock.today())),
                    Binding.identity_id != caller.identity_id,
                )
            )
        ).all()
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
        out = []
        for owner_id, openid in rows:
            dedup = f"binding_added:{archive.public_id}:{caller.identity_id}:{owner_id}:{int(now.timestamp())}"
            note = Notification(
                identity_id=owner_id,
                archive_id=archive.id,
                kind="binding_added",
                dedup_key=dedup[:128],
                status="pending",
                attempts=0,
                due_at=now,
            )
            note.sealed = self._keys.seal({"relation": relation}, f"notification:{note.dedup_key}")
            note.key_id = self._keys.active_key
            s.add(note)
            out.append((note, openid))
        return out

    async def _push(self, row: Notification, openid: str, relation: str) -> None:
        if self._notify is None:
            return
        try:
            await self._notify(row, openid, relation)
        except Exception as exc:  # the outbox row stays pending for the worker
            log.warning("binding notice not sent now (%s); left in the outbox", type(exc).__name__)


def _names_this(fields: Mapping[str, Any], req: BindRequest) -> bool:
    if req.id_number is not None:
        return fields.get("id_number") == req.id_number
    return fields.get("archive_no") == req.archive_no


def _birth(fields: Mapping[str, Any]) -> dt.date:
    return dt.date.fromisoformat(fields["birth_date"])


async def archive_owner_relations(s: AsyncSession, keys: KeyRing, archive_id: int, today: dt.date) -> tuple[str, ...]:
    archive = await s.get(Archive, archive_id)
    return owner_relations(_birth(open_fields(keys, archive)), today) if archive else ("self",)


async def _bound_count(s: AsyncSession, identity_ids: list[int]) -> int:
    rows = await s.scalars(select(Binding.archive_id).where(Binding.identity_id.in_(identity_ids)).distinct())
    return len(rows.all())


def _locked() -> BadInput:
    return BadInput("code", "验证码错误次数过多，已失效，请重新获取验证码")


def _finished(status: str) -> Exception:
    if status == "verified":
        return Conflict("这次绑定已经完成，可在“我的档案”中查看")
    if status == "sending":
        return Conflict("验证码正在发送，请稍候")
    return BadInput("bind_id", "验证码已失效，请重新获取验证码")


async def person_identity_ids(s: AsyncSession, identity_id: int) -> list[int]:
    """The identity and those of the same person on the other channel (same unionid), in one query."""
    unionid = select(Identity.unionid).where(Identity.id == identity_id).scalar_subquery()
    ids = (
        await s.scalars(
            select(Identity.id).where(
                or_(Identity.id == identity_id, and_(Identity.unionid.is_not(None), Identity.unionid == unionid))
            )
        )
    ).all()
    return sorted(set(ids) | {identity_id})


def relation_label(relation: str) -> str:
    return RELATION_LABELS.get(relation, "家人")


__all__ = ["BindRequest", "BindingService", "Caller", "Place", "parse_bind_request", "person_identity_ids"]
