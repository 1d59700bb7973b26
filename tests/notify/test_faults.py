"""Pushes are never lost and rarely doubled, whatever WeChat or the worker does: counted by the
sandbox's send calls (what a phone shows hides a repeated client_msg_id)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
from typing import Any

import pytest
from sqlalchemy import func, select

from wechat_backend.db.models import Identity, Notification
from wechat_backend.notify.kinds import FOLLOWUP_DUE
from wechat_backend.notify.queue import insert_pushes

from .conftest import ELDER, SEND, Resident, template_calls, templates_to


@pytest.fixture
def notify_settings() -> dict[str, Any]:
    """No quiet hours: the worker processes below run on real time, at whatever hour the tests run."""
    return {"quiet_start": "00:00", "quiet_end": "00:00"}


PG_ONLY = "the claim's FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite takes one writer at a time"


async def follower(resident: Any, nickname: str = "刘阿姨") -> Resident:
    who = await resident(nickname, unionid=True)
    await who.follow_and_web_login()
    await who.bind(ELDER)
    return who


async def identity_of(services: Any, openid: str) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(Identity.id).where(Identity.openid == openid, Identity.channel == "oa"))


async def queue(services: Any, identity_ids: list[int], n: int, *, kind: str = FOLLOWUP_DUE, tag: str = "p") -> None:
    """``n`` pushes spread over the identities, due now (no archive: nothing to check again)."""
    now = services.clock.now()
    rows = [
        services.queuer.row(
            kind,
            f"{kind}:{tag}{i}:{identity_ids[i % len(identity_ids)]}",
            identity_ids[i % len(identity_ids)],
            None,
            {"date": "2026-12-08", "institution": "莘县燕店镇卫生院", "name": None, "relation": "child"},
            now,
        )
        for i in range(n)
    ]
    async with services.sessions.begin() as s:
        assert await insert_pushes(s, rows) == n


async def statuses(services: Any) -> dict[str, int]:
    async with services.sessions() as s:
        rows = await s.execute(select(Notification.status, func.count()).group_by(Notification.status))
        return dict(rows.all())


async def fault(who: Resident, errcode: int = 0, *, count: int = 1, latency_ms: int = 0) -> None:
    await who.sandbox("POST", "faults", {"api": SEND, "errcode": errcode, "count": count, "latency_ms": latency_ms})


# --------------------------------------------------------------------------- WeChat misbehaving


async def test_a_minute_of_errcode_minus_one_delays_but_loses_nothing(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    who = await follower(resident)
    await queue(services, [await identity_of(services, who.openid)], 40)
    await fault(who, -1, count=0)  # 系统繁忙, until cleared
    assert (await services.outbox.run_once()).retry == 40
    clock.advance(seconds=30)
    assert (await services.outbox.run_once()).claimed == 0  # backing off
    clock.advance(seconds=30)
    assert (await services.outbox.run_once()).retry == 40  # still failing a minute on
    await who.sandbox("DELETE", "faults")
    clock.advance(minutes=2)
    assert (await services.outbox.run_once()).sent == 40
    assert await statuses(services) == {"sent": 40}
    assert await template_calls(who) == 120
    assert len(await templates_to(who)) == 40


async def test_43004_skips_until_the_person_follows_again(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    who = await follower(resident)
    me = await identity_of(services, who.openid)
    await fault(who, 43004)  # WeChat says they unfollowed before our callback heard of it
    await queue(services, [me], 1, tag="a")
    assert (await services.outbox.run_once()).skipped == 1
    async with services.sessions() as s:
        assert await s.scalar(select(Identity.subscribed).where(Identity.id == me)) is False
    calls = await template_calls(who)
    await queue(services, [me], 1, tag="b")
    assert (await services.outbox.run_once()).skipped == 1
    assert await template_calls(who) == calls  # no call for someone who does not follow

    await who.sandbox("POST", f"users/{who.openid}/unfollow", {})
    await who.sandbox("POST", f"users/{who.openid}/follow", {})  # the subscribe event
    await queue(services, [me], 1, tag="c")
    assert (await services.outbox.run_once()).sent == 1
    assert [m["data"]["thing1"]["value"] for m in await templates_to(who)] == ["随访提醒"]


async def test_unfollowing_stops_every_pending_push_at_once(resident: Any, people: Any) -> None:
    _, services = people
    who = await follower(resident)
    await queue(services, [await identity_of(services, who.openid)], 5)
    await who.sandbox("POST", f"users/{who.openid}/unfollow", {})
    assert await statuses(services) == {"skipped": 5}
    assert (await services.outbox.run_once()).claimed == 0


# --------------------------------------------------------------------------- workers


def _worker_overrides(services: Any, **notify: Any) -> str:
    """The services' own configuration, for a ``wechat-backend worker`` process of its own."""
    data = dataclasses.asdict(services.settings)
    data["notify"].update(notify)
    return json.dumps(data, default=str)


WORKER = (
    "import argparse, asyncio, json, logging, sys\n"
    "logging.basicConfig(level=logging.INFO)\n"
    "from wechat_backend.config import load_settings\n"
    "from wechat_backend.__main__ import cmd_worker\n"
    "settings = load_settings(environ={}, overrides=json.loads(sys.argv[1]))\n"
    "sys.exit(asyncio.run(cmd_worker(settings, argparse.Namespace(once=False))))\n"
)


async def start_worker(overrides: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        overrides,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(os.environ.get("WORKER_LOG", os.devnull), "a"),
    )


async def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_at_most_its_batch(
    resident: Any, people: Any, clock: Any
) -> None:
    _, services = people
    clock.at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # the worker process reads real time
    who = await follower(resident)
    n, batch = 600, 50
    await queue(services, [await identity_of(services, who.openid)], n)
    await fault(who, latency_ms=40, count=0)
    overrides = _worker_overrides(services, batch_size=batch, lease_seconds=10)

    worker = await start_worker(overrides)
    try:
        await wait_until(lambda: _calls_at_least(who, 200), 60, "200 sends")
    finally:
        worker.send_signal(signal.SIGKILL)  # mid-batch: sends in flight, their outcomes unrecorded
        await worker.wait()
    in_flight = await template_calls(who)
    assert in_flight < n

    worker = await start_worker(overrides)
    try:
        await wait_until(lambda: _all_sent(services, n), 120, "every push sent")
    finally:
        worker.send_signal(signal.SIGTERM)
        await worker.wait()
    calls = await template_calls(who)
    # Only the rows the killed worker had claimed may go twice: its two lanes' batches at most.
    assert n <= calls <= n + 2 * batch
    assert len(await templates_to(who)) == n  # and the platform drops those (client_msg_id)


async def test_two_workers_on_postgresql_send_ten_thousand_pushes_once_each(
    resident: Any, people: Any, clock: Any, db_url: str
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip(PG_ONLY)
    _, services = people
    clock.at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)  # the workers read real time
    first = await follower(resident)
    people_ids = [await identity_of(services, first.openid)]
    for i in range(19):  # twenty followers, five hundred pushes each
        other = await resident(f"居民{i}")
        await other.sandbox("POST", f"users/{other.openid}/follow", {})
        people_ids.append(await identity_of(services, other.openid))
    n = 10_000
    await queue(services, people_ids, n)
    overrides = _worker_overrides(services, batch_size=100)
    workers = [await start_worker(overrides) for _ in range(2)]
    try:
        await wait_until(lambda: _all_sent(services, n), 300, "every push sent")
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        await asyncio.gather(*(w.wait() for w in workers))
    assert await template_calls(first) == n


async def _calls_at_least(who: Resident, n: int) -> bool:
    return await template_calls(who) >= n


async def _all_sent(services: Any, n: int) -> bool:
    return (await statuses(services)).get("sent", 0) == n
