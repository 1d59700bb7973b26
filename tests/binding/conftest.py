"""Binding tests run against the real app with the sandbox mounted (``live``): residents log in as
the mini-program does (``wx.login`` code → ``/api/v1/mp/login`` → bearer token) and read their
codes from the sandbox's SMS inbox, where the ``console`` provider delivers them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import Live
from ingest_lines import COUNTY, archive, id_number, institution, write

OTHER_COUNTY = "371521"

# The people of the data set: (archive n, what the tests call them).
ELDER = 1  # 刘淑珍, 71, own phone
CHILD = 2  # 王小明, 6, no phone of his own; contact phone = his mother's
NEWBORN = 3  # no ID number yet; contact phone = a parent's
SENSITIVE = 4  # managed under a sensitive programme
NOT_OPENED = 5  # 是否开放给居民 = 否
TEEN = 6  # 15 years old, own phone
CLOSED_COUNTY = 7  # in a county whose switch is off
PARENT_OF_CHILD_PHONE = 8  # an elder whose archive lists her son's phone as contact

MOTHER_PHONE = "13906359999"
NEWBORN_PARENT_PHONE = "13906358888"
SON_PHONE = "13906357777"


def dataset() -> list[dict[str, Any]]:
    return [
        institution(),
        institution(
            upstream_id="inst-2",
            code=f"{OTHER_COUNTY}001",
            county_code=OTHER_COUNTY,
            county_name="阳谷县",
            name="阳谷县某卫生院",
        ),
        archive(ELDER),
        archive(
            CHILD,
            name="王小明",
            birth_date="2020-05-01",
            id_number=id_number("20200501", "211"),
            phone=None,
            contact_name="李红",
            contact_phone=MOTHER_PHONE,
            programmes=["child"],
        ),
        archive(
            NEWBORN,
            name="张宝宝",
            birth_date="2026-10-01",
            id_number=None,
            phone=None,
            contact_name="张伟",
            contact_phone=NEWBORN_PARENT_PHONE,
            programmes=["child"],
        ),
        archive(SENSITIVE, name="赵某某", programmes=["hypertension", "severe_mental"]),
        archive(NOT_OPENED, name="钱某某", open_to_resident=False),
        archive(TEEN, name="孙小丽", birth_date="2011-02-03", id_number=id_number("20110203", "226"), programmes=[]),
        archive(
            CLOSED_COUNTY,
            name="周某某",
            archive_no=f"{OTHER_COUNTY}001101{CLOSED_COUNTY:05d}",
            institution_code=f"{OTHER_COUNTY}001",
            id_number=id_number(seq="777", region=OTHER_COUNTY),
        ),
        archive(PARENT_OF_CHILD_PHONE, name="吴秀英", contact_name="吴强", contact_phone=SON_PHONE),
    ]


ARCHIVES = {a["upstream_id"]: a for a in dataset() if a["type"] == "archive"}


def person(n: int) -> dict[str, Any]:
    return ARCHIVES[f"arc-{n}"]


@pytest.fixture
async def people(live: Live, tmp_path: Path) -> Live:
    """The live app with the data set imported and 莘县 open to everyone (阳谷县 stays closed)."""
    _, services = live
    report = await services.ingest.import_file(write(tmp_path / "people.jsonl", dataset()))
    assert report.exit_code == 0, report
    await services.counties.set(COUNTY, opening=True, phase="all")
    return live


@dataclass
class Resident:
    """One WeChat user of the mini-program, logged in with a bearer token."""

    base: str
    client: httpx.AsyncClient
    openid: str
    token: str = ""

    async def call(self, method: str, path: str, body: Any = None, *, token: bool = True) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if token and self.token else {}
        return await self.client.request(method, self.base + path, json=body, headers=headers)

    async def login(self) -> None:
        code = (await self.sandbox("POST", f"users/{self.openid}/mp-code", {}))["code"]
        r = await self.call("POST", "/api/v1/mp/login", {"code": code}, token=False)
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]

    async def agree(self) -> None:
        notice = (await self.call("GET", "/api/v1/consent")).json()
        r = await self.call("POST", "/api/v1/consent", {"version": notice["version"]})
        assert r.status_code == 200, r.text

    async def start(self, n: int, *, relation: str = "self", phone: str | None = None, **over: Any) -> httpx.Response:
        a = person(n)
        body = {"name": a["name"], "id_number": a["id_number"], "phone": phone or a["phone"], "relation": relation}
        return await self.call("POST", "/api/v1/bind/start", {**body, **over})

    async def verify(self, bind_id: str, code: str) -> httpx.Response:
        return await self.call("POST", "/api/v1/bind/verify", {"bind_id": bind_id, "code": code})

    async def archives(self) -> list[dict[str, Any]]:
        r = await self.call("GET", "/api/v1/archives")
        assert r.status_code == 200, r.text
        return r.json()["archives"]

    async def follow_and_web_login(self) -> None:
        """Follow the account and log in on its web pages (WeChat OAuth, ``snsapi_base``): the
        official-account identity, linked to the mini-program one when both carry a unionid."""
        await self.sandbox("POST", f"users/{self.openid}/follow", {})
        r = await self.client.get(self.base + "/oauth/start", params={"next": "/r/home"})
        assert r.status_code == 302, r.text
        state = parse_qs(urlsplit(r.headers["Location"]).query)["state"][0]
        code = (await self.sandbox("POST", f"users/{self.openid}/oauth-code", {}))["code"]
        r = await self.client.get(self.base + "/oauth/callback", params={"code": code, "state": state})
        assert r.status_code == 302 and "wb_session" in r.headers.get("Set-Cookie", ""), r.text

    async def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        r = await self.client.request(method, f"{self.base}/sandbox/api/{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()

    async def inbox(self, phone: str) -> list[dict[str, Any]]:
        return await self.sandbox("GET", f"sms?phone={phone}")

    async def last_code(self, phone: str) -> str:
        messages = await self.inbox(phone)
        assert messages, f"no SMS to {phone[:3]}…"
        found = re.search(r"验证码(\d{6})", messages[0]["text"])
        assert found, messages[0]["text"]
        return found[1]

    async def bind(self, n: int, *, relation: str = "self", phone: str | None = None, **over: Any) -> dict[str, Any]:
        """The whole round trip; returns the bound archive."""
        started = await self.start(n, relation=relation, phone=phone, **over)
        assert started.status_code == 201, started.text
        code = await self.last_code(phone or person(n)["phone"])
        r = await self.verify(started.json()["bind_id"], code)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
async def resident(people: Live) -> AsyncIterator[Any]:
    """``await resident("昵称", agree=True)``: a new sandbox user, logged in, consent given; each
    with a client (and cookies) of their own."""
    base, _ = people
    clients: list[httpx.AsyncClient] = []

    async def make(nickname: str = "居民", *, agree: bool = True, unionid: bool = False) -> Resident:
        http = httpx.AsyncClient(trust_env=False, timeout=20)
        clients.append(http)
        r = await http.post(
            f"{base}/sandbox/api/users", json={"nickname": nickname, **({"unionid": True} if unionid else {})}
        )
        assert r.status_code == 201, r.text
        who = Resident(base, http, r.json()["openid"])
        await who.login()
        if agree:
            await who.agree()
        return who

    try:
        yield make
    finally:
        for client in clients:
            await client.aclose()
