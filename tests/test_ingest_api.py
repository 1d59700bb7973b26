"""``POST /api/v1/ingest`` through a real server socket, as the upstream system's integrator sees it:
signed JSON Lines in, one status per line out; refusals import nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from conftest import app_with
from ingest_lines import archive, institution, record
from sqlalchemy import func, select

from wechat_backend.clock import FixedClock
from wechat_backend.db.models import Archive, Institution, ServiceRecord
from wechat_backend.ingest import signed
from wechat_backend.services import Services

URL = "/api/v1/ingest"
GENERAL_CAP = 65536  # [limits] max_body_bytes: every other route's body cap


def jsonl(objs: Iterable[Any]) -> bytes:
    return b"".join((o if isinstance(o, str) else json.dumps(o, ensure_ascii=False)).encode() + b"\n" for o in objs)


def key_of(services: Services) -> bytes:
    key = signed.signing_key(services.settings.security.ingest_hmac_key)
    assert key is not None
    return key


def headers_for(key: bytes, body: bytes, timestamp: int | str) -> dict[str, str]:
    ts = str(timestamp)
    return {"X-WB-Timestamp": ts, "X-WB-Signature": signed.sign(key, ts, body), "Content-Type": "application/x-ndjson"}


async def push(base: str, services: Services, body: bytes, *, age: int = 0, **extra: str) -> httpx.Response:
    """A correctly signed push, its timestamp ``age`` seconds before the server's clock."""
    ts = int(services.clock.now().timestamp()) - age
    headers = {**headers_for(key_of(services), body, ts), **extra}
    async with httpx.AsyncClient() as client:
        return await client.post(base + URL, content=body, headers=headers)


async def post(base: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(base + URL, content=body, headers=headers)


async def stored(services: Services) -> tuple[int, int, int]:
    """(institutions, archives, records) in the database."""
    async with services.sessions() as s:
        return tuple(  # type: ignore[return-value]
            [await s.scalar(select(func.count()).select_from(m)) for m in (Institution, Archive, ServiceRecord)]
        )


def statuses(r: httpx.Response) -> dict[int, str]:
    return {item["line"]: item["status"] for item in r.json()["lines"]}


async def raw_request(base: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a raw connection; everything the server answers before it closes."""
    address = urlsplit(base)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    answer = b""
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                answer += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass  # a server that stops reading a body resets the connection: what came before stands
    finally:
        writer.close()
    return answer


def status_and_json(answer: bytes) -> tuple[bytes, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], json.loads(body)


FIRST_PUSH = [institution(), archive(1), record(1), record(2, kind="diabetes_followup", diagnosis_codes=["E11"])]


# --------------------------------------------------------------------------- accepted pushes


async def test_a_signed_push_is_imported_and_answered_line_by_line(base_url: str, services: Services) -> None:
    r = await push(base_url, services, jsonl(FIRST_PUSH))
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {
        "lines": [{"line": n, "status": "inserted"} for n in (1, 2, 3, 4)],
        "summary": {"lines": 4, "inserted": 4, "updated": 0, "unchanged": 0, "rejected": 0},
    }
    assert await stored(services) == (1, 1, 2)
    assert "Set-Cookie" not in r.headers  # a machine API: no session, no XSRF cookie


async def test_the_same_lines_again_are_unchanged_and_a_higher_version_updates(
    base_url: str, services: Services, clock: FixedClock
) -> None:
    assert (await push(base_url, services, jsonl(FIRST_PUSH))).status_code == 200
    clock.advance(seconds=30)  # a new timestamp, so a new signature
    again = await push(base_url, services, jsonl(FIRST_PUSH))
    assert again.status_code == 200
    assert statuses(again) == {1: "unchanged", 2: "unchanged", 3: "unchanged", 4: "unchanged"}
    assert again.json()["summary"] == {"lines": 4, "inserted": 0, "updated": 0, "unchanged": 4, "rejected": 0}

    clock.advance(seconds=30)
    corrected = await push(base_url, services, jsonl([record(1, version=2, payload={"sbp": 138, "dbp": 84})]))
    assert corrected.json()["lines"] == [{"line": 1, "status": "updated"}]
    assert await stored(services) == (1, 1, 2)


async def test_a_malformed_line_is_rejected_with_its_reason_and_the_others_are_taken(
    base_url: str, services: Services
) -> None:
    body = jsonl(
        [
            institution(),
            '{"type": "archive", "upstream_id": ',  # cut off
            archive(1),
            "",  # blank lines are skipped but still counted
            archive(2, gender="7"),
            record(1, archive_n=9),  # its archive is unknown: sent again later
            record(1),
        ]
    )
    r = await push(base_url, services, body)
    assert r.status_code == 200
    lines = r.json()["lines"]
    assert [item["line"] for item in lines] == [1, 2, 3, 5, 6, 7]  # line-number order, blank line 4 absent
    assert statuses(r) == {1: "inserted", 2: "rejected", 3: "inserted", 5: "rejected", 6: "rejected", 7: "inserted"}
    reasons = {item["line"]: item["reason"] for item in lines if "reason" in item}
    assert reasons.keys() == {2, 5, 6}
    assert reasons[2] == "不是有效的 JSON"
    assert "gender" in reasons[5]
    assert "archive_upstream_id" in reasons[6]
    assert r.json()["summary"] == {"lines": 6, "inserted": 3, "updated": 0, "unchanged": 0, "rejected": 3}
    assert await stored(services) == (1, 1, 1)


async def test_a_body_over_the_general_cap_but_under_max_request_bytes_is_taken(
    base_url: str, services: Services
) -> None:
    records = [record(n, payload={"sbp": 120 + n % 40, "dbp": 80, "note": "随访" * 40}) for n in range(1, 301)]
    body = jsonl([institution(), archive(1), *records])
    assert GENERAL_CAP < len(body) < services.settings.ingest.max_request_bytes
    r = await push(base_url, services, body)
    assert r.status_code == 200
    assert r.json()["summary"] == {"lines": 302, "inserted": 302, "updated": 0, "unchanged": 0, "rejected": 0}
    assert await stored(services) == (1, 1, 300)


async def test_a_chunked_push_is_signed_over_the_bytes_as_sent(base_url: str, services: Services) -> None:
    body = jsonl(FIRST_PUSH)
    headers = headers_for(key_of(services), body, int(services.clock.now().timestamp()))

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    async with httpx.AsyncClient() as client:
        r = await client.post(base_url + URL, content=pieces(), headers=headers)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 200 and r.json()["summary"]["inserted"] == 4


@pytest.mark.parametrize("age", [300, -300])
async def test_a_timestamp_five_minutes_off_is_still_accepted(base_url: str, services: Services, age: int) -> None:
    r = await push(base_url, services, jsonl([institution()]), age=age)
    assert r.status_code == 200


async def test_sql_and_html_in_fields_are_stored_verbatim_or_rejected_never_run(
    base_url: str, services: Services
) -> None:
    sql_name = "卫生院'); DROP TABLE institutions; --"
    html_address = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    body = jsonl(
        [
            institution(name=sql_name, address=html_address),
            archive(1),
            archive(2, archive_no="371522001' OR '1'='1"),
            record(1, upstream_id="rec-1'; DELETE FROM service_records; --"),
            record(2),
        ]
    )
    r = await push(base_url, services, body)
    assert r.status_code == 200
    assert statuses(r) == {1: "inserted", 2: "inserted", 3: "rejected", 4: "inserted", 5: "inserted"}
    assert "archive_no" in r.json()["lines"][2]["reason"]
    assert await stored(services) == (1, 1, 2)  # no table dropped, no row deleted
    async with services.sessions() as s:
        name, address = (await s.execute(select(Institution.name, Institution.address))).one()
        upstream_ids = set((await s.scalars(select(ServiceRecord.upstream_id))).all())
    assert (name, address) == (sql_name, html_address)
    assert "rec-1'; DELETE FROM service_records; --" in upstream_ids


async def test_the_call_is_logged_with_counts_only(
    base_url: str, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="wechat_backend.ingest")
    r = await push(base_url, services, jsonl(FIRST_PUSH))
    assert r.status_code == 200
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "wechat_backend.ingest"]
    assert len(lines) == 1
    assert "lines=4 inserted=4 updated=0 unchanged=0 rejected=0" in lines[0]
    for personal in ("刘淑珍", archive(1)["id_number"], archive(1)["phone"], archive(1)["archive_no"]):
        assert personal not in caplog.text


# --------------------------------------------------------------------------- refused: nothing imported


def assert_refused(r: httpx.Response, status: int, error: str, field: str | None = None) -> None:
    assert r.status_code == status
    body = r.json()
    assert body["error"] == error and body["message"]
    assert "Traceback" not in r.text
    if field is not None:
        assert body["field"] == field


async def test_a_wrong_signature_is_401_and_nothing_is_written(base_url: str, services: Services) -> None:
    body = jsonl(FIRST_PUSH)
    ts = int(services.clock.now().timestamp())
    good = headers_for(key_of(services), body, ts)
    attempts = [
        headers_for(b"another key, not the configured one", body, ts),
        headers_for(key_of(services), body + b"\n", ts),  # the body changed after signing
        {**good, "X-WB-Timestamp": str(ts - 1)},  # the signature covers the timestamp too
        {**good, "X-WB-Signature": good["X-WB-Signature"].upper()},  # lower-case hex only
        {**good, "X-WB-Signature": "0" * 64},
    ]
    for headers in attempts:
        r = await post(base_url, body, headers)
        assert_refused(r, 401, "not_logged_in", "X-WB-Signature")
        assert "签名" in r.json()["message"]
    assert await stored(services) == (0, 0, 0)
    assert (await post(base_url, body, good)).status_code == 200  # none of them used up the real one


@pytest.mark.parametrize("age", [360, -360])
async def test_a_timestamp_six_minutes_off_is_401(base_url: str, services: Services, age: int) -> None:
    r = await push(base_url, services, jsonl(FIRST_PUSH), age=age)
    assert_refused(r, 401, "not_logged_in", "X-WB-Timestamp")
    assert "5 分钟" in r.json()["message"]
    assert await stored(services) == (0, 0, 0)


@pytest.mark.parametrize(
    ("drop", "replace", "field"),
    [
        ("X-WB-Timestamp", None, "X-WB-Timestamp"),
        ("X-WB-Signature", None, "X-WB-Signature"),
        (None, ("X-WB-Timestamp", "2026-11-25T02:00:00Z"), "X-WB-Timestamp"),
        (None, ("X-WB-Signature", "not-hex"), "X-WB-Signature"),
    ],
)
async def test_missing_or_malformed_headers_are_401(
    base_url: str, services: Services, drop: str | None, replace: tuple[str, str] | None, field: str
) -> None:
    body = jsonl(FIRST_PUSH)
    headers = headers_for(key_of(services), body, int(services.clock.now().timestamp()))
    if drop:
        del headers[drop]
    if replace:
        headers[replace[0]] = replace[1]
    assert_refused(await post(base_url, body, headers), 401, "not_logged_in", field)
    assert await stored(services) == (0, 0, 0)


async def test_no_headers_at_all_is_401(base_url: str, services: Services) -> None:
    assert_refused(await post(base_url, jsonl(FIRST_PUSH), {}), 401, "not_logged_in", "X-WB-Timestamp")
    assert await stored(services) == (0, 0, 0)


async def test_a_request_whose_import_failed_may_be_sent_again(
    base_url: str, services: Services, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = jsonl([institution(), archive(1)])
    headers = headers_for(key_of(services), body, int(clock.now().timestamp()))

    async def database_down(*args: Any, **kw: Any) -> Any:
        raise ConnectionRefusedError("the database is down")

    with monkeypatch.context() as patched:
        patched.setattr(services.ingest, "import_objects", database_down)
        assert (await post(base_url, body, headers)).status_code == 500
    assert await stored(services) == (0, 0, 0)
    again = await post(base_url, body, headers)  # the upstream retries the very same request
    assert statuses(again) == {1: "inserted", 2: "inserted"}


async def test_a_replayed_request_is_409_and_not_imported_again(
    base_url: str, services: Services, clock: FixedClock
) -> None:
    # The first push's record waits for its archive; had the replay been imported, it would now land.
    body = jsonl([institution(), record(1)])
    headers = headers_for(key_of(services), body, int(clock.now().timestamp()))
    first = await post(base_url, body, headers)
    assert statuses(first) == {1: "inserted", 2: "rejected"}
    clock.advance(seconds=10)
    assert (await push(base_url, services, jsonl([archive(1)]))).status_code == 200
    clock.advance(seconds=60)

    replay = await post(base_url, body, headers)
    assert_refused(replay, 409, "conflict")
    assert "重新签名" in replay.json()["message"]
    assert await stored(services) == (1, 1, 0)


async def test_without_redis_nothing_is_accepted(
    tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock
) -> None:
    # Replays could not be told apart: 503 rather than an unprotected import.
    async with app_with(tmp_path, db_url, redis_url, clock, redis={"url": "redis://127.0.0.1:1/5"}) as (base, svc):
        r = await push(base, svc, jsonl(FIRST_PUSH))
        assert_refused(r, 503, "unavailable")
        assert await stored(svc) == (0, 0, 0)


# --------------------------------------------------------------------------- its own body cap

SMALL_CAP = 4096


@pytest.fixture
async def small(tmp_path: Path, db_url: str, redis_url: str, clock: FixedClock) -> AsyncIterator[tuple[str, Services]]:
    async with app_with(
        tmp_path, db_url, redis_url, clock, ingest={"max_request_bytes": SMALL_CAP, "max_line_bytes": SMALL_CAP}
    ) as app:
        yield app


def over_cap_body() -> bytes:
    body = jsonl([institution(), archive(1), *(record(n) for n in range(1, 40))])
    assert len(body) > SMALL_CAP
    return body


def request_head(services: Services, body: bytes, framing: bytes) -> bytes:
    headers = headers_for(key_of(services), body, int(services.clock.now().timestamp()))
    lines = [b"POST /api/v1/ingest HTTP/1.1", b"Host: upstream", framing]
    lines += [f"{name}: {value}".encode() for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


async def test_a_declared_body_over_max_request_bytes_is_413_before_it_is_read(
    small: tuple[str, Services],
) -> None:
    base, svc = small
    body = over_cap_body()
    answer = await raw_request(base, request_head(svc, body, f"Content-Length: {len(body)}".encode()) + body)
    status, error = status_and_json(answer)
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert error["error"] == "too_large" and str(SMALL_CAP) in error["message"]
    # Ten megabytes announced, not one byte sent: the answer comes from the headers alone.
    answer = await raw_request(base, request_head(svc, body, b"Content-Length: 10000000"), timeout=3.0)
    assert status_and_json(answer)[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert await stored(svc) == (0, 0, 0)


async def test_a_chunked_body_over_max_request_bytes_is_413_and_nothing_is_imported(
    small: tuple[str, Services],
) -> None:
    base, svc = small
    body = over_cap_body()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 1000]), body[i : i + 1000]) for i in range(0, len(body), 1000)
    )
    answer = await raw_request(base, request_head(svc, body, b"Transfer-Encoding: chunked") + chunks + b"0\r\n\r\n")
    status, error = status_and_json(answer)
    assert status == b"HTTP/1.1 413 Request Entity Too Large"
    assert error["error"] == "too_large"
    # One chunk announced far past the cap is cut off by tornado before it is read: a bare 400.
    huge = b"%x\r\n" % (SMALL_CAP + 2 * 1024 * 1024)
    answer = await raw_request(base, request_head(svc, body, b"Transfer-Encoding: chunked") + huge, timeout=3.0)
    assert answer in (b"", b"HTTP/1.1 400 Bad Request\r\n\r\n")
    assert await stored(svc) == (0, 0, 0)


async def test_a_body_at_max_request_bytes_is_taken(small: tuple[str, Services]) -> None:
    base, svc = small
    body = jsonl([institution(), archive(1)])
    body += b"\n" * (SMALL_CAP - len(body))  # blank lines: skipped, but they count against the cap
    assert len(body) == SMALL_CAP
    r = await push(base, svc, body)
    assert r.status_code == 200 and r.json()["summary"]["inserted"] == 2
