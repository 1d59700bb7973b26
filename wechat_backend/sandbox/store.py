"""Keeps the sandbox's state across restarts: ``<data_dir>/sandbox-state.json``.

A demo should not lose its simulated users, their chats and pushes, the SMS inbox, the menus and
the tags when the server restarts or the phone page reloads (the bindings themselves are in the
database). Written a moment after a change (changes coming together are written once), to a
temporary file then ``os.replace``: a reader never sees half a file. Codes, tokens and faults are
not kept — they are short-lived, and the backend asks for a new token when an old one fails.
A file that cannot be read is set aside (``.bad``) and the sandbox starts empty. Demo only, as the
whole sandbox is.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .state import ChatEntry, Menu, PushedMessage, SandboxState, SimUser, Sms

if TYPE_CHECKING:
    from wechat_backend.config import Settings

log = logging.getLogger("wechat_backend.sandbox")

FILE_NAME = "sandbox-state.json"
FORMAT = 1
SAVE_DELAY = 0.5  # seconds: changes within this time are written together
KEEP_MESSAGES = 500  # per user
KEEP_SMS = 1000


class StateStore:
    """The file one sandbox state is kept in."""

    def __init__(self, path: Path, *, delay: float = SAVE_DELAY) -> None:
        self.path = path
        self.delay = delay
        self._state: weakref.ref[SandboxState] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.dirty = False

    @classmethod
    def for_settings(cls, settings: Settings) -> StateStore:
        return cls(settings.data_dir / FILE_NAME)

    def attach(self, state: SandboxState) -> None:
        """Load what the file holds into ``state``; from now on its changes are written."""
        self.load(state)
        self._state = weakref.ref(state)
        state.store = self
        atexit.register(_save_at_exit, weakref.ref(self))

    # ------------------------------------------------------------------ writing

    def schedule(self) -> None:
        """Write soon (inside the event loop), or now (outside one)."""
        self.dirty = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._timer is None:
            self._timer = loop.call_later(self.delay, self.flush)

    def flush(self) -> None:
        """Write now, if anything changed since the last write."""
        if self._timer is not None:
            self._timer.cancel()  # harmless when it is the timer that called
            self._timer = None
        state = self._state() if self._state else None
        if state is None or not self.dirty:
            return
        self.dirty = False
        try:
            self.save(state)
        except OSError as exc:  # a full disk must not break the demo: it goes on in memory
            log.warning("sandbox state not saved to %s: %s", self.path, exc)

    def save(self, state: SandboxState) -> None:
        data = json.dumps(snapshot(state), ensure_ascii=False, separators=(",", ":"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, self.path)

    # ------------------------------------------------------------------ reading

    def load(self, state: SandboxState) -> bool:
        """True when the file existed and was read into ``state``."""
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("sandbox state in %s not read (%s): starting empty", self.path, exc)
            return False
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("unknown format")
            restore(state, data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            bad = self.path.with_name(self.path.name + ".bad")
            log.warning("sandbox state in %s unreadable (%s): set aside as %s", self.path, type(exc).__name__, bad)
            os.replace(self.path, bad)
            return False
        return True


def _save_at_exit(ref: weakref.ref[StateStore]) -> None:
    store = ref()
    if store is not None and store.dirty:
        store.flush()


# --------------------------------------------------------------------------- the file's shape


def snapshot(state: SandboxState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "last_ids": {
            "msgid": state.last_msgid,
            "menuid": state.last_menuid,
            "tagid": state.last_tagid,
            "chat": state.last_chat_seq,
        },
        "users": [_user(u) for u in state.users.values()],
        "messages": {o: [_message(m) for m in ms[-KEEP_MESSAGES:]] for o, ms in state.messages.items() if ms},
        "chat": {o: [_entry(e) for e in es] for o, es in state.chat.items() if es},
        "sms": [{"phone": s.phone, "text": s.text, "at": s.at} for s in state.sms[-KEEP_SMS:]],
        "menu": _menu(state.menu) if state.menu else None,
        "conditional_menus": [_menu(m) for m in state.conditional_menus],
        "tags": {str(k): v for k, v in state.tags.items()},
        "qr_tickets": dict(state.qr_tickets),
    }


def restore(state: SandboxState, data: dict[str, Any]) -> None:
    ids = data.get("last_ids") or {}
    state.last_msgid = max(state.last_msgid, int(ids.get("msgid", 0)))
    state.last_menuid = max(state.last_menuid, int(ids.get("menuid", 0)))
    state.last_tagid = max(state.last_tagid, int(ids.get("tagid", 0)))
    state.last_chat_seq = max(state.last_chat_seq, int(ids.get("chat", 0)))
    for u in data.get("users", []):
        user = SimUser(**{k: u[k] for k in _USER_FIELDS if k in u})
        user.tag_ids = [int(t) for t in user.tag_ids]
        state.users[user.openid] = user
    for openid, messages in (data.get("messages") or {}).items():
        state.messages[openid] = [PushedMessage(**{k: m[k] for k in _MESSAGE_FIELDS if k in m}) for m in messages]
    for openid, entries in (data.get("chat") or {}).items():
        state.chat[openid] = [ChatEntry(**{k: e[k] for k in _ENTRY_FIELDS if k in e}) for e in entries]
    state.sms = [Sms(str(s["phone"]), str(s["text"]), float(s["at"])) for s in data.get("sms", [])]
    state.menu = Menu(**data["menu"]) if data.get("menu") else None
    state.conditional_menus = [Menu(**m) for m in data.get("conditional_menus", [])]
    state.tags.update({int(k): str(v) for k, v in (data.get("tags") or {}).items()})
    state.qr_tickets.update({str(k): str(v) for k, v in (data.get("qr_tickets") or {}).items()})


_USER_FIELDS = (
    "openid",
    "nickname",
    "mp_openid",
    "unionid",
    "subscribed",
    "subscribe_time",
    "subscribe_scene",
    "qr_scene",
    "tag_ids",
    "last_interaction",
)
_MESSAGE_FIELDS = (
    "msgid",
    "kind",
    "at",
    "template_id",
    "data",
    "url",
    "miniprogram",
    "msgtype",
    "text",
    "client_msg_id",
)
_ENTRY_FIELDS = ("seq", "at", "kind", "text", "reply", "msgtype", "msgid")


def _user(u: SimUser) -> dict[str, Any]:
    return {k: getattr(u, k) for k in _USER_FIELDS}


def _message(m: PushedMessage) -> dict[str, Any]:
    return {k: getattr(m, k) for k in _MESSAGE_FIELDS if getattr(m, k) is not None}


def _entry(e: ChatEntry) -> dict[str, Any]:
    return {k: getattr(e, k) for k in _ENTRY_FIELDS if getattr(e, k) is not None}


def _menu(m: Menu) -> dict[str, Any]:
    out: dict[str, Any] = {"menuid": m.menuid, "button": m.button}
    if m.matchrule is not None:
        out["matchrule"] = m.matchrule
    return out
