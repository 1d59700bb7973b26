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


async def test_readyz_names_the_failing_part(base_url: str, services) -> None:
    r = await fetch(base_url + "/readyz")
    assert r.code == 200 and json.loads(r.body) == {"status": "ok"}
    from sqlalchemy.ext.asyncio import create_async_engine

    # The database goes away: an engine that points nowhere stands in for it.

    broken = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    working = services.engine
    object.__setattr__(services, "engine", broken)
    try:
        r = await fetch(base_url + "/readyz")
    finally:
        object.__setattr__(services, "engine", working)
        await broken.dispose()
    assert r.code == 503
    body = json.loads(r.body)
    assert body["error"] == "unavailable" and body["failing"] == ["database"]
    assert "database" in body["message"]


async def test_metrics_count_requests_and_are_local_only(base_url: str) -> None:
    await fetch(base_url + "/healthz")
    r = await fetch(base_url + "/metrics")
    assert r.code == 200
    text = r.body.decode()
    assert 'wb_http_requests_total{method="GET",route="HealthHandler",status="200"}' in text
    assert "wb_http_request_duration_seconds_bucket" in text
    assert "wb_wechat_api_calls" in text


async def test_metrics_refuse_addresses_outside_metrics_allow(services, tmp_path, db_url, redis_url) -> None:
    from conftest import make_settings
    from local_server import serving

    from wechat_backend.app import make_app
    from wechat_backend.services import build_services

    settings = make_settings(tmp_path, db_url, redis_url, server={"metrics_allow": ["10.0.0.0/8"]})
    svc = await build_services(settings, clock=services.clock)
    try:
        async with serving(make_app(svc)) as base:
            r = await fetch(base + "/metrics")
            assert r.code == 403
    finally:
        await svc.close()


async def test_domain_verification_file_is_served_from_data_dir(base_url: str, services) -> None:
    path = services.settings.data_dir / "MP_verify_AbC123.txt"
    path.write_text("AbC123")
    r = await fetch(base_url + "/MP_verify_AbC123.txt")
    assert r.code == 200 and r.body == b"AbC123"
    assert (await fetch(base_url + "/MP_verify_missing.txt")).code == 404
    assert (await fetch(base_url + "/MP_verify_..%2Fsecrets.txt")).code == 404


async def test_shutdown_drain_waits_for_a_request_in_flight(services, tmp_path, db_url, redis_url) -> None:
    # The sandbox's fault switch makes a slow request; drain() must wait for it, then report none left.
    import asyncio

    from conftest import make_settings
    from tornado.httpserver import HTTPServer
    from tornado.netutil import bind_sockets

    from wechat_backend.app import make_app
    from wechat_backend.services import build_services

    sockets = bind_sockets(0, "127.0.0.1")
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    settings = make_settings(tmp_path, db_url, redis_url, sandbox={"enabled": True}, server={"public_base_url": base})
    svc = await build_services(settings, clock=services.clock)
    app = make_app(svc)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    try:
        fault = {"api": "cgi-bin/token", "latency_ms": 600, "count": 1}
        assert (await fetch(base + "/sandbox/api/faults", method="POST", body=json.dumps(fault))).code == 201
        slow = asyncio.ensure_future(
            fetch(base + "/sandbox/cgi-bin/token?grant_type=client_credential&appid=x&secret=y")
        )
        await asyncio.sleep(0.2)
        assert app.in_flight == 1
        server.stop()  # no new connections
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await app.drain(timeout=5) == 0
        assert loop.time() - started >= 0.3  # it waited for the slow answer (600 ms, 200 ms gone)
        assert (await asyncio.wait_for(slow, 5)).code == 200  # which did reach the client
    finally:
        await server.close_all_connections()
        await svc.close()


async def test_the_browsers_favicon_request_is_answered_without_a_404(base_url: str) -> None:
    r = await fetch(base_url + "/favicon.ico")
    assert r.code == 200 and r.body[:4] == b"\x00\x00\x01\x00"  # an ICO file, from static/
