"""An owner is told when someone else binds their archive — even when WeChat fails at that moment:
the notice waits in the outbox and the worker sends it, once."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from wechat_backend.db.models import Identity, Notification
from wechat_backend.notify import after_failure, retry_delay
from wechat_backend.notify.outbox import LEASE

from .conftest import ELDER, PARENT_OF_CHILD_PHONE, person


async def _notices(services: Any) -> list[tuple[str, int, int | None]]:
    async with services.sessions() as s:
        rows = await s.execute(select(Notification.status, Notification.attempts, Notification.last_errcode))
        return [tuple(r) for r in rows.all()]


async def _owner_and_daughter(resident: Any, clock: Any) -> tuple[Any, Any]:
    owner = await resident("刘阿姨", unionid=True)
    await owner.follow_and_web_login()  # pushes reach her through the official account
    await owner.bind(ELDER)
    clock.advance(seconds=61)  # one code per phone per minute
    return owner, await resident("女儿")


async def _bound_while_wechat_fails(owner: Any, daughter: Any, errcode: int, count: int = 1) -> None:
    """The daughter binds while the account's customer-service messages fail ``count`` times."""
    await owner.sandbox("POST", "faults", {"api": "cgi-bin/message/custom/send", "errcode": errcode, "count": count})
    await daughter.bind(ELDER, relation="child")


async def _messages(owner: Any) -> list[dict[str, Any]]:
    return await owner.sandbox("GET", f"users/{owner.openid}/messages")


async def test_a_notice_wechat_refused_at_first_is_sent_by_the_worker(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    owner, daughter = await _owner_and_daughter(resident, clock)
    await _bound_while_wechat_fails(owner, daughter, 45009)
    assert await _messages(owner) == []
    assert await _notices(services) == [("pending", 1, 45009)]

    assert (await services.outbox.run_once()).claimed == 0  # not due yet: a minute's wait first
    clock.advance(seconds=retry_delay(1).total_seconds())
    done = await services.outbox.run_once()
    assert (done.sent, done.retry, done.dead) == (1, 0, 0)
    pushed = await _messages(owner)
    assert len(pushed) == 1 and "子女" in pushed[0]["text"] and "刘" not in pushed[0]["text"]
    assert await _notices(services) == [("sent", 2, None)]
    clock.advance(hours=2)
    assert (await services.outbox.run_once()).claimed == 0  # sent once, never again
    assert len(await _messages(owner)) == 1


async def test_a_notice_whose_first_send_never_recorded_waits_for_the_lease(
    resident: Any, people: Any, clock: Any
) -> None:
    _, services = people
    owner, daughter = await _owner_and_daughter(resident, clock)
    outbox, services.binding._outbox = services.binding._outbox, None  # the process died after the commit
    try:
        await daughter.bind(ELDER, relation="child")
    finally:
        services.binding._outbox = outbox
    assert await _notices(services) == [("pending", 0, None)]
    assert (await services.outbox.run_once()).claimed == 0  # the request still had its turn
    clock.advance(seconds=LEASE.total_seconds())
    assert (await services.outbox.run_once()).sent == 1
    assert len(await _messages(owner)) == 1


async def test_two_workers_at_once_send_a_notice_once(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    owner, daughter = await _owner_and_daughter(resident, clock)
    await _bound_while_wechat_fails(owner, daughter, -1)
    clock.advance(seconds=retry_delay(1).total_seconds())
    passes = await asyncio.gather(*(services.outbox.run_once() for _ in range(4)))
    assert sum(p.sent for p in passes) == 1
    assert len(await _messages(owner)) == 1


async def test_an_owner_who_unfollowed_is_skipped_without_a_call(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    owner, daughter = await _owner_and_daughter(resident, clock)
    await _bound_while_wechat_fails(owner, daughter, -1)
    await owner.sandbox("POST", f"users/{owner.openid}/unfollow", {})
    clock.advance(seconds=retry_delay(1).total_seconds())
    assert (await services.outbox.run_once()).claimed == 0  # the unfollow skipped it at once
    assert await _messages(owner) == []
    assert await _notices(services) == [("skipped", 1, 43004)]


async def test_tries_stop_at_the_limit_with_growing_waits(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    owner, daughter = await _owner_and_daughter(resident, clock)
    await _bound_while_wechat_fails(owner, daughter, 45047, count=0)  # until cleared
    limit = services.settings.notify.max_attempts
    for tries in range(1, limit):
        wait = retry_delay(tries).total_seconds()
        clock.advance(seconds=wait * 0.8 - 1)  # the waits are spread over 80–100 % of the delay
        assert (await services.outbox.run_once()).claimed == 0  # not before its time
        clock.advance(seconds=wait * 0.2 + 1)
        assert (await services.outbox.run_once()).claimed == 1
    assert await _notices(services) == [("dead", limit, 45047)]
    await owner.sandbox("DELETE", "faults")
    clock.advance(days=1)
    assert (await services.outbox.run_once()).claimed == 0


async def test_two_owners_binding_each_others_archive_at_once_both_succeed(
    resident: Any, people: Any, clock: Any
) -> None:
    """Each verify locks its archive and its person's identities, then writes a notice to the other
    owner's identity: the locks must not block each other's foreign-key checks (no deadlock)."""
    husband, wife = await resident("丈夫", unionid=True), await resident("妻子", unionid=True)
    for someone, own in ((husband, ELDER), (wife, PARENT_OF_CHILD_PHONE)):
        await someone.follow_and_web_login()
        await someone.bind(own)
    for _ in range(4):
        clock.advance(seconds=61)  # one code per phone per minute
        to_wife = await husband.start(PARENT_OF_CHILD_PHONE, relation="spouse")
        to_husband = await wife.start(ELDER, relation="spouse")
        assert to_wife.status_code == to_husband.status_code == 201
        codes = [await husband.last_code(person(PARENT_OF_CHILD_PHONE)["phone"])]
        codes.append(await wife.last_code(person(ELDER)["phone"]))
        done = await asyncio.gather(
            husband.verify(to_wife.json()["bind_id"], codes[0]), wife.verify(to_husband.json()["bind_id"], codes[1])
        )
        assert [r.status_code for r in done] == [200, 200], [r.text for r in done]
        for who, r in zip((husband, wife), done, strict=True):
            assert (await who.call("DELETE", f"/api/v1/bindings/{r.json()['binding_id']}")).status_code == 204


def test_the_retry_policy() -> None:
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 10)] == [60, 120, 240, 480, 3600]
    assert after_failure(45009, 1, 5) == "pending"  # the day's quota: again after midnight
    assert after_failure(None, 4, 5) == "pending"
    assert after_failure(None, 5, 5) == "dead"
    assert after_failure(43004, 1, 5) == "skipped"  # no longer follows the account
    assert after_failure(43101, 1, 5) == "skipped"  # refused this push
    assert after_failure(40003, 1, 5) == "skipped"  # not an openid of this account


async def test_a_notice_that_cannot_be_read_is_given_up_and_the_others_still_go(
    resident: Any, people: Any, clock: Any
) -> None:
    _, services = people
    owner = await resident("刘阿姨", unionid=True)
    await owner.follow_and_web_login()
    async with services.sessions.begin() as s:
        oa = await s.scalar(select(Identity.id).where(Identity.openid == owner.openid, Identity.channel == "oa"))
        for key, sealed in (("unreadable", b"k1:not a ciphertext"), ("readable", None)):
            dedup = f"binding_added:test:{key}"
            if sealed is None:
                sealed = services.keyring.seal({"relation": "spouse"}, f"notification:{dedup}")
            s.add(
                Notification(
                    identity_id=oa,
                    kind="binding_added",
                    dedup_key=dedup,
                    due_at=clock.now(),
                    sealed=sealed,
                    key_id="k1",
                )
            )
    done = await services.outbox.run_once()
    assert (done.sent, done.retry, done.dead) == (1, 0, 1)
    assert [m["text"][:20] for m in await _messages(owner)] == ["您的健康档案刚刚被另一个微信以“配偶”关"]
