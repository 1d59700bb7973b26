"""Binding through the resident JSON API, as the mini-program does it: consent, start, the code
from the SMS inbox, verify, and the archive in the list."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, select

from wechat_backend.binding.consent import NOTICE_PARAGRAPHS, NOTICE_TITLE, NOTICE_VERSION
from wechat_backend.db.models import AuditEvent, BindAttempt, Binding

from .conftest import (
    CHILD,
    ELDER,
    MOTHER_PHONE,
    NEWBORN,
    NEWBORN_PARENT_PHONE,
    PARENT_OF_CHILD_PHONE,
    SON_PHONE,
    TEEN,
    person,
)


async def test_bind_myself_and_see_the_archive(resident: Any, people: Any) -> None:
    _, services = people
    me = await resident("刘阿姨")
    started = await me.start(ELDER)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["phone"] == "139****0001" and body["expires_in"] == 300 and body["resend_after"] == 60

    sms = (await me.inbox(person(ELDER)["phone"]))[0]["text"]
    assert sms.startswith("您正在绑定刘**的健康档案，验证码") and sms.endswith("5分钟内有效。请勿告诉他人。")

    bound = await me.verify(body["bind_id"], await me.last_code(person(ELDER)["phone"]))
    assert bound.status_code == 200, bound.text
    archive = bound.json()
    assert archive["name"] == "刘**" and archive["open"] is True and archive["relation"] == "self"
    assert archive["id_number"].startswith("3") and "*" in archive["id_number"]
    assert person(ELDER)["id_number"] not in bound.text and person(ELDER)["phone"] not in bound.text

    listed = await me.archives()
    assert [a["id"] for a in listed] == [archive["id"]]
    assert listed[0]["institution"] == "莘县燕店镇卫生院"

    async with services.sessions() as s:
        actions = (await s.scalars(select(AuditEvent.action).order_by(AuditEvent.id))).all()
        attempts = (await s.execute(select(BindAttempt.status, BindAttempt.outcome, BindAttempt.code_hash))).all()
    assert {"consent", "bind_start", "bind_code", "bind", "archive_list"} <= set(actions)
    # The attempt records that the provider took the code; the code is gone once used.
    assert [tuple(a) for a in attempts] == [("verified", "sent", None)]


async def test_a_mother_binds_her_child_with_the_phone_the_child_archive_lists(resident: Any) -> None:
    mum = await resident("小明妈妈")
    archive = await mum.bind(CHILD, relation="child", phone=MOTHER_PHONE)
    assert archive["name"] == "王**" and archive["relation"] == "child" and archive["age"] == 6


async def test_a_child_under_14_cannot_be_bound_as_oneself(resident: Any) -> None:
    someone = await resident()
    r = await someone.start(CHILD, relation="self", phone=MOTHER_PHONE)
    # The contact phone is not the archive's own phone, and "self" only takes the own phone.
    assert r.status_code == 400 and r.json()["error"] == "mismatch"


async def test_a_teen_may_bind_herself(resident: Any) -> None:
    teen = await resident("小丽")
    assert (await teen.bind(TEEN))["relation"] == "self"


async def test_a_son_binds_his_mother_with_his_own_phone_listed_as_her_contact(resident: Any) -> None:
    son = await resident("吴强")
    archive = await son.bind(PARENT_OF_CHILD_PHONE, relation="parent", phone=SON_PHONE)
    assert archive["relation"] == "parent"


async def test_a_newborn_without_an_id_number_is_found_by_archive_number(resident: Any) -> None:
    dad = await resident("张伟")
    a = person(NEWBORN)
    r = await dad.call(
        "POST",
        "/api/v1/bind/start",
        {"name": a["name"], "archive_no": a["archive_no"], "phone": NEWBORN_PARENT_PHONE, "relation": "child"},
    )
    assert r.status_code == 201, r.text
    bound = await dad.verify(r.json()["bind_id"], await dad.last_code(NEWBORN_PARENT_PHONE))
    assert bound.status_code == 200 and bound.json()["id_number"] is None


async def test_the_owner_is_told_sees_who_is_bound_and_can_remove_them(resident: Any, people: Any, clock: Any) -> None:
    _, services = people
    owner = await resident("刘阿姨", unionid=True)
    await owner.follow_and_web_login()  # pushes reach her through the official account
    mine = await owner.bind(ELDER)
    clock.advance(seconds=61)  # one code per phone per minute
    daughter = await resident("女儿")
    await daughter.bind(ELDER, relation="child")

    pushed = await owner.sandbox("GET", f"users/{owner.openid}/messages")
    assert pushed and "子女" in pushed[0]["text"] and "刘" not in pushed[0]["text"]

    r = await owner.call("GET", f"/api/v1/archives/{mine['id']}/bindings")
    assert r.status_code == 200, r.text
    bindings = r.json()["bindings"]
    assert [(b["relation"], b["is_me"]) for b in bindings] == [("self", True), ("child", False)]

    # The daughter is not the owner: she may not list them, and gets "not found".
    assert (await daughter.call("GET", f"/api/v1/archives/{mine['id']}/bindings")).status_code == 404

    gone = await owner.call("DELETE", f"/api/v1/bindings/{bindings[1]['id']}")
    assert gone.status_code == 204
    assert await daughter.archives() == []
    async with services.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Binding)) == 1


async def test_anyone_can_unbind_their_own_but_not_someone_elses(resident: Any) -> None:
    a = await resident("甲")
    b = await resident("乙")
    mine = await a.bind(ELDER)
    assert (await b.call("DELETE", f"/api/v1/bindings/{mine['binding_id']}")).status_code == 404
    assert (await b.call("GET", f"/api/v1/archives/{mine['id']}")).status_code == 404
    assert (await a.call("DELETE", f"/api/v1/bindings/{mine['binding_id']}")).status_code == 204
    assert await a.archives() == []


async def test_consent_comes_first(resident: Any) -> None:
    newcomer = await resident("新用户", agree=False)
    r = await newcomer.start(ELDER)
    assert r.status_code == 403 and r.json()["error"] == "consent_required"
    assert await newcomer.inbox(person(ELDER)["phone"]) == []
    old = await newcomer.call("POST", "/api/v1/consent", {"version": "2001-01"})
    assert old.status_code == 400 and old.json()["field"] == "version"


# Each version of the privacy notice and a digest of its words: people agree to a version, so new
# words need a new version (and a new line here), or the recorded agreements would be to other words.
NOTICE_DIGESTS = {
    "2026-11": "95ff21c7e3a58ca070a57a97988cb09d1d94273f189d515cce87901fb8b6a06c",
    "2026-12": "a86191e64c0a94c671d863baa32ae47b87774e9b52c0df64e6ff6f8b8c1d4cc6",
    "2026-12b": "7e37f4c7a1c67e90af5ba5cf5fcc27f69ad1a693ba0b44a500062981dd104593",
}


def test_new_words_in_the_privacy_notice_come_with_a_new_version() -> None:
    words = "\n".join((NOTICE_TITLE, *NOTICE_PARAGRAPHS)).encode()
    assert NOTICE_DIGESTS.get(NOTICE_VERSION) == hashlib.sha256(words).hexdigest(), (
        "the notice's text changed: give it a new NOTICE_VERSION and add its digest here"
    )


def test_the_privacy_notice_names_the_reminders_and_who_reads_questions() -> None:
    text = "".join(NOTICE_PARAGRAPHS)
    assert "提醒设置" in text  # reminders exist, and can be turned off there
    assert "留言" in text and "授权工作人员" in text  # who reads a resident's questions
    assert "谁查看了档案" in text  # what residents can read about who read theirs


async def test_a_guardian_is_told_when_someone_else_binds_the_child(resident: Any, clock: Any) -> None:
    mum = await resident("小明妈妈", unionid=True)
    await mum.follow_and_web_login()
    child = await mum.bind(CHILD, relation="child", phone=MOTHER_PHONE)
    clock.advance(seconds=61)
    stranger = await resident("陌生人")
    await stranger.bind(CHILD, relation="other", phone=MOTHER_PHONE)
    pushed = await mum.sandbox("GET", f"users/{mum.openid}/messages")
    assert pushed and "其他家人" in pushed[0]["text"]
    r = await mum.call("GET", f"/api/v1/archives/{child['id']}/bindings")
    assert r.status_code == 200 and [b["relation"] for b in r.json()["bindings"]] == ["child", "other"]
    other = r.json()["bindings"][1]["id"]
    assert (await mum.call("DELETE", f"/api/v1/bindings/{other}")).status_code == 204
    assert await stranger.archives() == []


async def test_other_family_of_a_young_child_neither_see_the_bindings_nor_evict_a_parent(
    resident: Any, clock: Any
) -> None:
    mum = await resident("小明妈妈")
    child = await mum.bind(CHILD, relation="child", phone=MOTHER_PHONE)
    clock.advance(seconds=61)
    aunt = await resident("拿着妈妈手机的人")
    await aunt.bind(CHILD, relation="other", phone=MOTHER_PHONE)
    assert (await aunt.call("GET", f"/api/v1/archives/{child['id']}/bindings")).status_code == 404
    assert (await aunt.call("DELETE", f"/api/v1/bindings/{child['binding_id']}")).status_code == 404
    assert [a["id"] for a in await mum.archives()] == [child["id"]]


async def test_two_parents_of_a_young_child_cannot_evict_each_other(resident: Any, clock: Any) -> None:
    mum = await resident("小明妈妈")
    child = await mum.bind(CHILD, relation="child", phone=MOTHER_PHONE)
    clock.advance(seconds=61)
    dad = await resident("小明爸爸")
    his = await dad.bind(CHILD, relation="child", phone=MOTHER_PHONE)
    r = await dad.call("GET", f"/api/v1/archives/{his['id']}/bindings")
    assert r.status_code == 200, r.text
    (hers,) = [b for b in r.json()["bindings"] if not b["is_me"]]
    assert hers["owner"] is True and hers["removable"] is False
    assert (await dad.call("DELETE", f"/api/v1/bindings/{hers['id']}")).status_code == 404
    assert (await mum.call("DELETE", f"/api/v1/bindings/{his['binding_id']}")).status_code == 404
    assert [a["id"] for a in await mum.archives()] == [child["id"]]
    assert [a["id"] for a in await dad.archives()] == [child["id"]]


async def test_the_archive_number_route_is_only_for_archives_without_an_id_number(resident: Any) -> None:
    me = await resident()
    a = person(ELDER)
    r = await me.call(
        "POST", "/api/v1/bind/start", {"name": a["name"], "archive_no": a["archive_no"], "phone": a["phone"]}
    )
    assert r.status_code == 400 and r.json()["error"] == "mismatch"
    assert await me.inbox(a["phone"]) == []


async def test_an_owner_cannot_evict_another_self_binding(resident: Any, clock: Any) -> None:
    first = await resident("本人")
    mine = await first.bind(ELDER)
    clock.advance(seconds=61)
    holder = await resident("拿着手机的人")  # can read the archive's phone, so can also bind as self
    theirs = await holder.bind(ELDER)
    r = await holder.call("GET", f"/api/v1/archives/{theirs['id']}/bindings")
    first_binding = next(b["id"] for b in r.json()["bindings"] if not b["is_me"])
    assert (await holder.call("DELETE", f"/api/v1/bindings/{first_binding}")).status_code == 404
    assert [a["id"] for a in await first.archives()] == [mine["id"]]
