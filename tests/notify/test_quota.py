"""The account's daily template quota (45009): template sends stop until 00:00 Beijing time, and
when they resume a security alert goes before the reminders that waited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from wechat_backend.db.models import Notification
from wechat_backend.notify.kinds import BINDING_ADDED
from wechat_backend.notify.queue import insert_pushes
from wechat_backend.notify.quiet import next_beijing_midnight

from .conftest import template_calls
from .test_faults import fault, follower, identity_of, queue, statuses


@pytest.fixture
def notify_settings() -> dict[str, Any]:
    return {"batch_size": 5}


async def test_45009_stops_template_sends_until_midnight_and_alerts_go_first_after(
    resident: Any, people: Any, clock: Any
) -> None:
    base, services = people
    who = await follower(resident)
    me = await identity_of(services, who.openid)
    await queue(services, [me], 5, tag="a")
    await fault(who, 45009, count=0)
    assert (await services.outbox.run_once()).retry == 5
    await who.sandbox("DELETE", "faults")
    calls = await template_calls(who)

    await queue(services, [me], 5, tag="b")
    clock.advance(hours=10)  # 20:00 the same day, before the quiet hours
    assert (await services.outbox.run_once()).claimed == 0
    assert await template_calls(who) == calls  # no template send for the rest of the day
    metrics = (await who.client.get(base + "/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("wb_notify_template_quota_stopped_until "))
    assert float(line.split()[1]) == next_beijing_midnight(clock.now()).timestamp()

    async with services.sessions.begin() as s:  # someone binds the archive: a security alert
        row = services.queuer.row(BINDING_ADDED, "binding_added:x", me, None, {"relation": "child"}, clock.now())
        await insert_pushes(s, [row])
    clock.advance(hours=13)  # 09:00 next morning: the quota is back and the quiet hours are over
    first = await services.outbox.run_once()
    assert first.sent == 5
    async with services.sessions() as s:
        alert = await s.scalar(select(Notification.status).where(Notification.kind == BINDING_ADDED))
    assert alert == "sent"  # in the first batch, ahead of the reminders waiting since yesterday
    while (await services.outbox.run_once()).claimed:
        pass
    assert await statuses(services) == {"sent": 11}
