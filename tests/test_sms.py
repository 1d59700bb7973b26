"""SMS senders: the real Tencent and Alibaba SDKs against local stand-ins (``sms_fakes``), and the
console provider against the real sandbox's SMS inbox."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings
from local_server import serving
from sms_fakes import (
    ALIYUN_KEY_ID,
    ALIYUN_KEY_SECRET,
    SIGN_NAME,
    TEMPLATE_ID,
    TENCENT_APP_ID,
    TENCENT_SECRET_ID,
    TENCENT_SECRET_KEY,
    FakeSms,
    running_aliyun,
    running_tencent,
)
from test_sandbox_platform import running_sandbox
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from wechat_backend.config import ConfigError, Settings
from wechat_backend.sms import MESSAGES, OUTCOMES, BindCodeSms, SmsResult, SmsSender, console_inbox_url, make_sender

PHONE = "13912345678"
MASKED = "139****5678"
SMS = BindCodeSms(name_mask="刘**", code="482916", minutes=5)


def settings_for(tmp_path: Path, **sms: Any) -> Settings:
    return make_settings(tmp_path, "sqlite+aiosqlite:///:memory:", "redis://127.0.0.1:1/0", sms=sms)


def tencent_settings(tmp_path: Path, endpoint: str, **extra: Any) -> Settings:
    sms = {
        "provider": "tencent",
        "secret_id": TENCENT_SECRET_ID,
        "secret_key": TENCENT_SECRET_KEY,
        "sdk_app_id": TENCENT_APP_ID,
        "sign_name": SIGN_NAME,
        "template_id": TEMPLATE_ID,
        "endpoint": endpoint,
    }
    return settings_for(tmp_path, **{**sms, **extra})


def aliyun_settings(tmp_path: Path, endpoint: str, **extra: Any) -> Settings:
    sms = {
        "provider": "aliyun",
        "access_key_id": ALIYUN_KEY_ID,
        "access_key_secret": ALIYUN_KEY_SECRET,
        "sign_name": SIGN_NAME,
        "template_id": TEMPLATE_ID,
        "endpoint": endpoint,
    }
    return settings_for(tmp_path, **{**sms, **extra})


def closed_port_url() -> str:
    sockets = bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    for s in sockets:
        s.close()
    return f"http://127.0.0.1:{port}"


def assert_private(caplog: pytest.LogCaptureFixture, *results: SmsResult) -> None:
    """Neither the phone nor the code in any log record or result."""
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert PHONE not in text and SMS.code not in text, text
    for result in results:
        assert PHONE not in repr(result) and SMS.code not in repr(result)


@pytest.fixture
async def tencent() -> AsyncIterator[FakeSms]:
    async with running_tencent() as fake:
        yield fake


@pytest.fixture
async def aliyun() -> AsyncIterator[FakeSms]:
    async with running_aliyun() as fake:
        yield fake


@pytest.fixture
async def senders() -> AsyncIterator[Callable[[Settings], SmsSender]]:
    made: list[SmsSender] = []

    def make(settings: Settings) -> SmsSender:
        made.append(make_sender(settings))
        return made[-1]

    yield make
    for sender in made:
        await sender.close()


# --------------------------------------------------------------------------- the message and the result


def test_bind_code_text_names_the_masked_person_the_code_and_the_minutes() -> None:
    assert SMS.text() == "您正在绑定刘**的健康档案，验证码482916，5分钟内有效。请勿告诉他人。"


def test_every_failure_tells_the_resident_what_to_do_next() -> None:
    assert SmsResult.of("sent") == SmsResult("sent", "")
    assert SmsResult.of("sent").ok
    for outcome in OUTCOMES[1:]:
        result = SmsResult.of(outcome, "Some.Code")
        assert not result.ok and result.provider_code == "Some.Code"
        assert result.message == MESSAGES[outcome] and "请" in result.message
    assert SmsResult.of("quota").message == "短信发送失败，请稍后再试或联系签约机构"
    assert "联系签约机构更新手机号" in SmsResult.of("invalid_number").message
    with pytest.raises(ValueError):
        SmsResult("lost", "")


def test_a_provider_code_that_is_not_an_identifier_is_not_kept() -> None:
    assert SmsResult.of("rejected", f"bad number {PHONE}").provider_code == ""


# --------------------------------------------------------------------------- Tencent


async def test_tencent_sends_a_signed_send_sms_with_the_template_params(
    tencent: FakeSms, senders: Callable[[Settings], SmsSender], tmp_path: Path
) -> None:
    sender = senders(tencent_settings(tmp_path, tencent.url))
    assert sender.provider == "tencent"
    result = await sender.send(PHONE, SMS)
    assert result == SmsResult("sent", "", "Ok") and result.ok
    (got,) = tencent.received
    assert got["action"] == "SendSms" and got["version"] == "2021-01-11" and got["region"] == "ap-guangzhou"
    assert got["signature_ok"] and got["secret_id"] == TENCENT_SECRET_ID
    assert got["PhoneNumberSet"] == ["+86" + PHONE]
    assert got["SmsSdkAppId"] == TENCENT_APP_ID
    assert got["SignName"] == SIGN_NAME and got["TemplateId"] == TEMPLATE_ID
    assert got["TemplateParamSet"] == ["刘**", "482916", "5"]


async def test_tencent_http_error_status_is_an_error(
    tencent: FakeSms, senders: Callable[[Settings], SmsSender], tmp_path: Path
) -> None:
    tencent.http_status = 502
    result = await senders(tencent_settings(tmp_path, tencent.url)).send(PHONE, SMS)
    assert (result.outcome, result.provider_code) == ("error", "ServerNetworkError")


async def test_tencent_sends_concurrently_off_the_event_loop(
    tencent: FakeSms, senders: Callable[[Settings], SmsSender], tmp_path: Path
) -> None:
    tencent.delay = 0.3
    sender = senders(tencent_settings(tmp_path, tencent.url))
    started = time.monotonic()
    results = await asyncio.gather(*(sender.send(f"1391234560{i}", SMS) for i in range(4)))
    assert [r.outcome for r in results] == ["sent"] * 4
    # Four sends held 0.3 s each by the provider overlap; the loop kept serving meanwhile.
    assert time.monotonic() - started < 1.0
    assert sorted(p for got in tencent.received for p in got["PhoneNumberSet"]) == [
        f"+861391234560{i}" for i in range(4)
    ]


# --------------------------------------------------------------------------- Alibaba


async def test_aliyun_sends_a_signed_send_sms_with_the_template_params(
    aliyun: FakeSms, senders: Callable[[Settings], SmsSender], tmp_path: Path
) -> None:
    sender = senders(aliyun_settings(tmp_path, aliyun.url))
    assert sender.provider == "aliyun"
    result = await sender.send(PHONE, SMS)
    assert result == SmsResult("sent", "", "OK")
    (got,) = aliyun.received
    assert got["action"] == "SendSms" and got["version"] == "2017-05-25"
    assert got["signature_ok"] and got["access_key_id"] == ALIYUN_KEY_ID
    assert got["PhoneNumbers"] == PHONE
    assert got["SignName"] == SIGN_NAME and got["TemplateCode"] == TEMPLATE_ID
    assert json.loads(got["TemplateParam"]) == {"name": "刘**", "code": "482916", "minutes": "5"}


async def test_aliyun_sent_is_logged_with_the_phone_masked_only(
    aliyun: FakeSms, senders: Callable[[Settings], SmsSender], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # At DEBUG the HTTP library would log the request URL, whose query carries phone and code.
    caplog.set_level(logging.DEBUG)
    assert (await senders(aliyun_settings(tmp_path, aliyun.url)).send(PHONE, SMS)).ok
    assert_private(caplog)
    (line,) = [r for r in caplog.records if r.name == "wechat_backend.sms"]
    assert line.levelno == logging.INFO and MASKED in line.getMessage()


# Both SDKs: (settings builder, the fake provider, the provider code when nothing answers).
PROVIDERS = {
    "tencent": (tencent_settings, running_tencent, "ClientNetworkError"),
    "aliyun": (aliyun_settings, running_aliyun, "NoResponse"),
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_sdk_itself_gives_up_at_the_timeout_freeing_its_thread(
    provider: str, senders: Callable[[Settings], SmsSender], tmp_path: Path
) -> None:
    make, running, _ = PROVIDERS[provider]
    async with running() as fake:
        fake.delay = 5
        sender = senders(make(tmp_path, fake.url, timeout_seconds=0.5))
        started = time.monotonic()
        # Past the awaiting side's bound: the SDK's own read timeout must end the blocking call.
        result = await asyncio.to_thread(sender._send_blocking, PHONE, SMS)  # type: ignore[attr-defined]
        assert time.monotonic() - started < 1.5
    assert result.outcome == "timeout"


# --------------------------------------------------------------------------- console (demo)


async def test_console_puts_the_text_in_the_sandbox_inbox(
    tmp_path: Path, senders: Callable[[Settings], SmsSender], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_sandbox(tmp_path) as sandbox:
        sender = senders(sandbox.settings)  # [sms] provider defaults to console
        assert sender.provider == "console"
        result = await sender.send(PHONE, SMS)
        assert result == SmsResult("sent", "")
        assert_private(caplog, result)  # before the test itself asks the inbox about this phone
        (line,) = [r for r in caplog.records if r.name == "wechat_backend.sms"]
        assert line.levelno == logging.INFO and MASKED in line.getMessage()
        (inbox,) = await sandbox.get("/sandbox/api/sms", phone=PHONE)
    assert inbox["phone"] == PHONE and inbox["text"] == SMS.text()


async def test_console_endpoint_is_the_inbox_when_set(tmp_path: Path, senders: Callable[[Settings], SmsSender]) -> None:
    async with running_sandbox(tmp_path) as sandbox:
        settings = settings_for(tmp_path, endpoint=sandbox.base + "/sandbox")
        assert settings.wechat.api_base_url != sandbox.base + "/sandbox/"
        assert (await senders(settings).send(PHONE, SMS)).ok
        assert len(await sandbox.get("/sandbox/api/sms", phone=PHONE)) == 1
        # Not the inbox (no /sandbox prefix): the sandbox answers 404.
        missed = await senders(settings_for(tmp_path, endpoint=sandbox.base)).send(PHONE, SMS)
    assert (missed.outcome, missed.provider_code) == ("error", "http_404")


class _Recorder(RequestHandler):
    """Answers every request 201 and keeps (method, path, body): a stand-in that counts."""

    def initialize(self, seen: list[tuple[str, str, Any]]) -> None:
        self.seen = seen

    def check_xsrf_cookie(self) -> None:
        return

    def get(self) -> None:
        self.seen.append(("GET", self.request.path, None))
        self.set_status(201)

    def post(self) -> None:
        self.seen.append(("POST", self.request.path, json.loads(self.request.body or b"null")))
        self.set_status(201)


@asynccontextmanager
async def recording() -> AsyncIterator[tuple[str, list[tuple[str, str, Any]]]]:
    """``(base url, requests seen)`` of a local server that accepts anything."""
    seen: list[tuple[str, str, Any]] = []
    async with serving(Application([(r"/.*", _Recorder, {"seen": seen})], log_function=lambda h: None)) as base:
        yield base, seen


def console_settings(tmp_path: Path, *, wechat_api: str, public: str, sandbox: bool, endpoint: str = "") -> Settings:
    """Demo mode, the console provider; ``wechat_api`` stands in for WeChat's real host."""
    return make_settings(
        tmp_path,
        "sqlite+aiosqlite:///:memory:",
        "redis://127.0.0.1:1/0",
        server={"public_base_url": public},
        wechat={"api_base_url": wechat_api + "/", "open_base_url": wechat_api + "/"},
        sandbox={"enabled": sandbox},
        sms={"provider": "console", "endpoint": endpoint},
    )


async def test_console_with_the_sandbox_off_and_no_endpoint_posts_nothing_anywhere(
    tmp_path: Path, senders: Callable[[Settings], SmsSender], caplog: pytest.LogCaptureFixture
) -> None:
    # `serve` in demo mode with the sandbox off: api_base_url is WeChat's real host (here a stand-in
    # that counts), and neither it nor our own address may receive the phone and the code.
    caplog.set_level(logging.DEBUG)
    async with recording() as (wechat, to_wechat), recording() as (ours, to_us):
        sender = senders(console_settings(tmp_path, wechat_api=wechat, public=ours, sandbox=False))
        result = await sender.send(PHONE, SMS)
    assert to_wechat == [] and to_us == []
    assert result == SmsResult("error", MESSAGES["error"], "no_inbox")
    assert_private(caplog, result)
    (line,) = [r for r in caplog.records if r.name == "wechat_backend.sms"]
    assert line.levelno == logging.WARNING and MASKED in line.getMessage() and "no_inbox" in line.getMessage()


async def test_console_posts_to_the_endpoint_when_set_and_nowhere_else(
    tmp_path: Path, senders: Callable[[Settings], SmsSender]
) -> None:
    async with recording() as (wechat, to_wechat), recording() as (inbox, to_inbox):
        settings = console_settings(tmp_path, wechat_api=wechat, public=wechat, sandbox=False, endpoint=inbox + "/")
        assert (await senders(settings).send(PHONE, SMS)).ok
    assert to_inbox == [("POST", "/api/sms", {"phone": PHONE, "text": SMS.text()})]
    assert to_wechat == []


async def test_console_posts_to_this_process_s_own_sandbox_in_demo_mode(
    tmp_path: Path, senders: Callable[[Settings], SmsSender]
) -> None:
    # The sandbox is mounted at public_base_url + "/sandbox/", whatever api_base_url says.
    async with recording() as (wechat, to_wechat), recording() as (ours, to_us):
        settings = console_settings(tmp_path, wechat_api=wechat, public=ours + "/", sandbox=True)
        assert (await senders(settings).send(PHONE, SMS)).ok
    assert to_us == [("POST", "/sandbox/api/sms", {"phone": PHONE, "text": SMS.text()})]
    assert to_wechat == []


def test_console_inbox_url_is_the_endpoint_or_the_own_sandbox_in_demo_mode_only(tmp_path: Path) -> None:
    def settings(*, sandbox: bool, endpoint: str = "") -> Settings:
        return console_settings(
            tmp_path,
            wechat_api="https://api.weixin.qq.com",
            public="https://jk.example.cn",
            sandbox=sandbox,
            endpoint=endpoint,
        )

    assert console_inbox_url(settings(sandbox=False)) is None
    assert console_inbox_url(settings(sandbox=True)) == "https://jk.example.cn/sandbox/api/sms"
    assert console_inbox_url(settings(sandbox=True, endpoint="http://127.0.0.1:9/x/")) == "http://127.0.0.1:9/x/api/sms"
    assert console_inbox_url(settings(sandbox=False, endpoint="http://127.0.0.1:9")) == "http://127.0.0.1:9/api/sms"
    # A production server never mounts the sandbox (and its configuration refuses both anyway).
    demo = settings(sandbox=True)
    production = replace(demo, server=replace(demo.server, mode="production"))
    assert production.sandbox.enabled and console_inbox_url(production) is None


async def test_console_inbox_that_does_not_listen_is_an_error_not_an_exception(
    tmp_path: Path, senders: Callable[[Settings], SmsSender], caplog: pytest.LogCaptureFixture
) -> None:
    result = await senders(settings_for(tmp_path, endpoint=closed_port_url())).send(PHONE, SMS)
    assert result.outcome == "error" and result.message == MESSAGES["error"]
    assert_private(caplog, result)


async def test_console_inbox_that_never_answers_is_a_timeout(
    tmp_path: Path, senders: Callable[[Settings], SmsSender]
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)  # reads the request, never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sender = senders(settings_for(tmp_path, endpoint=f"http://127.0.0.1:{port}", timeout_seconds=0.5))
        started = time.monotonic()
        result = await sender.send(PHONE, SMS)
        assert time.monotonic() - started < 1.5
    finally:
        server.close()
    assert result.outcome == "timeout" and result.message == MESSAGES["timeout"]


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("provider", "missing"),
    [("tencent", "secret_id"), ("tencent", "sdk_app_id"), ("aliyun", "access_key_secret"), ("aliyun", "template_id")],
)
def test_a_cloud_provider_without_its_credentials_stops_start_up(tmp_path: Path, provider: str, missing: str) -> None:
    make = tencent_settings if provider == "tencent" else aliyun_settings
    settings = make(tmp_path, "", **{missing: ""})
    with pytest.raises(ConfigError, match=missing):
        make_sender(settings)


async def test_cloud_providers_use_the_real_hosts_without_an_endpoint(tmp_path: Path) -> None:
    tencent = make_sender(tencent_settings(tmp_path, ""))
    aliyun = make_sender(aliyun_settings(tmp_path, ""))
    try:
        assert tencent._client._get_endpoint() == "sms.tencentcloudapi.com"  # type: ignore[attr-defined]
        assert tencent._client.profile.httpProfile.scheme == "https"  # type: ignore[attr-defined]
        assert aliyun._client._endpoint == "dysmsapi.aliyuncs.com"  # type: ignore[attr-defined]
    finally:
        await tencent.close()
        await aliyun.close()


@pytest.mark.parametrize(
    ("provider", "wrong_secret", "provider_code"),
    [
        ("tencent", {"secret_key": "not-the-secret"}, "AuthFailure.SignatureFailure"),
        ("aliyun", {"access_key_secret": "not-the-secret"}, "SignatureDoesNotMatch"),
    ],
)
async def test_a_wrong_secret_is_rejected_by_the_signature_check(
    provider: str,
    wrong_secret: dict[str, str],
    provider_code: str,
    senders: Callable[[Settings], SmsSender],
    tmp_path: Path,
) -> None:
    make, running, _ = PROVIDERS[provider]
    async with running() as fake:
        result = await senders(make(tmp_path, fake.url, **wrong_secret)).send(PHONE, SMS)
        assert not fake.received[0]["signature_ok"]
    assert (result.outcome, result.provider_code) == ("rejected", provider_code)


# (provider, the code its fake answers, with this HTTP status, the outcome). Tencent's "api:" codes
# come back as the API's refusal of the whole request (Response.Error); Alibaba's codes with an
# HTTP error status arrive as SDK exceptions.
PROVIDER_CODES = [
    ("tencent", "LimitExceeded.PhoneNumberThirtySecondLimit", 200, "rate_limited"),
    ("tencent", "LimitExceeded.PhoneNumberDailyLimit", 200, "rate_limited"),
    ("tencent", "InvalidParameterValue.IncorrectPhoneNumber", 200, "invalid_number"),
    ("tencent", "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber", 200, "invalid_number"),
    ("tencent", "FailedOperation.InsufficientBalanceInSmsPackage", 200, "quota"),
    ("tencent", "FailedOperation.SignatureIncorrectOrUnapproved", 200, "rejected"),
    ("tencent", "api:InvalidParameterValue.IncorrectPhoneNumber", 200, "invalid_number"),
    ("tencent", "api:FailedOperation.InsufficientBalanceInSmsPackage", 200, "quota"),
    ("tencent", "api:LimitExceeded.DeliveryFrequencyLimit", 200, "rate_limited"),
    ("tencent", "api:AuthFailure.SecretIdNotFound", 200, "rejected"),
    ("tencent", "api:InternalError.Timeout", 200, "error"),
    ("aliyun", "isv.BUSINESS_LIMIT_CONTROL", 200, "rate_limited"),
    ("aliyun", "isv.DAY_LIMIT_CONTROL", 200, "rate_limited"),
    ("aliyun", "isv.MOBILE_NUMBER_ILLEGAL", 200, "invalid_number"),
    ("aliyun", "isv.AMOUNT_NOT_ENOUGH", 200, "quota"),
    ("aliyun", "isv.OUT_OF_SERVICE", 200, "quota"),
    ("aliyun", "isv.SMS_TEMPLATE_ILLEGAL", 200, "rejected"),
    ("aliyun", "isp.SYSTEM_ERROR", 200, "error"),
    ("aliyun", "isv.MOBILE_NUMBER_ILLEGAL", 400, "invalid_number"),
    ("aliyun", "InvalidAccessKeyId.NotFound", 404, "rejected"),
    ("aliyun", "ServiceUnavailable", 503, "error"),
]


@pytest.mark.parametrize(("provider", "code", "status", "outcome"), PROVIDER_CODES)
async def test_provider_codes_become_outcomes_with_a_chinese_message(
    provider: str,
    code: str,
    status: int,
    outcome: str,
    senders: Callable[[Settings], SmsSender],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make, running, _ = PROVIDERS[provider]
    caplog.set_level(logging.DEBUG)
    async with running() as fake:
        fake.code, fake.http_status = code, status
        result = await senders(make(tmp_path, fake.url)).send(PHONE, SMS)
    assert result == SmsResult(outcome, MESSAGES[outcome], code.removeprefix("api:"))
    assert not result.ok and result.message
    assert_private(caplog, result)
    (line,) = [r for r in caplog.records if r.name == "wechat_backend.sms"]
    assert line.levelno == logging.WARNING and MASKED in line.getMessage() and outcome in line.getMessage()


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_provider_that_answers_too_late_is_a_timeout(
    provider: str, senders: Callable[[Settings], SmsSender], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make, running, _ = PROVIDERS[provider]
    caplog.set_level(logging.DEBUG)
    async with running() as fake:
        fake.delay = 5
        sender = senders(make(tmp_path, fake.url, timeout_seconds=0.5))
        started = time.monotonic()
        result = await sender.send(PHONE, SMS)
        assert time.monotonic() - started < 1.5
    assert result.outcome == "timeout" and result.message == MESSAGES["timeout"]
    assert_private(caplog, result)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_unreachable_provider_is_an_error_not_an_exception(
    provider: str, senders: Callable[[Settings], SmsSender], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make, _, no_answer = PROVIDERS[provider]
    caplog.set_level(logging.DEBUG)
    result = await senders(make(tmp_path, closed_port_url())).send(PHONE, SMS)
    assert result == SmsResult("error", MESSAGES["error"], no_answer)
    assert_private(caplog, result)
