"""Push tests run against the real app with the sandbox mounted and every template configured:
residents bind through the sandbox (tests/binding/conftest.py), records arrive by file import or
the signed API, the worker's passes (``services.outbox.run_once``) send to the sandbox, and the
tests read what each person's phone received (``GET /sandbox/api/users/{openid}/messages``) and
count every send call the sandbox got (``GET /sandbox/api/calls``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from binding.conftest import CHILD, ELDER, Resident, dataset, people, person, resident  # noqa: F401
from conftest import Live, live_app

from wechat_backend.clock import FixedClock
from wechat_backend.notify.kinds import BINDING_ADDED, KINDS

FIELDS = {"thing1": "kind", "time2": "date", "thing3": "institution", "thing4": "name"}
TEMPLATES = {
    kind: {
        "template_id": f"T_{kind}",
        "fields": FIELDS if kind != BINDING_ADDED else {"thing1": "kind", "time2": "date"},
    }
    for kind in KINDS
}
SEND = "cgi-bin/message/template/send"


@pytest.fixture
def notify_settings() -> dict[str, Any]:
    """``[notify]`` for the module's tests (override the fixture to change it)."""
    return {}


@pytest.fixture
async def live(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock, notify_settings: dict[str, Any]
) -> AsyncIterator[Live]:
    """As tests/conftest.py's ``live``, with a template for every kind of push."""
    async with live_app(tmp_path, db_url, redis_url, clock, templates=TEMPLATES, notify=notify_settings) as running:
        yield running


async def template_calls(who: Resident) -> int:
    """Every template send the sandbox received (a repeated client_msg_id included)."""
    return (await who.sandbox("GET", "calls"))["calls"].get(SEND, 0)


async def templates_to(who: Resident) -> list[dict[str, Any]]:
    """The template messages this person's phone shows, oldest first."""
    messages = await who.sandbox("GET", f"users/{who.openid}/messages")
    return [m for m in reversed(messages) if m["kind"] == "template"]


async def drain(services: Any, passes: int = 20) -> int:
    """Worker passes until one claims nothing; returns the pushes sent."""
    sent = 0
    for _ in range(passes):
        done = await services.outbox.run_once()
        sent += done.sent
        if not done.claimed:
            return sent
    raise AssertionError("the outbox did not drain")
