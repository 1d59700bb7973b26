"""What every response carries and what every request may send, through a real server socket:
security headers, the body cap checked before a body is read, deeply nested JSON, and the
monitoring endpoints behind a reverse proxy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import app_with
from sqlalchemy.ext.asyncio import create_async_engine
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from handlers.headers import CONTENT_SECURITY_POLICY
from wechat_backend.clock import FixedClock
from wechat_backend.services import Services

CAP = 65536


async def fetch(url: str, **kw: object) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, raise_error=False, follow_redirects=False, **kw)


async def raw_request(base: str, head: bytes, body: bytes = b"", *, timeout: float = 5.0) -> bytes:
    """Send ``head`` (and ``body``) on a raw connection; everything the server answers before it closes."""
    address = urlsplit(base)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    answer = b""
    try:
        writer.write(head + body)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                answer += chunk
    except ConnectionResetError:
        pass  # a server that stops reading a body resets the connection: what came before stands
    finally:
        writer.close()
    return answer


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/r/home", "/api/v1/archives", "/no/such/page", "/static/css/app.css", "/oauth/start"],
)
async def test_every_response_carries_the_security_headers(base_url: str, path: str) -> None:
    r = await fetch(base_url + path)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_the_policy_allows_no_inline_script_and_no_foreign_frame() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'self'" and directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_no_template_carries_inline_script_style_or_handlers() -> None:
    """What the policy would block in a browser: pages keep working only without these."""
    import re

    templates = Path(__file__).resolve().parents[1] / "templates"
    for page in templates.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), page
        assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=|javascript:", text), page


# --------------------------------------------------------------------------- bodies


async def test_a_declared_body_over_the_cap_is_refused_before_it_is_sent(base_url: str) -> None:
    # Ten megabytes announced, not one byte sent: the answer comes from the headers alone.
    head = (
        b"POST /api/v1/mp/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000000\r\n\r\n"
    )
    answer = await raw_request(base_url, head, timeout=3.0)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body == {"error": "too_large", "message": "提交的内容过大"}


async def test_a_page_form_over_the_cap_gets_the_chinese_page(base_url: str) -> None:
    r = await fetch(base_url + "/r/bind", method="POST", body="name=" + "张" * CAP)
    assert r.code == 413
    assert "提交的内容过大" in r.body.decode() and "Traceback" not in r.body.decode()


async def test_a_chunked_body_over_the_cap_is_cut_off(base_url: str, services: Services) -> None:
    head = (
        b"POST /api/v1/mp/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 16384
    body = b"".join(b"4000\r\n" + chunk + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"  # 128 KiB
    answer = await raw_request(base_url, head, body)
    # Cut off past the cap (tornado answers a bare 400 and closes, or the reset comes first):
    # the handler never saw the body, which it would have answered as bad JSON.
    assert answer in (b"", b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert b"MpLoginHandler" not in services.metrics.render()


async def test_a_body_at_the_cap_is_still_read(base_url: str) -> None:
    padding = " " * (CAP - len('{"code": "abc"}'))
    r = await fetch(base_url + "/api/v1/mp/login", method="POST", body='{"code": "abc"}' + padding)
    assert r.code != 413  # read and answered by the handler itself


async def test_deeply_nested_json_is_bad_input_not_a_crash(base_url: str, caplog: pytest.LogCaptureFixture) -> None:
    nested = '{"a":' * 5000 + "1" + "}" * 5000
    assert len(nested) < CAP
    r = await fetch(base_url + "/api/v1/mp/login", method="POST", body=nested)
    assert r.code == 400
    assert json.loads(r.body) == {"error": "bad_input", "message": "请求内容不是有效的 JSON", "field": "body"}
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


# --------------------------------------------------------------------------- monitoring behind a proxy


async def test_metrics_behind_a_trusted_proxy_judge_the_client_not_the_proxy(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock
) -> None:
    async with app_with(tmp_path, db_url, redis_url, clock, server={"trusted_proxies": ["127.0.0.1/32"]}) as (base, _):
        outside = await fetch(base + "/metrics", headers={"X-Forwarded-For": "203.0.113.5"})
        assert outside.code == 403
        local = await fetch(base + "/metrics")  # a monitor on the proxy's host itself
        assert local.code == 200


async def test_readyz_names_the_failing_part_only_to_monitoring_hosts(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock
) -> None:
    proxy = {"trusted_proxies": ["127.0.0.1/32"]}
    async with app_with(tmp_path, db_url, redis_url, clock, server=proxy) as (base, svc):
        broken = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
        working = svc.engine
        object.__setattr__(svc, "engine", broken)
        try:
            outside = await fetch(base + "/readyz", headers={"X-Forwarded-For": "203.0.113.5"})
            inside = await fetch(base + "/readyz")
        finally:
            object.__setattr__(svc, "engine", working)
            await broken.dispose()
    assert outside.code == 503
    assert json.loads(outside.body) == {"error": "unavailable", "message": "服务暂时不可用，请稍后再试"}
    assert inside.code == 503 and json.loads(inside.body)["failing"] == ["database"]
