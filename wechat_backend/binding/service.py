"""Binding a WeChat identity to archives with an SMS code sent to a phone the archive registers.

``start`` finds the archive by the blind index of the ID number (or of the archive number, for a
newborn without one), checks name and phone, the opening policy, the relation and the limits,
commits an attempt holding only a keyed hash of the code, and then — outside any transaction —
hands the SMS to the provider. ``verify`` checks the code (five tries, five minutes, single use)
and creates the binding. Every refusal is audited with its precise reason; the person sees one of
a few fixed answers, so the form cannot tell who has an archive.

:class:`BindingService` holds what the flow needs and is what callers use; the flow itself is in
``start.py`` (field checks, lookup, caps, the code's SMS), ``attempts.py`` (the attempt rows:
their state, resend), ``verify.py`` (the code check, the binding, the owners told) and
``refusals.py`` (the audited refusals and their fixed answers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..archives import Place
from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..notify import Outbox
from ..rate_limits import RateLimits
from ..sms import SmsSender
from . import attempts, start, verify
from .attempts import AttemptState
from .consent import ConsentService
from .person import person_identity_ids
from .rules import RELATION_LABELS
from .start import BindRequest, parse_bind_request
from .verify import archive_owner_relations

OnSms = Callable[[str, str], None]
"""Counts an SMS by ``(provider, outcome)`` (the metrics)."""


@dataclass(frozen=True)
class Caller:
    """Who asks: the identity, and for the audit the request id and client address."""

    identity_id: int
    request_id: str | None = None
    client_ip: str | None = None


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

    async def start_from(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`start` for a submitted form or JSON body (``start.start_from``)."""
        return await start.start_from(self, caller, body)

    async def start(self, caller: Caller, req: BindRequest) -> dict[str, Any]:
        """Check the request, record an attempt and send its code (``start.start``)."""
        return await start.start(self, caller, req)

    async def resend(self, caller: Caller, bind_id: str) -> dict[str, Any]:
        """A new code for the caller's attempt (``attempts.resend``)."""
        return await attempts.resend(self, caller, bind_id)

    async def attempt_state(self, caller: Caller, bind_id: str, action: str = "bind_link") -> AttemptState:
        """Where the caller's bind link stands (``attempts.attempt_state``)."""
        return await attempts.attempt_state(self, caller, bind_id, action)

    async def verify(self, caller: Caller, bind_id: str, code: str) -> dict[str, Any]:
        """Check the code and bind the archive (``verify.verify``)."""
        return await verify.verify(self, caller, bind_id, code)


def relation_label(relation: str) -> str:
    return RELATION_LABELS.get(relation, "家人")


__all__ = [
    "BindRequest",
    "BindingService",
    "Caller",
    "Place",
    "archive_owner_relations",
    "parse_bind_request",
    "person_identity_ids",
]
