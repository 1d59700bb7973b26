"""FeedbackService: residents ask, staff in scope read and answer (see the package docstring)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ..clock import Clock
from ..config import Settings
from ..crypto import KeyRing
from ..wechat.api import WeChatApi


class FeedbackService:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        keyring: KeyRing,
        clock: Clock,
        wechat: WeChatApi,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._keys = keyring
        self._clock = clock
        self._wechat = wechat
