"""二维码海报 in the 工作台: staff download the posters of the institutions in their scope; the first
download asks WeChat for the institution's code, later ones reuse it; a resident who scans it is
credited to that institution."""

from __future__ import annotations

import io

import httpx
import pytest
from conftest import Live
from PIL import Image
from sqlalchemy import select

from staff.conftest import INSTITUTION, OTHER_INSTITUTION
from wechat_backend.db.models import AuditEvent, Identity, QrCode
from wechat_backend.posters import render


async def sandbox(base: str, method: str, path: str, body: object = None) -> object:
    async with httpx.AsyncClient(trust_env=False) as http:
        r = await http.request(method, f"{base}/sandbox/api/{path}", json=body)
    assert r.status_code < 300, r.text
    return r.json()


async def codes_asked(base: str) -> int:
    calls = await sandbox(base, "GET", "calls")
    return calls["calls"].get("cgi-bin/qrcode/create", 0)  # type: ignore[index]


async def test_institution_staff_download_their_own_poster(staff_web, people: Live) -> None:
    base, services = people
    web = await staff_web("institution", institution=INSTITUTION)
    page = await web.get("/staff/posters")
    assert page.status_code == 200
    assert "莘县燕店镇卫生院" in page.text and "0635-7123456" in page.text
    assert f"/staff/posters/{INSTITUTION}.pdf" in page.text and f"/staff/posters/{INSTITUTION}.png" in page.text
    assert OTHER_INSTITUTION not in page.text

    png = await web.get(f"/staff/posters/{INSTITUTION}.png")
    assert png.status_code == 200
    assert png.headers["Content-Type"] == "image/png"
    assert png.headers["Content-Disposition"] == f'attachment; filename="{INSTITUTION}.png"'
    assert Image.open(io.BytesIO(png.content)).size == (1240, 1754)
    pdf = await web.get(f"/staff/posters/{INSTITUTION}.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"] == f'attachment; filename="{INSTITUTION}.pdf"'
    assert pdf.content.startswith(b"%PDF")

    assert await codes_asked(base) == 1  # asked at the first download, reused at the second
    async with services.sessions() as s:
        assert (await s.scalars(select(QrCode.institution_code))).all() == [INSTITUTION]
        rows = (
            await s.scalars(select(AuditEvent).where(AuditEvent.action == "poster_download").order_by(AuditEvent.id))
        ).all()
    assert [(r.actor_id, r.result, r.detail) for r in rows] == [
        (f"staff:{web.public_id}", "ok", {"institution": INSTITUTION, "format": "png"}),
        (f"staff:{web.public_id}", "ok", {"institution": INSTITUTION, "format": "pdf"}),
    ]


async def test_another_institutions_poster_is_not_found(staff_web, people: Live) -> None:
    base, _ = people
    web = await staff_web("institution", institution=INSTITUTION)
    for path in (f"/staff/posters/{OTHER_INSTITUTION}.pdf", f"/staff/posters/{OTHER_INSTITUTION}.png"):
        r = await web.get(path)
        assert r.status_code == 404, path
        assert "未找到相关记录" in r.text
    assert (await web.get("/staff/posters/371599999.pdf")).status_code == 404  # no such institution
    assert await codes_asked(base) == 0  # nothing asked of WeChat for them


async def test_county_staff_see_their_countys_institutions_only(staff_web, people: Live) -> None:
    web = await staff_web("county", county=INSTITUTION[:6])
    page = await web.get("/staff/posters")
    assert f"/staff/posters/{INSTITUTION}.pdf" in page.text
    assert OTHER_INSTITUTION not in page.text
    assert (await web.get(f"/staff/posters/{INSTITUTION}.pdf")).status_code == 200
    assert (await web.get(f"/staff/posters/{OTHER_INSTITUTION}.pdf")).status_code == 404


async def test_city_staff_see_and_download_every_institution(staff_web, people: Live) -> None:
    base, _ = people
    web = await staff_web("city")
    page = await web.get("/staff/posters")
    assert page.status_code == 200
    assert "莘县燕店镇卫生院" in page.text and "阳谷县某卫生院" in page.text
    for code in (INSTITUTION, OTHER_INSTITUTION):
        r = await web.get(f"/staff/posters/{code}.pdf")
        assert r.status_code == 200 and r.content.startswith(b"%PDF"), code
    assert await codes_asked(base) == 2


async def test_a_refusal_from_wechat_says_what_is_needed(staff_web, people: Live) -> None:
    base, services = people
    await sandbox(base, "POST", "faults", {"api": "cgi-bin/qrcode/create", "errcode": 48001, "count": 1})
    web = await staff_web("institution", institution=INSTITUTION)
    r = await web.get(f"/staff/posters/{INSTITUTION}.pdf")
    assert r.status_code == 503
    assert "48001" in r.text and "已完成微信认证的服务号" in r.text and "请联系市级管理员" in r.text
    async with services.sessions() as s:
        assert (await s.scalars(select(QrCode))).all() == []
    assert (await web.get(f"/staff/posters/{INSTITUTION}.pdf")).status_code == 200  # once the fault is gone


async def test_without_a_chinese_font_the_page_offers_the_pdf_and_says_what_to_install(
    staff_web, people: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "FONT_CANDIDATES", ())
    web = await staff_web("institution", institution=INSTITUTION)
    page = await web.get("/staff/posters")
    assert "apt-get install fonts-wqy-microhei" in page.text
    assert f"/staff/posters/{INSTITUTION}.png" not in page.text
    png = await web.get(f"/staff/posters/{INSTITUTION}.png")
    assert png.status_code == 503 and "apt-get install fonts-wqy-microhei" in png.text and "PDF" in png.text
    pdf = await web.get(f"/staff/posters/{INSTITUTION}.pdf")
    assert pdf.status_code == 200 and b"STSong-Light" in pdf.content


async def test_a_resident_who_scans_the_downloaded_poster_counts_for_the_institution(staff_web, people: Live) -> None:
    base, services = people
    web = await staff_web("institution", institution=INSTITUTION)
    assert (await web.get(f"/staff/posters/{INSTITUTION}.png")).status_code == 200
    async with services.sessions() as s:
        (scene,) = (await s.scalars(select(QrCode.institution_code))).all()  # the scene the code was made for
    openid = (await sandbox(base, "POST", "users", {"nickname": "看到海报的居民"}))["openid"]  # type: ignore[index]
    reply = await sandbox(base, "POST", f"users/{openid}/scan", {"scene": scene})
    assert "莘县燕店镇卫生院" in reply["reply"]  # type: ignore[index]
    async with services.sessions() as s:
        identity = await s.scalar(select(Identity).where(Identity.channel == "oa", Identity.openid == openid))
    assert identity is not None and identity.scene_institution_code == INSTITUTION


async def test_the_posters_page_has_no_inline_script_or_style(staff_web, people: Live) -> None:
    web = await staff_web("city")
    page = await web.get("/staff/posters")
    assert page.status_code == 200
    assert "<script>" not in page.text and "style=" not in page.text  # the CSP forbids them
