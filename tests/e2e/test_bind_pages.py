"""The binding pages of the official account, over HTTP against the real app with the sandbox: a
follower opens the welcome link, logs in through WeChat's web authorization, agrees to the privacy
notice, fills the bind form, types the code from the SMS inbox and finds the archive on "我的档案";
errors come back on the form; archives are unbound from the pages. No page ever shows an
archive's full ID number or phone."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from binding.conftest import (
    ARCHIVES,
    CHILD,
    ELDER,
    MOTHER_PHONE,
    NEWBORN,
    NEWBORN_PARENT_PHONE,
    NOT_OPENED,
    people,
    person,
)
from sqlalchemy import func, select

from wechat_backend.binding.consent import NOTICE_PARAGRAPHS, NOTICE_TITLE
from wechat_backend.db.models import Binding

from .conftest import Live

__all__ = ["people"]  # the data set of tests/binding, used here as a fixture

# Everything that must never appear in full on a page: every ID number and phone of the data set.
SECRETS = sorted(
    {a[k] for a in ARCHIVES.values() for k in ("id_number", "phone", "contact_phone") if a.get(k)},
)


def hidden_fields(page: str, action: str) -> dict[str, str]:
    """The hidden inputs of the form posting to ``action``, as a browser would send them."""
    found = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', page, re.S)
    assert found, f"no form posting to {action}"
    inputs = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', found[1])
    return {name: html.unescape(value) for name, value in inputs}


@dataclass
class Visitor:
    """One WeChat user's in-app browser: keeps cookies, follows redirects, remembers every page."""

    base: str
    client: httpx.AsyncClient
    openid: str = ""
    pages: list[str] = field(default_factory=list)
    hops: list[tuple[str, str, int]] = field(default_factory=list)

    async def go(self, url: str, *, method: str = "GET", data: dict[str, str] | None = None) -> httpx.Response:
        url = urljoin(self.base, url)
        for _ in range(10):
            r = await self.client.request(method, url, data=data)
            self.hops.append((method, urlsplit(url).path, r.status_code))
            if urlsplit(url).path.startswith("/r/"):
                assert r.headers.get("Cache-Control") == "no-store", (url, r.headers.get("Cache-Control"))
            if r.status_code not in (301, 302, 303, 307, 308):
                self.pages.append(r.text)
                return r
            url = urljoin(url, r.headers["Location"])
            method, data = "GET", None
        raise AssertionError(f"too many redirects: {self.hops}")

    async def submit(self, page: httpx.Response, action: str, fields: dict[str, str]) -> httpx.Response:
        """Post the form of ``page`` whose action is ``action``, with its hidden fields."""
        return await self.go(action, method="POST", data={**hidden_fields(page.text, action), **fields})

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        r = await self.client.request(method, f"{self.base}/sandbox/api/{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()

    async def last_code(self, phone: str) -> str:
        sms = await self.control("GET", f"sms?phone={phone}")
        assert sms, "no SMS"
        return re.search(r"验证码(\d{6})", sms[0]["text"])[1]

    async def follow_and_log_in(self, nickname: str) -> httpx.Response:
        """Follow, open the welcome's link, allow on WeChat's authorize page: the signed-in home."""
        self.openid = (await self.control("POST", "users", {"nickname": nickname}))["openid"]
        welcome = (await self.control("POST", f"users/{self.openid}/follow", {}))["reply"]
        (link,) = re.findall(r"https?://[^\s<>\"'，。]+", welcome)
        authorize = await self.go(link)
        assert "公众号申请获得以下权限" in authorize.text
        action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', authorize.text)[1])
        home = await self.go(action, method="POST", data={"openid": self.openid, "action": "allow"})
        assert home.status_code == 200 and "您已通过微信登录" in home.text, home.text
        return home

    def bind_fields(self, n: int, **over: str) -> dict[str, str]:
        a = person(n)
        return {"relation": "self", "name": a["name"], "id_number": a["id_number"] or "", "phone": a["phone"], **over}

    async def bind(self, n: int, **over: str) -> httpx.Response:
        """Bind through the pages (consent first if needed); returns the home page after success."""
        form = await self.go("/r/bind")
        if "/r/consent" in str(form.url):
            form = await self.submit(form, "/r/consent", {})
        code_page = await self.submit(form, "/r/bind", self.bind_fields(n, **over))
        assert code_page.status_code == 200 and "输入短信验证码" in code_page.text, code_page.text
        phone = over.get("phone") or person(n)["phone"]
        return await self.submit(code_page, str(code_page.url.path), {"code": await self.last_code(phone)})

    def assert_private(self) -> None:
        leaked = [s for s in SECRETS for page in self.pages if s in page]
        assert not leaked, f"{len(leaked)} full ID number(s) or phone(s) of the data set on a page"


Visitors = Callable[[str], Awaitable[Visitor]]


@pytest.fixture
async def visitors(people: Live) -> AsyncIterator[Visitors]:
    """``await visitors("昵称")``: a new follower logged in on the pages, with a browser of their own."""
    base, _ = people
    clients: list[httpx.AsyncClient] = []

    async def make(nickname: str) -> Visitor:
        client = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=20)
        clients.append(client)
        v = Visitor(base, client)
        await v.follow_and_log_in(nickname)
        return v

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()


def cards(page: str) -> list[str]:
    """The archive cards on the home page, as text."""
    return [re.sub(r"<[^>]+>|\s+", " ", c) for c in re.findall(r'<section class="ui-card".*?</section>', page, re.S)]


async def binding_count(services: Any) -> int:
    async with services.sessions() as s:
        return await s.scalar(select(func.count()).select_from(Binding)) or 0


# --------------------------------------------------------------------------- the happy paths


async def test_a_follower_binds_her_own_archive_through_consent_form_and_code(people: Live, visitors: Visitors) -> None:
    _, services = people
    v = await visitors("刘阿姨")
    empty = await v.go("/r/home")
    assert 'data-test="empty"' in empty.text and "绑定档案" in empty.text and 'href="/r/bind"' in empty.text

    # The bind page sends a newcomer to the privacy notice first.
    notice = await v.go("/r/bind")
    assert v.hops[-2:] == [("GET", "/r/bind", 302), ("GET", "/r/consent", 200)]
    assert parse_qs(urlsplit(str(notice.url)).query) == {"next": ["/r/bind"]}
    assert NOTICE_TITLE in notice.text and all(p in notice.text for p in NOTICE_PARAGRAPHS)
    assert "同意并继续" in notice.text and "不同意" in notice.text

    # Agreeing records the consent and comes back to the form.
    form = await v.submit(notice, "/r/consent", {})
    assert v.hops[-2:] == [("POST", "/r/consent", 302), ("GET", "/r/bind", 200)]
    identity = await services.identities.by_openid("oa", v.openid)
    assert identity is not None and await services.consent.has_agreed(identity.id)
    assert "为谁绑定？" in form.text and "新生儿尚未办理身份证？" in form.text
    assert re.search(r'value="self"\s+checked', form.text)  # 本人 is chosen already
    assert "为家人绑定时也可填写档案登记的联系人电话" in form.text

    # The form → the code page, which names the phone only masked.
    code_page = await v.submit(form, "/r/bind", v.bind_fields(ELDER))
    assert v.hops[-2][:2] == ("POST", "/r/bind") and v.hops[-2][2] == 302
    bind_id = urlsplit(str(code_page.url)).path.rsplit("/", 1)[1]
    assert "验证码已发送至" in code_page.text and "139****0001" in code_page.text
    assert 'inputmode="numeric" autocomplete="one-time-code"' in code_page.text
    assert f'action="/r/bind/{bind_id}/resend"' in code_page.text
    assert bind_id and "139****0001" not in str(code_page.url)

    # The code from the SMS inbox binds; "我的档案" lists the archive.
    home = await v.submit(code_page, f"/r/bind/{bind_id}", {"code": await v.last_code(person(ELDER)["phone"])})
    assert urlsplit(str(home.url)).path == "/r/home" and "bound=1" in str(home.url)
    assert "绑定成功" in home.text and "我的档案" in home.text
    (card,) = cards(home.text)
    assert "刘**" in card and "本人" in card and "71岁" in card and "莘县燕店镇卫生院" in card
    assert "解除绑定" in card and "查看还有谁绑定了这份档案" in card  # she owns it
    assert await binding_count(services) == 1
    v.assert_private()


@pytest.mark.parametrize(
    ("n", "by", "phone", "name", "age"),
    [
        (CHILD, "id_number", MOTHER_PHONE, "王**", "6岁"),
        (NEWBORN, "archive_no", NEWBORN_PARENT_PHONE, "张**", "不满1岁"),
    ],
    ids=["child-by-id-number", "newborn-by-archive-number"],
)
async def test_a_parent_binds_a_child_with_the_contact_phone_the_archive_lists(
    visitors: Visitors, n: int, by: str, phone: str, name: str, age: str
) -> None:
    parent = await visitors("家长")
    a = person(n)
    fields = {"relation": "child", "name": a["name"], "phone": phone, "id_number": "", by: a[by]}
    form = await parent.submit(await parent.go("/r/bind"), "/r/consent", {})
    code_page = await parent.submit(form, "/r/bind", fields)
    assert f"{phone[:3]}****{phone[-4:]}" in code_page.text
    home = await parent.submit(code_page, str(code_page.url.path), {"code": await parent.last_code(phone)})
    assert "绑定成功" in home.text
    (card,) = cards(home.text)
    assert name in card and "子女" in card and age in card
    # A child under 14 cannot be bound as oneself: the guardian speaks for the archive.
    assert "查看还有谁绑定了这份档案" in card
    parent.assert_private()


async def test_a_wrong_code_is_explained_and_a_new_code_can_be_asked_for(
    people: Live, visitors: Visitors, clock: Any
) -> None:
    v = await visitors("刘阿姨")
    form = await v.submit(await v.go("/r/bind"), "/r/consent", {})
    code_page = await v.submit(form, "/r/bind", v.bind_fields(ELDER))
    action = str(code_page.url.path)
    first = await v.last_code(person(ELDER)["phone"])

    wrong = await v.submit(code_page, action, {"code": "000000" if first != "000000" else "111111"})
    assert wrong.status_code == 400 and "验证码不正确，还可以再输入4次" in wrong.text
    assert 'class="ui-field ui-field--error"' in wrong.text

    # Too soon for another code: the page says how long to wait.
    soon = await v.submit(wrong, action + "/resend", {})
    assert soon.status_code == 429 and "操作过于频繁，请" in soon.text and "秒后再试" in soon.text
    assert soon.headers["Retry-After"].isdigit()

    clock.advance(seconds=61)
    resent = await v.submit(soon, action + "/resend", {})
    assert v.hops[-2:] == [("POST", action + "/resend", 302), ("GET", action, 200)]
    assert "验证码已重新发送" in resent.text and "139****0001" in resent.text
    second = await v.last_code(person(ELDER)["phone"])
    home = await v.submit(resent, action, {"code": second})
    assert "绑定成功" in home.text and len(cards(home.text)) == 1
    v.assert_private()


async def test_consent_goes_on_only_to_a_local_page(visitors: Visitors) -> None:
    v = await visitors("居民")
    notice = await v.go("/r/consent?next=https://evil.example/r/home")
    await v.submit(notice, "/r/consent", {})
    assert v.hops[-2:] == [("POST", "/r/consent", 302), ("GET", "/r/bind", 200)]

    # Already agreed: the bind page opens at once; "不同意" leads back home.
    await v.go("/r/bind")
    assert v.hops[-1] == ("GET", "/r/bind", 200)
    assert 'href="/r/home">不同意</a>' in notice.text


async def test_a_form_posted_before_consent_leads_to_the_notice(people: Live, visitors: Visitors) -> None:
    _, services = people
    v = await visitors("居民")
    notice = await v.go("/r/consent")  # read, not agreed
    token = hidden_fields(notice.text, "/r/consent")["_xsrf"]
    back = await v.go("/r/bind", method="POST", data={"_xsrf": token, **v.bind_fields(ELDER)})
    assert v.hops[-2:] == [("POST", "/r/bind", 302), ("GET", "/r/consent", 200)]
    assert NOTICE_TITLE in back.text and parse_qs(urlsplit(str(back.url)).query) == {"next": ["/r/bind"]}
    assert await binding_count(services) == 0
    assert await v.control("GET", f"sms?phone={person(ELDER)['phone']}") == []


# --------------------------------------------------------------------------- errors on the form


async def test_a_wrong_name_shows_the_mismatch_on_the_form_and_binds_nothing(people: Live, visitors: Visitors) -> None:
    _, services = people
    v = await visitors("刘阿姨")
    form = await v.submit(await v.go("/r/bind"), "/r/consent", {})
    again = await v.submit(form, "/r/bind", v.bind_fields(ELDER, name="刘淑芬", relation="parent"))
    assert again.status_code == 400 and urlsplit(str(again.url)).path == "/r/bind"
    assert "信息不一致" in again.text and 'data-test="form-error"' in again.text
    # A changed phone is the usual cause: where to go. No city number is configured here, so none.
    assert "如手机号已更换，请携带身份证到建档机构更新" in again.text and "tel:" not in again.text
    # What was typed stays, except the ID number and phone, which a page never carries back.
    assert 'value="刘淑芬"' in again.text and re.search(r'value="parent"\s+checked', again.text)
    assert not re.search(r'name="(id_number|phone|archive_no)"[^>]*value=', again.text)
    assert await binding_count(services) == 0
    assert await v.control("GET", f"sms?phone={person(ELDER)['phone']}") == []
    home = await v.go("/r/home")
    assert 'data-test="empty"' in home.text
    v.assert_private()


async def test_a_bad_id_number_highlights_that_field(visitors: Visitors) -> None:
    v = await visitors("刘阿姨")
    form = await v.submit(await v.go("/r/bind"), "/r/consent", {})
    typo = person(ELDER)["id_number"][:-1] + ("0" if person(ELDER)["id_number"][-1] != "0" else "1")
    again = await v.submit(form, "/r/bind", v.bind_fields(ELDER, id_number=typo))
    assert again.status_code == 400 and "身份证号校验位不正确" in again.text
    assert re.search(r'id="id_number"[^>]*aria-invalid="true"', again.text)
    assert not re.search(r'id="(name|phone)"[^>]*aria-invalid', again.text)
    assert typo not in again.text


async def test_an_archive_not_open_to_residents_shows_the_consultation_phone(visitors: Visitors) -> None:
    v = await visitors("钱先生")
    form = await v.submit(await v.go("/r/bind"), "/r/consent", {})
    closed = await v.submit(form, "/r/bind", v.bind_fields(NOT_OPENED))
    assert closed.status_code == 403
    assert "暂未开放自助查询" in closed.text and "莘县燕店镇卫生院" in closed.text
    assert 'href="tel:0635-7123456"' in closed.text
    assert await v.control("GET", f"sms?phone={person(NOT_OPENED)['phone']}") == []
    v.assert_private()


async def test_a_mismatch_names_the_city_consultation_phone_with_a_tel_link_when_set(
    people: Live, visitors: Visitors, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, services = people
    city = replace(services.settings, service=replace(services.settings.service, consult_phone="0635-12320"))
    monkeypatch.setattr(services.binding, "_settings", city)  # as if [service] consult_phone were set
    v = await visitors("刘阿姨")
    form = await v.submit(await v.go("/r/bind"), "/r/consent", {})
    again = await v.submit(form, "/r/bind", v.bind_fields(ELDER, phone="13906350999"))
    assert again.status_code == 400
    assert form_error(again.text).endswith("如手机号已更换，请携带身份证到建档机构更新。咨询电话：0635-12320")
    assert re.search(r'<a class="ui-link" href="tel:0635-12320" data-test="consult-phone">', again.text)
    v.assert_private()


async def test_the_form_asks_for_whom_first_then_the_fields(visitors: Visitors) -> None:
    v = await visitors("刘阿姨")
    form = (await v.submit(await v.go("/r/bind"), "/r/consent", {})).text
    question = form.index("为谁绑定？")
    choices = [form.index(f"<span>{label}</span>") for label in ("本人", "子女", "父母", "配偶", "其他家人")]
    fields = [form.index(f'id="{name}"') for name in ("name", "id_number", "archive_no", "phone")]
    assert question < min(choices) and choices == sorted(choices) and max(choices) < min(fields)
    # The ids and names the browser test and bind-form.js rely on are all still there.
    assert 'id="bind-form"' in form and all(f'name="{n}"' in form for n in ("relation", "name", "id_number", "phone"))


# --------------------------------------------------------------------------- bind links that lead nowhere


def form_error(page: str) -> str:
    """The first line of the error shown on a form."""
    found = re.search(r'data-test="form-error">\s*<p>(.*?)</p>', page, re.S)
    return html.unescape(found[1]) if found else ""


def without_tokens(page: str) -> str:
    """A page with its XSRF tokens blanked: they differ on every render."""
    return re.sub(r'name="_xsrf" value="[^"]*"', 'name="_xsrf" value=""', page)


async def test_an_expired_bind_link_goes_back_to_the_form_with_the_reason(
    people: Live, visitors: Visitors, clock: Any
) -> None:
    v = await visitors("刘阿姨")
    form = await v.submit(await v.go("/r/bind"), "/r/consent", {})
    code_page = await v.submit(form, "/r/bind", v.bind_fields(ELDER))
    link = urlsplit(str(code_page.url)).path
    code = await v.last_code(person(ELDER)["phone"])
    clock.advance(seconds=301)

    again = await v.go(link)  # the link from the history, or reopened later
    assert again.status_code == 200 and 'data-test="bind"' in again.text and "为谁绑定？" in again.text
    assert form_error(again.text) == "验证码已过期，请重新获取"
    assert 'action="/r/bind"' in again.text and f'action="{link}' not in again.text  # no way back to the dead link
    late = await v.submit(code_page, link, {"code": code})  # the code page left open, submitted late
    assert late.status_code == 400 and form_error(late.text) == "验证码已过期，请重新获取"

    # The form works from there: a new code, a new link.
    fresh = await v.submit(again, "/r/bind", v.bind_fields(ELDER))
    assert "输入短信验证码" in fresh.text and urlsplit(str(fresh.url)).path != link
    home = await v.submit(fresh, str(fresh.url.path), {"code": await v.last_code(person(ELDER)["phone"])})
    assert "绑定成功" in home.text

    # The used link, opened again, says it is done.
    done = await v.go(str(fresh.url.path))
    assert form_error(done.text) == "这次绑定已经完成，可在“我的档案”中查看"
    v.assert_private()


async def test_an_unknown_or_someone_elses_bind_link_reads_the_same_and_goes_back_to_the_form(
    people: Live, visitors: Visitors
) -> None:
    owner = await visitors("本人")
    form = await owner.submit(await owner.go("/r/bind"), "/r/consent", {})
    code_page = await owner.submit(form, "/r/bind", owner.bind_fields(ELDER))
    theirs = urlsplit(str(code_page.url)).path

    other = await visitors("他人")
    mine = await other.submit(await other.go("/r/bind"), "/r/consent", {})
    seen = await other.go(theirs)
    unknown = await other.go("/r/bind/AAAAAAAAAAAAAAAA")  # the shape of a bind id, and nobody's
    assert seen.status_code == unknown.status_code == 200
    assert form_error(seen.text) == "这次绑定已失效，请重新填写"
    assert without_tokens(seen.text) == without_tokens(unknown.text)  # nothing tells them apart
    token = hidden_fields(mine.text, "/r/bind")  # their own form's XSRF token
    guessed = await other.go(theirs, method="POST", data={**token, "code": "000000"})
    assert guessed.status_code == 400 and form_error(guessed.text) == "这次绑定已失效，请重新填写"
    resent = await other.go(theirs + "/resend", method="POST", data=token)
    assert resent.status_code == 400 and form_error(resent.text) == "这次绑定已失效，请重新填写"

    # The owner's attempt is untouched: the code page, and the code still binds.
    assert "输入短信验证码" in (await owner.go(theirs)).text
    home = await owner.submit(code_page, theirs, {"code": await owner.last_code(person(ELDER)["phone"])})
    assert "绑定成功" in home.text
    other.assert_private()


async def test_the_site_root_names_the_service_and_the_way_in_without_a_login(live: Live) -> None:
    base, _ = live
    async with httpx.AsyncClient(trust_env=False, timeout=20, follow_redirects=False) as stranger:
        r = await stranger.get(base + "/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    page = html.unescape(r.text)
    assert "<title>居民电子健康档案查询</title>" in page and "关注公众号" in page and "“我的档案”" in page
    # No inline script or style: the Content-Security-Policy would block them.
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "<style" not in page and " style=" not in page
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]


# --------------------------------------------------------------------------- unbinding


async def test_unbinding_removes_the_archive_from_my_archives(people: Live, visitors: Visitors) -> None:
    _, services = people
    v = await visitors("刘阿姨")
    home = await v.bind(ELDER)
    assert len(cards(home.text)) == 1 and "解除后，这个微信将不能再查看" in home.text
    binding_id = re.search(r'action="/r/bindings/([^"/]+)/delete"', home.text)[1]

    after = await v.submit(home, f"/r/bindings/{binding_id}/delete", {})
    assert v.hops[-2:] == [("POST", f"/r/bindings/{binding_id}/delete", 302), ("GET", "/r/home", 200)]
    assert "已解除绑定" in after.text and cards(after.text) == [] and 'data-test="empty"' in after.text
    assert await binding_count(services) == 0

    # Gone is gone: posting it again is "not found", on the error page.
    twice = await v.submit(home, f"/r/bindings/{binding_id}/delete", {})
    assert twice.status_code == 404 and "未找到这个绑定" in twice.text
    v.assert_private()


async def test_the_owner_removes_a_family_member_from_the_bindings_page(
    people: Live, visitors: Visitors, clock: Any
) -> None:
    _, services = people
    owner = await visitors("刘阿姨")
    home = await owner.bind(ELDER)
    archive_id = re.search(r'data-archive="([^"]+)"', home.text)[1]
    clock.advance(seconds=61)  # one code per phone per minute
    daughter = await visitors("女儿")
    await daughter.bind(ELDER, relation="child")

    page = await owner.go(f"/r/archives/{archive_id}/bindings")
    assert page.status_code == 200 and "谁绑定了刘**的档案" in page.text
    rows = re.findall(r'data-test="binding" data-relation="([^"]+)"', page.text)
    assert rows == ["self", "child"]
    assert "本人（就是您）" in page.text and "子女" in page.text and "通过公众号绑定" in page.text
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", page.text)
    (remove,) = re.findall(r'action="(/r/bindings/[^"/]+/delete)"', page.text)  # none for herself

    after = await owner.submit(page, remove, {})
    assert owner.hops[-1] == ("GET", f"/r/archives/{archive_id}/bindings", 200)
    assert "已移除" in after.text
    assert re.findall(r'data-test="binding" data-relation="([^"]+)"', after.text) == ["self"]
    assert await binding_count(services) == 1
    assert cards((await daughter.go("/r/home")).text) == []

    # Someone who is not the owner cannot see the list.
    denied = await daughter.go(f"/r/archives/{archive_id}/bindings")
    assert denied.status_code == 404 and "未找到" in denied.text
    owner.assert_private()
    daughter.assert_private()


async def test_pages_need_a_login_and_forms_need_the_xsrf_token(people: Live, visitors: Visitors) -> None:
    base, _ = people
    async with httpx.AsyncClient(trust_env=False, timeout=20) as stranger:
        r = await stranger.get(base + "/r/bind")
        assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == "/oauth/start"
        r = await stranger.post(base + "/r/bind", data={"name": "x"})
        assert r.status_code in (401, 403) and "<html" in r.text
    v = await visitors("居民")
    forged = await v.go("/r/consent", method="POST", data={"version": "x"})
    assert forged.status_code == 403
