"""The authorization matrix of the 工作台: every staff route × every role × an object inside and
outside the role's scope. A role without the route's ability → 403; an object outside the scope →
404, the same as one that does not exist; an object inside → the page (200, or 303 after a post).
A resident's session → 403; no session → the staff login (a page) or 401 (the API, a post)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from binding.conftest import CLOSED_COUNTY, ELDER, OTHER_COUNTY
from conftest import Live
from ingest_lines import COUNTY
from sqlalchemy import select

from staff.conftest import INSTITUTION, OTHER_INSTITUTION, StaffWeb
from wechat_backend.db.models import Archive, Feedback, Identity
from wechat_backend.feedback.service import feedback_aad
from wechat_backend.ids import new_public_id

ROLES = {
    "city": {},
    "county": {"county": COUNTY},
    "institution": {"institution": INSTITUTION},
}
ALLOWED = (200, 303)


@dataclass(frozen=True)
class Case:
    """One request: ``path`` may hold ``{in}`` / ``{out}``, replaced by the object inside or
    outside the role's scope. ``roles``: the roles whose ability covers the route."""

    name: str
    method: str
    path: str
    roles: frozenset[str]
    form: dict[str, str] | None = None
    scoped: bool = False  # has an object in ``path`` or ``form`` ({in}/{out})


ALL = frozenset(ROLES)
ADMINS = frozenset({"city", "county"})
OPENERS = frozenset({"county", "institution"})

CASES = (
    Case("home", "GET", "/staff/", ALL),
    Case("counties", "GET", "/staff/counties", ADMINS),
    Case("county set", "POST", "/staff/counties", ADMINS, {"county": "{in}", "opening": "on", "phase": "all"}, True),
    Case("archive search", "GET", "/staff/archives", OPENERS),
    Case("archive", "GET", "/staff/archives/{in}", OPENERS, scoped=True),
    Case("archive opening", "POST", "/staff/archives/{in}/opening", OPENERS, {"decision": "open"}, True),
    Case("bulk preview", "GET", "/staff/archives/bulk", OPENERS),
    Case("stats", "GET", "/staff/stats", ALL),
    Case("stats csv", "GET", "/staff/stats.csv", ALL),
    Case("stats xlsx", "GET", "/staff/stats.xlsx", ALL),
    Case("inbox", "GET", "/staff/inbox", ALL),
    Case("question", "GET", "/staff/inbox/{in}", ALL, scoped=True),
    Case("posters", "GET", "/staff/posters", ALL),
    Case("poster pdf", "GET", "/staff/posters/{in}.pdf", ALL, scoped=True),
    Case("audit", "GET", "/staff/audit", ADMINS),
    Case("audit of an archive", "GET", "/staff/audit?archive={in}", ADMINS, scoped=True),
    Case("audit csv", "GET", "/staff/audit.csv", ADMINS),
)


async def archive_id(services: Any, n: int) -> str:
    async with services.sessions() as s:
        return await s.scalar(select(Archive.public_id).where(Archive.upstream_id == f"arc-{n}"))


async def question(services: Any, county: str | None, institution: str | None) -> str:
    """A resident's question routed to this inbox (None, None: the city's)."""
    public_id = new_public_id()
    async with services.sessions.begin() as s:
        who = Identity(channel="oa", openid="o" + new_public_id(), subscribed=True)
        s.add(who)
        await s.flush()
        s.add(
            Feedback(
                public_id=public_id,
                identity_id=who.id,
                county_code=county,
                institution_code=institution,
                route="qr" if institution else "city",
                channel="message",
                status="open",
                sealed=services.keyring.seal({"text": "降压药怎么吃？"}, feedback_aad(public_id)),
                key_id=services.keyring.active_key,
            )
        )
    return public_id


@pytest.fixture
async def objects(people: Live) -> dict[str, dict[str, str]]:
    """For each kind of object: the one inside 莘县燕店镇卫生院's scope and one in 阳谷县."""
    _, services = people
    return {
        "archive": {"in": await archive_id(services, ELDER), "out": await archive_id(services, CLOSED_COUNTY)},
        "question": {
            "in": await question(services, COUNTY, INSTITUTION),
            "out": await question(services, OTHER_COUNTY, OTHER_INSTITUTION),
        },
        "county": {"in": COUNTY, "out": OTHER_COUNTY},
        "institution": {"in": INSTITUTION, "out": OTHER_INSTITUTION},
    }


def kind_of(case: Case) -> str:
    if case.name.startswith("question"):
        return "question"
    if case.name.startswith("county"):
        return "county"
    if case.name.startswith("poster"):
        return "institution"
    return "archive"


async def send(web: StaffWeb | httpx.AsyncClient, base: str, case: Case, value: str | None) -> httpx.Response:
    path = case.path.replace("{in}", value or "")
    form = {k: (value or "") if v == "{in}" else v for k, v in (case.form or {}).items()} or None
    if isinstance(web, StaffWeb):
        if case.method == "GET":
            return await web.get(path, follow_redirects=False)
        return await web.post(path, form, follow_redirects=False)
    return await web.request(case.method, base + path, data=form, follow_redirects=False)


async def test_every_route_every_role_inside_and_outside_the_scope(staff_web, people: Live, objects) -> None:
    seen: list[str] = []
    for role, place in ROLES.items():
        web = await staff_web(role, **place)
        for case in CASES:
            where = f"{case.method} {case.path} as {role}"
            if role not in case.roles:
                value = objects[kind_of(case)]["in"] if case.scoped else None
                r = await send(web, "", case, value)
                assert r.status_code == 403, f"{where}: {r.status_code}"
                seen.append(where)
                continue
            inside = objects[kind_of(case)]["in"] if case.scoped else None
            r = await send(web, "", case, inside)
            assert r.status_code in ALLOWED, f"{where} (inside): {r.status_code} {r.text[:300]}"
            if case.scoped and role != "city":  # the city's scope is everything
                r = await send(web, "", case, objects[kind_of(case)]["out"])
                assert r.status_code == 404, f"{where} (outside): {r.status_code}"
                none = await send(web, "", case, "nosuch" + kind_of(case)[:3])
                assert none.status_code in (404, 400), f"{where} (none): {none.status_code}"
            seen.append(where)
    assert len(seen) == len(CASES) * len(ROLES)


def without_ids(page: str) -> str:
    """The page without what differs per response: the request id and the XSRF token."""
    return re.sub(r"[0-9a-f]{16}|name=\"_xsrf\" value=\"[^\"]*\"", "", page)


async def test_an_object_outside_the_scope_answers_as_one_that_does_not_exist(staff_web, objects) -> None:
    """The out-of-scope answer and the no-such-object answer are the same page (but for the
    request id), so the 404 tells nothing about what exists elsewhere."""
    web = await staff_web("institution", institution=INSTITUTION)
    for path in ("/staff/archives/{}", "/staff/inbox/{}"):
        kind = "archive" if "archives" in path else "question"
        outside = await web.get(path.format(objects[kind]["out"]))
        missing = await web.get(path.format(new_public_id()))
        assert outside.status_code == missing.status_code == 404
        assert without_ids(outside.text) == without_ids(missing.text)


async def test_a_residents_session_gets_403_and_no_session_gets_the_login(resident, people: Live, objects) -> None:
    base, _ = people
    who = await resident("居民")
    async with httpx.AsyncClient(trust_env=False, timeout=20) as anonymous:
        for case in CASES:
            value = objects[kind_of(case)]["in"] if case.scoped else None
            path = case.path.replace("{in}", value or "")
            r = await who.client.request(
                case.method,
                base + path,
                headers={"Authorization": f"Bearer {who.token}"},
                follow_redirects=False,
            )
            assert r.status_code == 403, f"resident: {case.method} {path}: {r.status_code}"
            r = await send(anonymous, base, case, value)
            if case.method == "GET":
                assert r.status_code == 302, f"none: {case.method} {path}: {r.status_code}"
                assert r.headers["Location"].startswith("/staff/login?next=")
            else:
                assert r.status_code == 401, f"none: {case.method} {path}: {r.status_code}"
