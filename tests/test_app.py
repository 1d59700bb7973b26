"""The HTTP application through a real server socket."""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient, HTTPResponse


async def fetch(url: str, **kw: object) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, raise_error=False, **kw)


async def test_healthz_answers_ok(base_url: str) -> None:
    r = await fetch(base_url + "/healthz")
    assert r.code == 200
    assert json.loads(r.body) == {"status": "ok"}
    assert r.headers["Cache-Control"] == "no-store"


async def test_unknown_page_is_a_chinese_404_page_without_a_trace(base_url: str) -> None:
    r = await fetch(base_url + "/no/such/page?phone=13800138000")
    assert r.code == 404
    body = r.body.decode()
    assert "未找到相关记录" in body and "建档机构" in body
    assert "Traceback" not in body and "13800138000" not in body


async def test_unknown_api_path_is_json(base_url: str) -> None:
    r = await fetch(base_url + "/api/v1/nothing")
    assert r.code == 404
    assert json.loads(r.body) == {"error": "not_found", "message": "未找到相关记录"}


async def test_post_to_healthz_is_refused_cleanly(base_url: str) -> None:
    r = await fetch(base_url + "/healthz", method="POST", body="x")
    assert r.code in (403, 405)
    assert b"Traceback" not in r.body
