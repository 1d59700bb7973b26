"""The 工作台 login, through the real app and the WeChat sandbox: in WeChat (OAuth, then an SMS code
the first time and every 12 hours), on a desktop (a QR code the linked member scans, then confirms
on the page the scan's message links to), the session's limits, logout, and the refusals that must
not tell whose phone is staff or let someone else's scan log a desktop in."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import Live, make_settings
from sms_fakes import SIGN_NAME, TEMPLATE_ID, running_aliyun, running_tencent
from sqlalchemy import select
from test_sandbox_platform import running_sandbox
from test_sms import aliyun_settings, tencent_settings

from staff.conftest import INSTITUTION
from wechat_backend import audit
from wechat_backend.db.models import AuditEvent, Identity, Staff
from wechat_backend.services import Services, build_services
from wechat_backend.sms import StaffCodeSms, make_sender
from wechat_backend.staff.login import (
    IDENTITY_LINKED,
    LINKED_ELSEWHERE,
    NOT_STAFF,
    QR_REFUSED,
    link_outcome,
    staff_next,
)
from wechat_backend.staff.qr_confirm import EXPIRED, GONE, OTHER_IDENTITY, USED_UP, confirm_outcome
from wechat_backend.staff.qr_confirm import NOT_STAFF as NOT_STAFF_SCAN
from wechat_backend.staff.qr_device import Desktop, browser_family, partial_ip
from wechat_backend.staff.qr_login import Pending, QrLogins
from wechat_backend.wechat.menu import menus

WECHAT_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 MicroMessenger/8.0.50"
DESKTOP_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36"
STAFF_SMS = re.compile(r"^您正在登录健康档案工作台，验证码(\d{6})，5分钟内有效。如非本人操作请忽略。$")
FORM_ERROR = re.compile(r'data-test="form-error">([^<]*)<')


def new_phone() -> str:
    return "139" + "".join(secrets.choice("0123456789") for _ in range(8))


def form_error(r: httpx.Response) -> str:
    found = FORM_ERROR.search(r.text)
    assert found, r.text
    return found[1]


@dataclass
class Browser:
    """A browser with cookies (and an XSRF token) that follows redirects one hop at a time; in
    WeChat it also goes through the sandbox's OAuth consent as the given user."""

    base: str
    client: httpx.AsyncClient
    openid: str = ""
    hops: list[str] = field(default_factory=list)

    async def go(self, path: str, *, method: str = "GET", data: dict[str, str] | None = None) -> httpx.Response:
        url = urljoin(self.base, path)
        for _ in range(12):
            r = await self.client.request(method, url, data=data)
            self.hops.append(f"{method} {urlsplit(url).path} {r.status_code}")
            if r.status_code not in (302, 303):
                return r
            target = urljoin(url, r.headers["Location"])
            if "connect/oauth2/authorize" in target:  # the consent WeChat shows: take its code
                state = parse_qs(urlsplit(target).query)["state"][0]
                code = (await self.sandbox("POST", f"users/{self.openid}/oauth-code", {}))["code"]
                target = urljoin(self.base, "/oauth/callback?" + httpx.QueryParams(code=code, state=state).__str__())
            url, method, data = target, "GET", None
        raise AssertionError(f"too many redirects: {self.hops}")

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post(urljoin(self.base, path), data=data or {})

    async def poll(self, token: str) -> httpx.Response:
        return await self.client.post(urljoin(self.base, "/staff/login/qr"), json={"token": token})

    async def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        r = await self.client.request(method, f"{self.base}/sandbox/api/{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()

    def staff_cookie(self) -> str | None:
        return self.client.cookies.get("wb_staff")


@dataclass
class Member:
    public_id: str
    phone: str
    name: str


class World:
    """The app, its services, and helpers to make staff members, WeChat users and browsers."""

    def __init__(self, live: Live) -> None:
        self.base, self.services = live
        self.http = httpx.AsyncClient(trust_env=False, timeout=20)
        self.clients: list[httpx.AsyncClient] = [self.http]

    def browser(self, ua: str, openid: str = "") -> Browser:
        token = secrets.token_hex(16)
        client = httpx.AsyncClient(
            trust_env=False,
            timeout=20,
            cookies={"_xsrf": token},
            headers={"User-Agent": ua, "X-XSRFToken": token},
        )
        self.clients.append(client)
        return Browser(self.base, client, openid)

    async def member(self, *, name: str = "王医生", role: str = "institution") -> Member:
        phone = new_phone()
        added = await self.services.staff.add(name=name, phone=phone, role=role, institution_code=INSTITUTION)
        return Member(added.public_id, phone, name)

    async def wechat_user(self, nickname: str = "工作人员", *, follow: bool = True) -> Browser:
        """A WeChat user on their phone (following the account), and their in-WeChat browser."""
        b = self.browser(WECHAT_UA)
        b.openid = (await b.sandbox("POST", "users", {"nickname": nickname}))["openid"]
        if follow:
            await b.sandbox("POST", f"users/{b.openid}/follow", {})
        return b

    async def codes_to(self, phone: str) -> list[str]:
        """The codes texted to ``phone``, newest first (each text checked word for word)."""
        r = await self.http.get(f"{self.base}/sandbox/api/sms", params={"phone": phone})
        found = [STAFF_SMS.match(m["text"]) for m in r.json()]
        assert all(found), r.text
        return [m[1] for m in found if m]

    async def last_code(self, phone: str) -> str:
        codes = await self.codes_to(phone)
        assert codes, "no SMS"
        return codes[0]

    async def row(self, member: Member) -> Staff:
        async with self.services.sessions() as s:
            return (await s.scalars(select(Staff).where(Staff.public_id == member.public_id))).one()

    async def identity_id(self, openid: str) -> int:
        async with self.services.sessions() as s:
            return (await s.scalars(select(Identity.id).where(Identity.openid == openid))).one()

    async def audit_rows(self, action: str) -> list[AuditEvent]:
        async with self.services.sessions() as s:
            query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            return list((await s.scalars(query)).all())

    async def wechat_login(self, phone_browser: Browser, member: Member, *, typed: bool = True) -> httpx.Response:
        """The whole first (or 12-hourly) login in WeChat: form, code, verify. Returns the last page."""
        r = await phone_browser.go("/staff/login?next=/staff/")
        assert r.status_code == 200 and 'data-test="staff-login"' in r.text, phone_browser.hops
        r = await phone_browser.post("/staff/login/sms", {"phone": member.phone} if typed else {})
        assert r.status_code == 303 and r.headers["Location"] == "/staff/login/code", r.text
        code = await self.last_code(member.phone)
        r = await phone_browser.post("/staff/login/code", {"code": code})
        assert r.status_code == 303, r.text
        return await phone_browser.go(r.headers["Location"])


@pytest.fixture
async def world(people: Live) -> Any:
    w = World(people)
    try:
        yield w
    finally:
        for client in w.clients:
            await client.aclose()


async def linked_member(world: World) -> tuple[Member, Browser]:
    member = await world.member()
    phone = await world.wechat_user()
    r = await world.wechat_login(phone, member)
    assert r.status_code == 200 and member.name in r.text
    return member, phone


def staff_only(world: World, session_id: str) -> httpx.AsyncClient:
    """A client holding nothing but this staff cookie (no resident session beside it)."""
    client = httpx.AsyncClient(trust_env=False, timeout=20, cookies={"wb_staff": session_id})
    world.clients.append(client)
    return client


async def desktop_page(world: World) -> tuple[Browser, str]:
    desk = world.browser(DESKTOP_UA)
    r = await desk.go("/staff/login?next=/staff/")
    assert r.status_code == 200
    assert re.search(r'<img class="st-qr" src="data:image/svg\+xml[^"]+"', r.text), r.text
    token = re.search(r'data-token="([^"]+)"', r.text)
    assert token and desk.client.cookies.get("wb_staff_qr")
    return desk, token[1]


# --------------------------------------------------------------------------- in WeChat


async def test_the_first_login_in_wechat_links_the_identity_and_tags_it_for_the_staff_menu(world: World) -> None:
    member = await world.member()
    phone = await world.wechat_user()
    r = await phone.go("/staff/login?next=/staff/")
    assert r.status_code == 200 and 'name="phone"' in r.text  # not linked yet: type the phone
    assert any(h.startswith("GET /oauth/callback") for h in phone.hops)  # through WeChat's login

    r = await phone.post("/staff/login/sms", {"phone": member.phone})
    assert r.status_code == 303
    page = await phone.go("/staff/login/code")
    assert f"{member.phone[:3]}****{member.phone[-4:]}" in page.text and member.phone not in page.text
    (code,) = await world.codes_to(member.phone)
    r = await phone.post("/staff/login/code", {"code": code})
    assert r.status_code == 303 and r.headers["Location"] == "/staff/"
    home = await phone.go("/staff/")
    assert home.status_code == 200 and 'data-test="staff-who"' in home.text and member.name in home.text

    row = await world.row(member)
    assert row.identity_id == await world.identity_id(phone.openid) and row.linked_at is not None
    assert row.sms_verified_at == world.services.clock.now()
    user = await phone.sandbox("GET", f"users/{phone.openid}")
    assert world.services.settings.menu.staff_tag in user["tags"]
    (link,) = await world.audit_rows("staff_link")
    assert (link.actor_type, link.actor_id, link.result) == ("staff", f"staff:{member.public_id}", "ok")
    logins = await world.audit_rows("staff_login")
    assert [r.detail for r in logins] == [{"via": "wechat", "factor": "sms"}]


async def test_within_12_hours_the_linked_member_needs_no_code_and_after_that_one_again(world: World) -> None:
    member, phone = await linked_member(world)
    assert (await phone.post("/staff/logout")).status_code == 200
    assert phone.staff_cookie() is None

    world.services.clock.advance(hours=11)
    r = await phone.go("/staff/login?next=/staff/")
    assert r.status_code == 200 and member.name in r.text and r.url.path == "/staff/"
    assert len(await world.codes_to(member.phone)) == 1  # no new code

    world.services.clock.advance(hours=1, minutes=1)
    r = await phone.go("/staff/")
    assert 'data-test="linked-phone"' in r.text and 'name="phone"' not in r.text  # the code goes to the phone on file
    r = await phone.post("/staff/login/sms", {})
    assert r.status_code == 303
    r = await phone.post("/staff/login/code", {"code": await world.last_code(member.phone)})
    assert r.status_code == 303 and (await phone.go("/staff/")).status_code == 200
    assert len(await world.codes_to(member.phone)) == 2


async def test_fifteen_idle_minutes_end_the_staff_session(world: World) -> None:
    _, phone = await linked_member(world)
    session = phone.staff_cookie() or ""
    world.services.clock.advance(minutes=14)
    assert (await staff_only(world, session).get(world.base + "/staff/")).status_code == 200
    world.services.clock.advance(minutes=15)
    r = await staff_only(world, session).get(world.base + "/staff/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/staff/login")


async def test_disabling_a_member_ends_the_session_at_once_and_the_login_refuses_them(world: World) -> None:
    member, phone = await linked_member(world)
    await world.services.staff.disable(member.public_id)
    r = await phone.client.get(world.base + "/staff/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/staff/login")
    r = await phone.go("/staff/login?next=/staff/")
    assert 'name="phone"' in r.text  # the link of a disabled member counts for nothing
    world.services.clock.advance(minutes=2)
    r = await phone.post("/staff/login/sms", {"phone": member.phone})
    assert r.status_code == 400 and form_error(r) == NOT_STAFF
    assert phone.staff_cookie() is None


async def test_logout_ends_the_session_on_the_server(world: World) -> None:
    _, phone = await linked_member(world)
    session = phone.staff_cookie() or ""
    r = await phone.post("/staff/logout")
    assert r.status_code == 200 and 'data-test="logged-out"' in r.text and phone.staff_cookie() is None
    r = await staff_only(world, session).get(world.base + "/staff/")  # the old cookie, kept by someone
    assert r.status_code == 302 and r.headers["Location"].startswith("/staff/login")


async def test_a_wrong_code_counts_and_the_fifth_locks_the_code(world: World) -> None:
    member = await world.member()
    phone = await world.wechat_user()
    await phone.go("/staff/login?next=/staff/")
    await phone.post("/staff/login/sms", {"phone": member.phone})
    right = await world.last_code(member.phone)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    r = await phone.post("/staff/login/code", {"code": "12ab"})
    assert r.status_code == 400 and form_error(r) == "请输入短信中的6位数字验证码"  # not a try
    for left in (4, 3, 2, 1):
        r = await phone.post("/staff/login/code", {"code": wrong})
        assert r.status_code == 400 and form_error(r) == f"验证码不正确，还可以再输入{left}次"
    r = await phone.post("/staff/login/code", {"code": wrong})
    assert form_error(r) == "验证码错误次数过多，已失效，请重新获取验证码"
    r = await phone.post("/staff/login/code", {"code": right})
    assert r.status_code == 400 and form_error(r) == "验证码已失效，请重新获取验证码"
    assert phone.staff_cookie() is None and (await world.row(member)).identity_id is None
    reasons = [e.reason for e in await world.audit_rows("staff_verify")]
    assert reasons == ["wrong_code"] * 4 + ["locked", "expired"]


async def test_a_code_runs_out_after_five_minutes(world: World) -> None:
    member = await world.member()
    phone = await world.wechat_user()
    await phone.go("/staff/login?next=/staff/")
    await phone.post("/staff/login/sms", {"phone": member.phone})
    world.services.clock.advance(minutes=5)
    r = await phone.post("/staff/login/code", {"code": await world.last_code(member.phone)})
    assert r.status_code == 400 and form_error(r) == "验证码已失效，请重新获取验证码"
    r = await phone.go("/staff/login/code")  # the code page sends them back to start again
    assert 'name="phone"' in r.text


async def test_an_unknown_phone_and_a_disabled_members_phone_get_the_same_answer(world: World) -> None:
    disabled = await world.member(name="停用者")
    await world.services.staff.disable(disabled.public_id)
    unknown = new_phone()
    phone = await world.wechat_user()
    await phone.go("/staff/login?next=/staff/")
    answers = []
    for typed in (unknown, disabled.phone):
        r = await phone.post("/staff/login/sms", {"phone": typed})
        answers.append((r.status_code, form_error(r)))
        world.services.clock.advance(minutes=2)
    assert answers == [(400, NOT_STAFF)] * 2
    assert await world.codes_to(unknown) == [] and await world.codes_to(disabled.phone) == []
    rows = await world.audit_rows("staff_code")
    assert [r.reason for r in rows] == [None, None]  # the reasons are sealed, not in clear
    assert [audit.reason_of(r, world.services.keyring) for r in rows] == ["unknown_phone", "disabled"]
    r = await phone.post("/staff/login/sms", {"phone": "1390000"})
    assert r.status_code == 400 and "11位" in form_error(r)


async def test_the_phone_form_is_rate_limited_for_staff_and_other_phones_alike(world: World) -> None:
    member = await world.member()
    phone = await world.wechat_user()
    await phone.go("/staff/login?next=/staff/")
    assert (await phone.post("/staff/login/sms", {"phone": member.phone})).status_code == 303
    unknown = new_phone()
    assert (await phone.post("/staff/login/sms", {"phone": unknown})).status_code == 400
    # Within the minute, a second try: the same answer whether the phone is staff or not.
    again = [await phone.post("/staff/login/sms", {"phone": typed}) for typed in (member.phone, unknown)]
    assert [r.status_code for r in again] == [429, 429]
    assert form_error(again[0]) == form_error(again[1]) and "秒后再试" in form_error(again[0])
    assert len(await world.codes_to(member.phone)) == 1


async def test_another_wechat_cannot_link_a_member_already_linked(world: World) -> None:
    member, first = await linked_member(world)
    other = await world.wechat_user("别人")
    world.services.clock.advance(minutes=2)
    await other.go("/staff/login?next=/staff/")
    assert (await other.post("/staff/login/sms", {"phone": member.phone})).status_code == 303
    r = await other.post("/staff/login/code", {"code": await world.last_code(member.phone)})
    assert r.status_code == 409 and form_error(r) == LINKED_ELSEWHERE
    assert other.staff_cookie() is None
    assert (await world.row(member)).identity_id == await world.identity_id(first.openid)
    (denied,) = [e for e in await world.audit_rows("staff_link") if e.result == "denied"]
    assert audit.reason_of(denied, world.services.keyring) == "linked_elsewhere"


async def test_a_wechat_linked_to_an_active_member_cannot_link_a_second_one(world: World) -> None:
    """Two active members, one WeChat. A linked WeChat's codes always go to its own member, so this
    only happens in a race: the first link lands while the second member's code is out. Staged here
    by lifting the first link while the second code is asked for."""
    first, phone = await linked_member(world)
    second = await world.member(name="李医生")
    services = world.services
    async with services.sessions.begin() as s:
        row = (await s.scalars(select(Staff).where(Staff.public_id == first.public_id))).one()
        identity, row.identity_id = row.identity_id, None
    world.services.clock.advance(minutes=2)
    await phone.go("/staff/login?next=/staff/")
    assert (await phone.post("/staff/login/sms", {"phone": second.phone})).status_code == 303
    async with services.sessions.begin() as s:
        row = (await s.scalars(select(Staff).where(Staff.public_id == first.public_id))).one()
        row.identity_id = identity
    r = await phone.post("/staff/login/code", {"code": await world.last_code(second.phone)})
    assert r.status_code == 409 and form_error(r) == IDENTITY_LINKED
    assert (await world.row(second)).identity_id is None


async def test_a_member_added_again_after_a_disable_links_the_same_wechat(world: World) -> None:
    old, phone = await linked_member(world)
    await world.services.staff.disable(old.public_id)
    added = await world.services.staff.add(
        name=old.name, phone=old.phone, role="institution", institution_code=INSTITUTION
    )
    world.services.clock.advance(minutes=2)
    r = await world.wechat_login(phone, Member(added.public_id, old.phone, old.name))
    assert r.status_code == 200 and old.name in r.text
    assert (await world.row(old)).identity_id is None
    assert (await world.row(Member(added.public_id, "", ""))).identity_id == await world.identity_id(phone.openid)


async def test_a_failure_to_tag_for_the_staff_menu_does_not_stop_the_login(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    member = await world.member()
    phone = await world.wechat_user()
    fault = {"api": "cgi-bin/tags/members/batchtagging", "errcode": -1, "count": 0}
    assert (await world.http.post(world.base + "/sandbox/api/faults", json=fault)).status_code == 201
    r = await world.wechat_login(phone, member)
    assert r.status_code == 200 and member.name in r.text
    assert (await phone.sandbox("GET", f"users/{phone.openid}"))["tags"] == []
    (warning,) = [r for r in caplog.records if "tagging for the staff menu failed" in r.getMessage()]
    assert phone.openid not in warning.getMessage() and member.phone not in warning.getMessage()


async def test_a_resident_session_on_a_staff_route_is_403_and_never_a_staff_session(world: World) -> None:
    phone = await world.wechat_user("居民")
    r = await phone.go("/staff/login?next=/staff/")
    assert 'name="phone"' in r.text and phone.client.cookies.get("wb_session")
    assert (await phone.client.get(world.base + "/staff/")).status_code == 403
    assert phone.staff_cookie() is None


async def test_after_wechats_login_the_page_goes_on_by_itself_to_keep_the_strict_cookie(world: World) -> None:
    _, phone = await linked_member(world)
    await phone.post("/staff/logout")
    r = await phone.client.get(
        world.base + "/staff/login", params={"next": "/staff/stats"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert r.status_code == 200 and '<meta http-equiv="refresh" content="0;url=/staff/stats">' in r.text
    assert phone.staff_cookie()


def test_next_stays_on_the_staff_pages() -> None:
    assert staff_next("/staff/stats?county=371522") == "/staff/stats?county=371522"
    for elsewhere in (None, "", "/r/home", "https://evil.example/staff/", "//evil/staff/", "/staff/login?next=/x"):
        assert staff_next(elsewhere) == "/staff/"


def test_an_identity_is_linked_once() -> None:
    def outcome(**kw: Any) -> str:
        base = {"active": True, "linked_to": None, "identity_id": 7, "holder_active": None, "via": "wechat"}
        return link_outcome(**{**base, **kw})

    assert outcome() == "link"
    assert outcome(linked_to=7) == "keep"
    assert outcome(linked_to=8) == "linked_elsewhere"
    assert outcome(holder_active=True) == "identity_linked"
    assert outcome(holder_active=False) == "link"  # a disabled member's link is given up
    assert outcome(active=False, linked_to=7) == "disabled"
    assert outcome(via="qr") == "linked_elsewhere" and outcome(via="qr", linked_to=7) == "keep"


async def test_the_staff_menu_opens_the_staff_login(world: World) -> None:
    _, staff_menu = menus(world.services.settings)
    assert staff_menu[-1]["name"] == "工作台"
    assert staff_menu[-1]["url"] == world.base.rstrip("/") + "/staff/login?next=/staff/"


# --------------------------------------------------------------------------- on a desktop

ANNOUNCED = re.compile(
    r"^有人请求在电脑上登录工作台（(\d{1,2}月\d{1,2}日 \d\d:\d\d)，IP ([^）]+)）。"
    r'如果是您本人正在操作，请点此确认：<a href="([^"]+)">确认登录</a>；如果不是，请忽略本消息，不要点击。$'
)
DESKTOP_BROWSER = "Chrome / Windows"  # what DESKTOP_UA is, as the phone is told


def beijing(at: dt.datetime) -> str:
    local = at.astimezone(ZoneInfo("Asia/Shanghai"))
    return f"{local.month}月{local.day}日 {local:%H:%M}"


async def scan(phone: Browser, token: str) -> str:
    """The member scans the desktop's QR code in WeChat; the account's reply."""
    return (await phone.sandbox("POST", f"users/{phone.openid}/scan", {"scene": f"login_{token}"}))["reply"]


async def announced_link(world: World, phone: Browser, token: str) -> str:
    """Scan, check the announcement (in the reply and in the phone's chat), return the confirm link."""
    reply = await scan(phone, token)
    found = ANNOUNCED.match(reply or "")
    assert found, reply
    assert found[2] == "127.0.*.*"  # the desktop's address, its first half only
    assert found[3] == f"{world.base.rstrip('/')}/staff/login/confirm?t={token}"
    chat = (await phone.sandbox("GET", f"users/{phone.openid}/chat"))["entries"]
    assert [e["reply"] for e in chat if e["kind"] == "reply"][-1] == reply
    return found[3]


async def answer(phone: Browser, link: str, decision: str) -> httpx.Response:
    """On the phone: open the link in WeChat (the account's login when needed), then tap a button."""
    page = await phone.go(link)
    assert page.status_code == 200 and 'data-test="confirm-desktop"' in page.text, page.text
    return await phone.post("/staff/login/confirm", {"t": parse_qs(urlsplit(link).query)["t"][0], "decision": decision})


def refusal(r: httpx.Response) -> str:
    found = re.search(r'data-test="confirm-refused">([^<]*)<', r.text)
    assert found, r.text
    return found[1]


async def test_a_desktop_browser_logs_in_once_the_member_who_scanned_confirms_on_the_phone(world: World) -> None:
    member, phone = await linked_member(world)
    opened = world.services.clock.now()
    desk, token = await desktop_page(world)
    assert (await desk.poll(token)).json() == {"state": "waiting"}

    world.services.clock.advance(seconds=30)
    link = await announced_link(world, phone, token)
    assert ANNOUNCED.match(await scan(phone, token))  # scanned again (a lost message): told again
    assert beijing(opened) in (await scan(phone, token) or "")  # the time the desktop page was opened
    assert (await desk.poll(token)).json() == {"state": "scanned"} and desk.staff_cookie() is None

    page = await phone.go(link)
    assert page.status_code == 200
    assert re.search(r'data-test="desktop-ip">127\.0\.\*\.\*', page.text) and "127.0.0.1" not in page.text
    assert f'data-test="desktop-browser">{DESKTOP_BROWSER}<' in page.text
    assert f'data-test="desktop-time">{beijing(opened)}' in page.text
    r = await phone.post("/staff/login/confirm", {"t": token, "decision": "confirm"})
    assert r.status_code == 200 and 'data-test="confirm-done"' in r.text

    stranger = world.browser(DESKTOP_UA)  # holds the token (it is in the QR code), not the cookie
    r = await stranger.poll(token)
    assert r.json() == {"state": "expired"} and stranger.staff_cookie() is None

    r = await desk.poll(token)
    assert r.json() == {"state": "done", "next": "/staff/"}
    home = await desk.go("/staff/")
    assert home.status_code == 200 and member.name in home.text
    assert (await desk.poll(token)).json()["state"] == "expired"  # used once
    async with world.services.sessions() as s:
        follower = (await s.scalars(select(Identity).where(Identity.openid == phone.openid))).one()
    assert follower.scene_institution_code is None  # a login code is no institution's poster
    (confirmed,) = await world.audit_rows("staff_login_confirm")
    assert (confirmed.actor_id, confirmed.result, confirmed.detail) == (
        f"staff:{member.public_id}",
        "ok",
        {"decision": "confirm"},
    )
    logins = await world.audit_rows("staff_login")
    assert logins[-1].detail == {"via": "qr", "factor": "fresh"}


async def test_a_desktop_login_with_a_stale_sms_factor_sends_a_code_after_the_confirmation(world: World) -> None:
    member, phone = await linked_member(world)
    world.services.clock.advance(hours=13)
    desk, token = await desktop_page(world)
    link = await announced_link(world, phone, token)
    assert (await desk.poll(token)).json() == {"state": "scanned"}
    assert len(await world.codes_to(member.phone)) == 1  # no code before the confirmation
    assert (await answer(phone, link, "confirm")).status_code == 200
    r = await desk.poll(token)
    assert r.json() == {"state": "code", "next": "/staff/login/code"} and desk.staff_cookie() is None
    page = await desk.go("/staff/login/code")
    assert f"{member.phone[:3]}****{member.phone[-4:]}" in page.text
    codes = await world.codes_to(member.phone)
    assert len(codes) == 2
    r = await desk.post("/staff/login/code", {"code": codes[0]})
    assert r.status_code == 303 and r.headers["Location"] == "/staff/"
    assert (await desk.go("/staff/")).status_code == 200
    assert (await world.row(member)).sms_verified_at == world.services.clock.now()


async def test_a_scan_without_a_confirmation_leaves_the_desktop_waiting_until_it_expires(world: World) -> None:
    _, phone = await linked_member(world)
    desk, token = await desktop_page(world)
    await announced_link(world, phone, token)
    for _ in range(4):
        world.services.clock.advance(minutes=1)
        assert (await desk.poll(token)).json() == {"state": "scanned"}
    assert desk.staff_cookie() is None
    world.services.clock.advance(minutes=1)  # 300 s after the page opened
    assert (await desk.poll(token)).json() == {"state": "expired"}
    assert desk.staff_cookie() is None and await world.audit_rows("staff_login_confirm") == []
    logins = await world.audit_rows("staff_login")
    assert [e.detail["via"] for e in logins] == ["wechat"]  # only the phone's own login


async def test_confirming_after_300_seconds_is_refused_as_expired(world: World) -> None:
    _, phone = await linked_member(world)
    desk, token = await desktop_page(world)
    link = await announced_link(world, phone, token)
    world.services.clock.advance(seconds=300)
    r = await phone.go(link)
    assert r.status_code == 410 and refusal(r) == GONE and 'name="decision"' not in r.text
    r = await phone.post("/staff/login/confirm", {"t": token, "decision": "confirm"})
    assert r.status_code == 410 and refusal(r) == GONE
    assert (await desk.poll(token)).json() == {"state": "expired"} and desk.staff_cookie() is None
    rows = await world.audit_rows("staff_login_confirm")
    assert [(e.result, e.reason) for e in rows] == [("denied", "expired")] * 2


async def test_cancelling_on_the_phone_makes_the_desktop_say_refused_and_nothing_logs_in(world: World) -> None:
    member, phone = await linked_member(world)
    desk, token = await desktop_page(world)
    link = await announced_link(world, phone, token)
    r = await answer(phone, link, "cancel")
    assert r.status_code == 200 and 'data-test="confirm-cancelled"' in r.text
    r = await phone.post("/staff/login/confirm", {"t": token, "decision": "confirm"})  # changing one's mind
    assert r.status_code == 409 and refusal(r) == USED_UP
    assert (await desk.poll(token)).json() == {"state": "refused", "message": QR_REFUSED}
    assert desk.staff_cookie() is None and desk.client.cookies.get("wb_staff_qr") is None
    assert (await desk.poll(token)).json() == {"state": "expired"}
    r = await phone.post("/staff/login/confirm", {"t": token, "decision": "confirm"})
    assert r.status_code == 410 and refusal(r) == GONE
    r = await desk.client.get(world.base + "/staff/")
    assert r.status_code == 302 and r.headers["Location"].startswith("/staff/login")
    rows = await world.audit_rows("staff_login_confirm")
    assert [(e.result, e.reason, e.detail) for e in rows] == [
        ("ok", None, {"decision": "cancel"}),
        ("denied", "used_up", {"decision": "confirm"}),
        ("denied", "expired", {"decision": "confirm"}),
    ]
    assert {e.actor_id for e in rows} == {f"staff:{member.public_id}"}


async def test_confirming_twice_is_refused(world: World) -> None:
    _, phone = await linked_member(world)
    desk, token = await desktop_page(world)
    link = await announced_link(world, phone, token)
    assert 'data-test="confirm-done"' in (await answer(phone, link, "confirm")).text
    r = await phone.go(link)
    assert r.status_code == 409 and refusal(r) == USED_UP
    r = await phone.post("/staff/login/confirm", {"t": token, "decision": "confirm"})
    assert r.status_code == 409 and refusal(r) == USED_UP
    assert (await desk.poll(token)).json()["state"] == "done"  # the one confirmation still counts, once


async def test_another_identity_opening_the_confirm_link_is_refused_and_changes_nothing(world: World) -> None:
    member, phone = await linked_member(world)
    world.services.clock.advance(minutes=2)  # the SMS windows of the first login
    colleague, colleague_phone = await linked_member(world)
    resident = await world.wechat_user("居民")
    desk, token = await desktop_page(world)
    link = await announced_link(world, phone, token)
    # Another member scanning the same code is not announced: the attempt is the first scanner's.
    assert await scan(colleague_phone, token) == EXPIRED

    for other in (colleague_phone, resident):  # the link forwarded to them
        r = await other.go(link)  # the resident goes through WeChat's login first
        assert r.status_code == 403 and refusal(r) == OTHER_IDENTITY and 'name="decision"' not in r.text
        r = await other.post("/staff/login/confirm", {"t": token, "decision": "confirm"})
        assert r.status_code == 403 and refusal(r) == OTHER_IDENTITY
        r = await other.post("/staff/login/confirm", {"t": token, "decision": "cancel"})
        assert r.status_code == 403
    assert any(h.startswith("GET /oauth/callback") for h in resident.hops)
    assert (await desk.poll(token)).json() == {"state": "scanned"} and desk.staff_cookie() is None

    assert 'data-test="confirm-done"' in (await answer(phone, link, "confirm")).text  # the attempt is intact
    assert (await desk.poll(token)).json() == {"state": "done", "next": "/staff/"}
    assert (await desk.go("/staff/")).status_code == 200
    assert (await world.audit_rows("staff_login"))[-1].actor_id == f"staff:{member.public_id}"  # not the colleague
    denied = [e for e in await world.audit_rows("staff_login_confirm") if e.result == "denied"]
    assert len(denied) == 6 and all(e.reason is None for e in denied)  # sealed: not a clear reason
    assert {audit.reason_of(e, world.services.keyring) for e in denied} == {"other_identity"}
    resident_id = await world.identity_id(resident.openid)
    assert [e.actor_id for e in denied] == [f"staff:{colleague.public_id}"] * 3 + [str(resident_id)] * 3


async def test_the_confirm_link_names_the_desktop_by_half_its_address_and_logs_no_token(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, phone = await linked_member(world)
    desk, token = await desktop_page(world)
    stored = await world.services.redis.client.hgetall(  # type: ignore[union-attr]
        QrLogins(None, world.services.settings.redis.key_prefix, world.services.clock).key(token)
    )
    fields = {k.decode(): v.decode() for k, v in stored.items()}
    assert fields["ip"] == "127.0.*.*" and fields["browser"] == DESKTOP_BROWSER
    assert not any("127.0.0.1" in v or "Mozilla" in v or "Windows NT" in v for v in fields.values())
    assert token not in "".join(fields.values())

    link = await announced_link(world, phone, token)
    page = await phone.go(link)
    assert "127.0.*.*" in page.text and "127.0.0.1" not in page.text and DESKTOP_BROWSER in page.text
    assert 'data-test="confirm-done"' in (await answer(phone, link, "confirm")).text
    assert (await desk.poll(token)).json()["state"] == "done"
    app_lines = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]  # not the test's client
    assert any(r.name == "wechat_backend.access" and "/staff/login/confirm" in r.getMessage() for r in app_lines)
    leaked = [f"{r.name}: {r.getMessage()}" for r in app_lines if token in r.getMessage()]
    assert leaked == []


async def test_a_confirmation_needs_a_known_answer_and_the_xsrf_token(world: World) -> None:
    _, phone = await linked_member(world)
    desk, token = await desktop_page(world)
    link = await announced_link(world, phone, token)
    await phone.go(link)
    r = await phone.post("/staff/login/confirm", {"t": token, "decision": "yes"})
    assert r.status_code == 400 and refusal(r) == "请点“确认登录”或“取消”"
    r = await phone.client.post(
        world.base + "/staff/login/confirm", data={"t": token, "decision": "confirm"}, headers={"X-XSRFToken": ""}
    )
    assert r.status_code == 403
    assert (await desk.poll(token)).json() == {"state": "scanned"}
    anonymous = world.browser(WECHAT_UA)  # no WeChat login at all
    r = await anonymous.post("/staff/login/confirm", {"t": token, "decision": "confirm"})
    assert r.status_code == 401 and (await desk.poll(token)).json() == {"state": "scanned"}


async def test_a_scan_by_someone_who_is_not_linked_staff_announces_nothing(world: World) -> None:
    desk, token = await desktop_page(world)
    resident = await world.wechat_user("居民")
    assert await scan(resident, token) == NOT_STAFF_SCAN
    newcomer = await world.wechat_user("新关注", follow=False)  # follows by scanning the login code
    assert await scan(newcomer, token) == NOT_STAFF_SCAN
    assert (await newcomer.sandbox("GET", f"users/{newcomer.openid}"))["subscribed"]
    assert (await desk.poll(token)).json() == {"state": "waiting"} and desk.staff_cookie() is None
    r = await resident.go(f"/staff/login/confirm?t={token}")  # the token is in the QR code: anyone has it
    assert r.status_code == 403 and refusal(r) == OTHER_IDENTITY
    assert (await desk.poll(token)).json() == {"state": "waiting"}


async def test_an_expired_qr_code_says_so(world: World) -> None:
    _, phone = await linked_member(world)
    desk, token = await desktop_page(world)
    world.services.clock.advance(minutes=5)
    assert await scan(phone, token) == EXPIRED
    assert (await desk.poll(token)).json() == {"state": "expired"}
    assert desk.staff_cookie() is None
    # A new page, a new code.
    _, fresh = await desktop_page(world)
    assert fresh != token


async def test_when_wechat_cannot_make_the_qr_code_the_page_says_what_to_do(world: World) -> None:
    fault = {"api": "cgi-bin/qrcode/create", "errcode": -1, "count": 1}
    assert (await world.http.post(world.base + "/sandbox/api/faults", json=fault)).status_code == 201
    r = await world.browser(DESKTOP_UA).go("/staff/login?next=/staff/")
    assert r.status_code == 503 and "暂时无法生成登录二维码" in r.text and "工作台" in r.text


async def test_a_poll_without_the_xsrf_token_is_refused(world: World) -> None:
    desk, token = await desktop_page(world)
    r = await desk.client.post(world.base + "/staff/login/qr", json={"token": token}, headers={"X-XSRFToken": ""})
    assert r.status_code == 403


def test_the_phone_is_told_half_the_desktops_address_and_its_browser_family() -> None:
    assert partial_ip("123.45.67.89") == "123.45.*.*"
    assert partial_ip("::ffff:10.1.2.3") == "10.1.*.*"
    assert partial_ip("2408:8207:1234:5678::1") == "2408:8207:*"
    assert partial_ip("2001:db8::1") == "2001:db8:*"
    assert partial_ip("") == partial_ip("not an address") == partial_ip(None) == "未知"
    assert browser_family(DESKTOP_UA) == "Chrome / Windows"
    edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0"
    assert browser_family(edge) == "Edge / Windows"
    safari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"
    assert browser_family(safari) == "Safari / macOS"
    qq = (
        "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 Chrome/94.0.4606.71 Safari/537.36 "
        "Core/1.94.253.400 QQBrowser/12.6.5543.400"
    )
    assert browser_family(qq) == "QQ Browser / Windows"
    assert browser_family("") == browser_family("nonsense") == "未知浏览器"
    # Some rules copy a word of the User-Agent into the family: a forged one cannot write a sentence.
    forged = "Mozilla/5.0 (Windows NT 10.0) 本人电脑 It is your own computer please confirm Bot/1.0"
    assert browser_family(forged) == "It is your / Windows"
    assert browser_family("Mozilla/5.0 (Windows NT 10.0) 放心" + "x" * 5000) == "未知浏览器"


def test_only_the_identity_that_scanned_may_answer_and_only_once() -> None:
    desktop = Desktop(0.0, "127.0.*.*", "Chrome / Windows")
    scanned = Pending("scanned", 3, 7, desktop)
    assert confirm_outcome(scanned, 7) == "ok"
    assert confirm_outcome(scanned, 8) == "other_identity"
    assert confirm_outcome(Pending("waiting", None, None, desktop), 7) == "other_identity"
    assert confirm_outcome(Pending("confirmed", 3, 7, desktop), 7) == "used_up"
    assert confirm_outcome(Pending("refused", 3, 7, desktop), 8) == "other_identity"  # tells a stranger nothing
    assert confirm_outcome(None, 7) == "expired"


# --------------------------------------------------------------------------- keys rotate


async def test_after_keys_rotate_a_staff_phone_is_still_found(world: World, tmp_path: Path) -> None:
    member = await world.member()
    old = world.services.settings
    new_blind = base64.b64encode(bytes(range(32))).decode()
    settings = make_settings(
        tmp_path,
        old.database.url,
        old.redis.url,
        security={
            "keys": {**old.security.keys, "k2": base64.b64encode(bytes(range(100, 116))).decode()},
            "active_key": "k2",
            "blind_index_key": new_blind,
        },
    )
    new: Services = await build_services(settings, clock=world.services.clock, with_redis=False)
    try:
        assert (await new.key_rotation.pending())["staff"] == 1
        assert (await new.key_rotation.run())["staff"] == 1
        assert (await new.key_rotation.pending())["staff"] == 0
        async with new.sessions() as s:
            row = (await s.scalars(select(Staff).where(Staff.public_id == member.public_id))).one()
        assert row.key_id == "k2" and row.phone_bidx == new.keyring.blind_index("phone", member.phone)
        assert new.keyring.open(row.sealed, f"staff:{member.public_id}")["phone"] == member.phone
        # Only the blind-index key changes: the staff row carries no fingerprint, yet it is reindexed.
        same_keys = {"keys": settings.security.keys, "active_key": "k2"}
        again = make_settings(
            tmp_path,
            old.database.url,
            old.redis.url,
            security={**same_keys, "blind_index_key": old.security.blind_index_key},
        )
        back = await build_services(again, clock=world.services.clock, with_redis=False)
        try:
            assert (await back.key_rotation.pending())["staff"] == 1
            await back.key_rotation.run()
            async with back.sessions() as s:
                row = (await s.scalars(select(Staff).where(Staff.public_id == member.public_id))).one()
            assert row.phone_bidx == world.services.keyring.blind_index("phone", member.phone)
        finally:
            await back.close()
    finally:
        await new.close()


# --------------------------------------------------------------------------- the staff code's SMS


def test_the_staff_code_sms_reads_as_a_login_code() -> None:
    sms = StaffCodeSms("123456", 5)
    assert sms.text() == "您正在登录健康档案工作台，验证码123456，5分钟内有效。如非本人操作请忽略。"


async def test_the_staff_code_goes_with_its_own_template_on_tencent_and_aliyun(tmp_path: Path) -> None:
    sms = StaffCodeSms("482916", 5)
    async with running_tencent() as tencent:
        sender = make_sender(tencent_settings(tmp_path, tencent.url, staff_template_id="STAFF1"))
        try:
            assert (await sender.send("13912345678", sms)).ok
        finally:
            await sender.close()
        (got,) = tencent.received
        assert got["TemplateId"] == "STAFF1" and got["TemplateParamSet"] == ["482916", "5"]
        assert got["SignName"] == SIGN_NAME
    async with running_aliyun() as aliyun:
        sender = make_sender(aliyun_settings(tmp_path, aliyun.url, staff_template_id="SMS_STAFF"))
        try:
            assert (await sender.send("13912345678", sms)).ok
        finally:
            await sender.close()
        (got,) = aliyun.received
        assert got["TemplateCode"] == "SMS_STAFF"
        assert json.loads(got["TemplateParam"]) == {"code": "482916", "minutes": "5"}


async def test_without_a_staff_template_the_binding_template_carries_the_staff_code(tmp_path: Path) -> None:
    async with running_tencent() as tencent:
        sender = make_sender(tencent_settings(tmp_path, tencent.url))
        try:
            assert (await sender.send("13912345678", StaffCodeSms("482916", 5))).ok
        finally:
            await sender.close()
        (got,) = tencent.received
    assert got["TemplateId"] == TEMPLATE_ID and got["TemplateParamSet"] == ["工作台", "482916", "5"]


async def test_the_console_sender_puts_the_staff_text_in_the_sandbox_inbox(tmp_path: Path) -> None:
    async with running_sandbox(tmp_path) as sandbox:
        sender = make_sender(sandbox.settings)
        try:
            assert (await sender.send("13912345678", StaffCodeSms("482916", 5))).ok
        finally:
            await sender.close()
        (inbox,) = await sandbox.get("/sandbox/api/sms", phone="13912345678")
    assert STAFF_SMS.match(inbox["text"])[1] == "482916"  # type: ignore[index]
