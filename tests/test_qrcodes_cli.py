"""`qrcodes --out DIR` as an operator runs it, against the offline platform of a live app; the
poster's drawing (layout and both renderers); the stored code shared by concurrent first requests;
and a resident following through an institution's code."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import secrets
import sys
from pathlib import Path

import httpx
import pytest
from conftest import Live
from ingest_lines import COUNTY, institution, write
from PIL import Image
from sqlalchemy import select

from wechat_backend.db.models import Identity, QrCode
from wechat_backend.posters import command, layout, qr, render
from wechat_backend.posters.layout import PAGE_H, PAGE_W, Poster, Qr, Text, text_width
from wechat_backend.posters.render import PNG_SIZE, find_cjk_font, render_pdf, render_png

OWN = f"{COUNTY}001"  # 莘县燕店镇卫生院, consult phone 0635-7123456
OTHER = "371521001"  # 阳谷县某卫生院, no phone of its own
ACCOUNT = "聊城健康档案"


@pytest.fixture
async def served(live: Live, tmp_path: Path, db_url: str, redis_url: str) -> tuple[str, dict[str, str], Live]:
    """The live app with two institutions, and the environment a CLI process needs to reach it."""
    base, services = live
    other = institution(
        upstream_id="inst-2", code=OTHER, county_code="371521", county_name="阳谷县", name="阳谷县某卫生院"
    )
    other.pop("consult_phone")
    report = await services.ingest.import_file(write(tmp_path / "institutions.jsonl", [institution(), other]))
    assert report.exit_code == 0, report
    w = services.settings.wechat
    env = {k: v for k, v in os.environ.items() if not k.startswith("WB_")}
    env |= {
        "WB_SERVER_DATA_DIR": services.settings.server.data_dir,
        "WB_SERVER_PUBLIC_BASE_URL": base,
        "WB_DATABASE_URL": db_url,
        "WB_REDIS_URL": redis_url,
        "WB_REDIS_KEY_PREFIX": "cli" + secrets.token_hex(3),
        "WB_WECHAT_API_BASE_URL": w.api_base_url,
        "WB_WECHAT_APP_ID": w.app_id,
        "WB_WECHAT_APP_SECRET": w.app_secret,
        "WB_WECHAT_ACCOUNT_NAME": ACCOUNT,
    }
    return base, env, live


async def qrcodes(env: dict[str, str], *args: str) -> tuple[int, str]:
    """The console script, as operators run it (``python -m wechat_backend`` loads ``__main__`` twice,
    so a command module's ``CommandError`` would not be the one ``main`` catches)."""
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "wechat-backend"),
        "qrcodes",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode() + err.decode()


async def codes_asked(base: str) -> int:
    async with httpx.AsyncClient(trust_env=False) as http:
        calls = (await http.get(base + "/sandbox/api/calls")).json()["calls"]
    return calls.get("cgi-bin/qrcode/create", 0)


async def stored_codes(live: Live) -> dict[str, str]:
    _, services = live
    async with services.sessions() as s:
        return {r.institution_code: r.url for r in (await s.execute(select(QrCode))).scalars()}


def modules_in(png: bytes, poster: Poster) -> tuple[tuple[bool, ...], ...]:
    """The QR code read back from the picture: the dark pixels' box in the QR code's square spans
    the modules between the quiet zones; each module's colour is the pixel at its centre."""
    image = Image.open(io.BytesIO(png)).convert("L")
    (square,) = [op for op in layout.layout(poster) if isinstance(op, Qr)]
    n = len(square.modules)
    scale = image.width / PAGE_W
    region = tuple(round(v * scale) for v in (square.x, square.y, square.x + square.size, square.y + square.size))
    left, top, right, _ = image.crop(region).point(lambda v: 255 if v < 128 else 0).getbbox()
    unit = (right - left) / (n - 8)
    x0, y0 = region[0] + left - 4 * unit, region[1] + top - 4 * unit

    def dark(r: int, c: int) -> bool:
        return image.getpixel((int(x0 + (c + 0.5) * unit), int(y0 + (r + 0.5) * unit))) < 128

    return tuple(tuple(dark(r, c) for c in range(n)) for r in range(n))


async def test_qrcodes_writes_each_institutions_poster_and_asks_wechat_once(served, tmp_path: Path) -> None:
    base, env, live = served
    out = tmp_path / "posters"
    code, output = await qrcodes(env, "--out", str(out))
    assert code == 0, output
    assert "已为 2 个机构生成海报（PNG 和 PDF）" in output and "新申请二维码 2 个" in output
    assert sorted(p.name for p in out.iterdir()) == [f"{OTHER}.pdf", f"{OTHER}.png", f"{OWN}.pdf", f"{OWN}.png"]
    urls = await stored_codes(live)
    assert sorted(urls) == [OTHER, OWN]
    assert all(u.startswith("http://weixin.qq.com/q/") for u in urls.values())
    assert await codes_asked(base) == 2

    png = (out / f"{OWN}.png").read_bytes()
    image = Image.open(io.BytesIO(png))
    assert image.size == PNG_SIZE == (1240, 1754)  # A4 at 150 dpi
    assert abs(image.height / image.width - PAGE_H / PAGE_W) < 0.002
    assert round(image.info["dpi"][0]) == 150
    poster = Poster(ACCOUNT, "莘县燕店镇卫生院", "0635-7123456", urls[OWN])
    assert modules_in(png, poster) == layout.qr_modules(urls[OWN])  # the code in the picture is the stored URL's
    pdf = (out / f"{OWN}.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"/MediaBox [ 0 0 595.2756 841.8898 ]" in pdf  # A4

    again, output = await qrcodes(env, "--out", str(out))
    assert again == 0, output
    assert "新申请二维码 0 个，沿用 2 个" in output
    assert await codes_asked(base) == 2  # nothing asked of WeChat the second time
    assert await stored_codes(live) == urls
    assert (out / f"{OWN}.png").read_bytes() == png  # same code, same poster


async def test_qrcodes_for_one_institution_writes_only_its_poster(served, tmp_path: Path) -> None:
    base, env, live = served
    out = tmp_path / "one"
    code, output = await qrcodes(env, "--institution", OWN, "--out", str(out))
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == [f"{OWN}.pdf", f"{OWN}.png"]
    assert list(await stored_codes(live)) == [OWN]
    assert await codes_asked(base) == 1


async def test_an_unknown_institution_is_refused_with_exit_2(served, tmp_path: Path) -> None:
    base, env, _ = served
    out = tmp_path / "none"
    code, output = await qrcodes(env, "--institution", "371599999", "--out", str(out))
    assert code == 2, output
    assert "错误：没有代码为 371599999 的机构" in output and "Traceback" not in output
    assert not out.exists()
    assert await codes_asked(base) == 0


async def test_an_account_without_qr_permission_is_explained(served, tmp_path: Path) -> None:
    base, env, live = served
    async with httpx.AsyncClient(trust_env=False) as http:
        fault = {"api": "cgi-bin/qrcode/create", "errcode": 48001, "count": 0}
        assert (await http.post(base + "/sandbox/api/faults", json=fault)).status_code == 201
    out = tmp_path / "refused"
    code, output = await qrcodes(env, "--out", str(out))
    assert code == 2, output
    assert f"向微信申请 {OTHER}（阳谷县某卫生院）的二维码失败" in output  # the first, by county and code
    assert "48001" in output and "已完成微信认证的服务号" in output and "没有生成任何海报" in output
    assert "Traceback" not in output
    assert list(out.iterdir()) == []  # made, nothing half-written in it
    assert await stored_codes(live) == {}


async def test_without_a_cjk_font_the_pdfs_are_written_and_the_png_is_explained(
    served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, (_, services) = served
    monkeypatch.setattr(render, "FONT_CANDIDATES", (("/nonexistent/font.ttc", 0),))
    out = tmp_path / "nofont"
    code = await command.run(services.settings, argparse.Namespace(institution=None, out=str(out)))
    assert code == 1  # done, but something is missing
    assert sorted(p.name for p in out.iterdir()) == [f"{OTHER}.pdf", f"{OWN}.pdf"]
    assert b"STSong-Light" in (out / f"{OWN}.pdf").read_bytes()  # the CID font: no file needed
    printed = capsys.readouterr()
    assert "已为 2 个机构生成海报（PDF）" in printed.out
    assert "apt-get install fonts-wqy-microhei" in printed.err and "无法生成 PNG" in printed.err


async def test_two_first_requests_at_once_keep_one_code(served) -> None:
    _, _, live = served
    _, services = live
    first, second = await asyncio.gather(
        qr.ensure_code(services.sessions, services.wechat, OWN), qr.ensure_code(services.sessions, services.wechat, OWN)
    )
    assert (first.ticket, first.url) == (second.ticket, second.url)
    assert await stored_codes(live) == {OWN: first.url}
    again = await qr.ensure_code(services.sessions, services.wechat, OWN)
    assert (again.url, again.new) == (first.url, False)


async def test_no_code_is_asked_for_an_unknown_institution(served) -> None:
    base, _, (_, services) = served
    from wechat_backend.errors import NotFound

    with pytest.raises(NotFound):
        await qr.ensure_code(services.sessions, services.wechat, "371599999")
    assert await codes_asked(base) == 0


async def test_a_resident_following_through_the_poster_is_credited_to_the_institution(served) -> None:
    base, _, live = served
    _, services = live
    stored = await qr.ensure_code(services.sessions, services.wechat, OWN)
    async with httpx.AsyncClient(trust_env=False) as http:
        openid = (await http.post(base + "/sandbox/api/users", json={"nickname": "扫码的居民"})).json()["openid"]
        # what WeChat sends when someone not yet following scans the code made for this scene
        r = await http.post(f"{base}/sandbox/api/users/{openid}/scan", json={"scene": stored.institution_code})
        assert r.status_code == 200, r.text
    assert "感谢您在莘县燕店镇卫生院扫码关注" in r.json()["reply"]
    async with services.sessions() as s:
        identity = await s.scalar(select(Identity).where(Identity.channel == "oa", Identity.openid == openid))
    assert identity is not None and identity.subscribed
    assert identity.scene_institution_code == OWN


# --------------------------------------------------------------------------- the drawing itself


def texts(poster: Poster) -> list[Text]:
    return [op for op in layout.layout(poster) if isinstance(op, Text)]


def test_the_poster_says_the_three_steps_the_account_the_institution_and_the_phone() -> None:
    poster = Poster(ACCOUNT, "莘县燕店镇卫生院", "0635-7123456", "http://weixin.qq.com/q/abc")
    said = [t.text for t in texts(poster)]
    assert f"公众号：{ACCOUNT}" in said and "莘县燕店镇卫生院" in said
    assert [s for s in said if s in ("1", "2", "3")] == ["1", "2", "3"]
    assert [s for s in said if s in ("扫码关注", "绑定档案", "查看档案")] == ["扫码关注", "绑定档案", "查看档案"]
    assert "咨询电话：0635-7123456" in said
    assert min(t.size for t in texts(poster)) >= 15  # big type, on a wall
    without = [t.text for t in texts(Poster(ACCOUNT, "某卫生院", "", "http://weixin.qq.com/q/abc"))]
    assert not any("咨询电话" in s for s in without) and "不会用？请找本院工作人员帮忙" in without


def test_long_names_stay_on_the_page() -> None:
    poster = Poster(
        "聊城市卫生健康委员会居民电子健康档案查询服务",
        "聊城经济技术开发区北城街道办事处社区卫生服务中心蒋官屯街道分中心",
        "0635-12345678、0635-87654321（工作日 8:00–17:00）",
        "http://weixin.qq.com/q/" + "x" * 40,
    )
    ops = layout.layout(poster)
    for t in texts(poster):
        half = text_width(t.text, t.size) / 2
        left, right = (t.x - half, t.x + half) if t.centred else (t.x, t.x + 2 * half)
        assert left >= 5 and right <= PAGE_W - 5, t.text
        assert t.baseline <= PAGE_H - 8, t.text
    (square,) = [op for op in ops if isinstance(op, Qr)]
    assert square.size >= 60  # still scans from a step or two away


def test_lines_break_between_characters_but_never_inside_a_number_nor_before_a_comma() -> None:
    phone = "咨询电话：0635-12345678、0635-87654321（工作日 8:00–17:00）"
    lines = layout.wrap(phone, 18, 182)
    assert "".join(lines) == phone and lines[-1] == "8:00–17:00）"
    for size in (14, 17, 20, 26):
        for line in layout.wrap(layout.STEPS[1][1], size, 120):
            assert line[0] not in "，。、”", line


def test_the_pdf_is_one_a4_page_with_the_font_embedded_when_there_is_one() -> None:
    poster = Poster(ACCOUNT, "莘县燕店镇卫生院", "0635-7123456", "http://weixin.qq.com/q/abc")
    bare = render_pdf(poster)
    assert bare.startswith(b"%PDF") and b"/Count 1" in bare and b"/MediaBox [ 0 0 595.2756 841.8898 ]" in bare
    assert b"STSong-Light" in bare and b"FontFile2" not in bare
    font = find_cjk_font()
    if font is None:
        pytest.skip("no CJK font on this machine (apt-get install fonts-wqy-microhei)")
    embedded = render_pdf(poster, font)
    assert b"FontFile2" in embedded and b"STSong-Light" not in embedded
    png = render_png(poster, font)
    assert modules_in(png, poster) == layout.qr_modules("http://weixin.qq.com/q/abc")


def test_the_font_search_takes_the_first_font_there_is(tmp_path: Path) -> None:
    there = tmp_path / "wqy-microhei.ttc"
    there.write_bytes(b"")
    assert find_cjk_font([("/nonexistent/a.ttc", 0), (str(there), 0)]) == render.FontFile(str(there), 0)
    assert find_cjk_font([("/nonexistent/a.ttc", 2)]) is None
