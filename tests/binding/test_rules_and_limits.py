"""The binding policy's pure parts, the client address rule, and the Redis rolling windows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import redis.asyncio as aioredis

from wechat_backend.binding.rules import (
    match,
    names_match,
    new_code,
    owner_may_remove,
    owner_relations,
    phone_target,
    relation_allowed,
)
from wechat_backend.client_ip import client_ip
from wechat_backend.clock import FixedClock
from wechat_backend.errors import RateLimited
from wechat_backend.rate_limits import RateLimits, Window

FIELDS = {"name": "阿依古丽·买买提", "id_number": "X", "phone": "13900000001", "contact_phone": "13900000002"}


@pytest.mark.parametrize(
    ("typed", "ok"),
    [
        ("阿依古丽·买买提", True),
        ("阿依古丽•买买提", True),  # another middle dot
        ("阿依古丽.买买提", True),
        (" 阿依古丽 · 买买提 ", True),
        ("阿依古丽买买提", False),
        ("阿依古丽·买买", False),
        ("", False),
    ],
)
def test_names_match_after_normalising(typed: str, ok: bool) -> None:
    assert names_match(typed, FIELDS["name"]) is ok


def test_fullwidth_letters_compare_equal() -> None:
    assert names_match("ＬＩＵ", "LIU")


def test_an_archive_without_a_name_never_matches() -> None:
    assert not names_match("", None) and not names_match("刘", "")


def test_oneself_only_with_the_own_phone_family_also_with_the_contact_phone() -> None:
    assert phone_target("self", "13900000001", FIELDS) == "phone"
    assert phone_target("self", "13900000002", FIELDS) is None
    for relation in ("child", "parent", "spouse", "other"):
        assert phone_target(relation, "13900000002", FIELDS) == "contact_phone"
        assert phone_target(relation, "13900000001", FIELDS) == "phone"
    assert phone_target("child", "13900000003", FIELDS) is None
    assert phone_target("child", "", {"phone": None, "contact_phone": None}) is None


def test_match_needs_the_identifier_the_name_and_a_phone() -> None:
    kw = {"name": FIELDS["name"], "phone": "13900000001", "relation": "self", "archive_no": None}
    assert match(FIELDS, id_number="X", **kw) is not None
    assert match(FIELDS, id_number="Y", **kw) is None  # a blind-index neighbour
    assert match(FIELDS, id_number="X", **{**kw, "name": "别人"}) is None


@pytest.mark.parametrize(
    ("birth", "relation", "ok"),
    [
        ("2012-11-26", "self", False),  # 13 today
        ("2012-11-25", "self", True),  # 14 today
        ("2012-11-26", "child", True),
        ("2012-11-26", "other", True),
        ("2012-11-26", "parent", False),
        ("2012-11-26", "spouse", False),
        ("1950-01-01", "spouse", True),
    ],
)
def test_under_14_only_through_a_guardian(birth: str, relation: str, ok: bool) -> None:
    assert relation_allowed(relation, dt.date.fromisoformat(birth), dt.date(2026, 11, 25)) is ok


@pytest.mark.parametrize(
    ("birth", "owners"),
    [("2012-11-26", ("child",)), ("2012-11-25", ("self",)), ("1950-01-01", ("self",))],
)
def test_the_person_owns_an_archive_and_a_young_childs_parents_own_its(birth: str, owners: tuple[str, ...]) -> None:
    assert owner_relations(dt.date.fromisoformat(birth), dt.date(2026, 11, 25)) == owners


@pytest.mark.parametrize(
    ("relation", "owners", "ok"),
    [
        ("self", ("self",), False),  # another "self": ask the institution
        ("child", ("self",), True),
        ("other", ("self",), True),
        ("child", ("child",), False),  # the child's other parent
        ("other", ("child",), True),
    ],
)
def test_an_owner_may_remove_any_binding_but_another_owners(relation: str, owners: tuple[str, ...], ok: bool) -> None:
    assert owner_may_remove(relation, owners) is ok


def test_codes_are_six_digits_and_vary() -> None:
    codes = {new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes) and len(codes) > 190


@pytest.mark.parametrize(
    ("remote", "xff", "trusted", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", (), "203.0.113.9"),  # no proxy trusted: the header is ignored
        ("203.0.113.9", "1.2.3.4", ("10.0.0.0/8",), "203.0.113.9"),  # not from a trusted proxy
        ("10.0.0.2", "1.2.3.4", ("10.0.0.0/8",), "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", ("10.0.0.0/8",), "1.2.3.4"),  # forged left part ignored
        ("10.0.0.2", "garbage", ("10.0.0.0/8",), "10.0.0.2"),
        ("10.0.0.2", "", ("10.0.0.0/8",), "10.0.0.2"),
    ],
)
def test_client_ip(remote: str, xff: str, trusted: tuple[str, ...], expected: str) -> None:
    assert client_ip(remote, xff, trusted) == expected


async def test_rolling_windows_take_all_or_nothing(redis: aioredis.Redis, prefix: str) -> None:
    clock = FixedClock(dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC))
    limits = RateLimits(redis, clock)
    gap, hour = Window(f"{prefix}:gap", 60, 1), Window(f"{prefix}:hour", 3600, 3)
    await limits.take([gap, hour], "t")
    with pytest.raises(RateLimited) as refused:
        await limits.take([gap, hour], "t")
    assert refused.value.headers["Retry-After"] == "60" and refused.value.window == gap
    assert await redis.zcard(hour.key) == 1  # the refused event was not counted anywhere
    for _ in range(2):
        clock.advance(seconds=61)
        await limits.take([gap, hour], "t")
    clock.advance(seconds=61)
    with pytest.raises(RateLimited) as refused:
        await limits.take([gap, hour], "t")
    assert int(refused.value.headers["Retry-After"]) == 3600 - 3 * 61 and refused.value.window == hour
    clock.advance(seconds=3600 - 3 * 61)
    await limits.take([gap, hour], "t")  # the first event left the hour window


async def test_ten_a_day_per_phone(resident: Any, people: Any, clock: Any) -> None:
    from .conftest import ELDER, person

    me = await resident()
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    sent = 1
    for _ in range(30):
        clock.advance(seconds=61 * 13)  # past the minute gap and spread over the hours
        r = await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})
        if r.status_code == 429:
            break
        sent += 1
    assert sent == 10
    assert len(await me.inbox(person(ELDER)["phone"])) == 10


async def test_a_new_code_replaces_the_old(resident: Any, people: Any, clock: Any) -> None:
    from .conftest import ELDER, person

    me = await resident()
    phone = person(ELDER)["phone"]
    bind_id = (await me.start(ELDER)).json()["bind_id"]
    first = await me.last_code(phone)
    clock.advance(seconds=61)
    assert (await me.call("POST", "/api/v1/bind/resend", {"bind_id": bind_id})).status_code == 200
    second = await me.last_code(phone)
    if first != second:
        assert (await me.verify(bind_id, first)).status_code == 400
    assert (await me.verify(bind_id, second)).status_code == 200


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # same subscriber network, same bucket
        ("::ffff:1.2.3.4", "1.2.3.4"),
        ("-", "-"),
    ],
)
def test_the_per_address_limit_counts_ipv6_by_its_64(address: str, subject: str) -> None:
    from wechat_backend.client_ip import rate_subject

    assert rate_subject(address) == subject
