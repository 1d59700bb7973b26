from __future__ import annotations

import base64
from pathlib import Path

import pytest

from wechat_backend.config import ConfigError, database_url, load_settings


def demo(tmp_path: Path, **extra: dict) -> dict:
    return {"server": {"mode": "demo", "data_dir": str(tmp_path)}, **extra}


def test_defaults_plus_demo_mode_need_no_file(tmp_path: Path) -> None:
    s = load_settings(environ={}, overrides=demo(tmp_path))
    assert s.server.port == 8000
    assert s.security.active_key in s.security.keys
    assert database_url(s).startswith("sqlite+aiosqlite:///")


def test_demo_secrets_are_generated_once_and_shared(tmp_path: Path) -> None:
    a = load_settings(environ={}, overrides=demo(tmp_path))
    b = load_settings(environ={}, overrides=demo(tmp_path))
    assert a.security == b.security and a.server.cookie_secret == b.server.cookie_secret
    secrets_file = tmp_path / "secrets.toml"
    assert secrets_file.stat().st_mode & 0o777 == 0o600


def test_file_then_environment_override(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[server]\nmode = "demo"\ndata_dir = "{tmp_path}"\nport = 9000\n[sandbox]\nenabled = false\n')
    s = load_settings(cfg, environ={"WB_SERVER_PORT": "9100", "WB_SANDBOX_ENABLED": "true"})
    assert s.server.port == 9100
    assert s.sandbox.enabled is True


def test_config_path_from_environment_variable(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\ndata_dir = "{tmp_path}"\nport = 8123\n')
    assert load_settings(environ={"WECHAT_BACKEND_CONFIG": str(cfg)}).server.port == 8123


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[nosuch]\na = 1\n", "config.nosuch"),
        ('[server]\nport = "abc"\n', "server.port"),
        ('[server]\nmode = "test"\n', "server.mode"),
        ("[sandbox]\nenabled = 3\n", "sandbox.enabled"),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_setting(tmp_path: Path, text: str, names: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, environ={})
    assert names in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_environment_variable_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WB_NOPE_X"):
        load_settings(environ={"WB_NOPE_X": "1"}, overrides=demo(tmp_path))


def test_keys_from_environment(tmp_path: Path) -> None:
    k = base64.b64encode(bytes(16)).decode()
    s = load_settings(
        environ={"WB_SECURITY_KEYS": f"k1={k},k2={k}", "WB_SECURITY_ACTIVE_KEY": "k2"}, overrides=demo(tmp_path)
    )
    assert set(s.security.keys) == {"k1", "k2"} and s.security.active_key == "k2"


def test_active_key_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="active_key"):
        load_settings(environ={"WB_SECURITY_ACTIVE_KEY": "k9"}, overrides=demo(tmp_path))


def test_malformed_toml_is_one_clear_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server\n")
    with pytest.raises(ConfigError, match="格式有误"):
        load_settings(cfg, environ={})


PROD_SECRETS = {
    "WB_SERVER_MODE": "production",
    "WB_SERVER_PUBLIC_BASE_URL": "https://jk.example.cn",
    "WB_SERVER_COOKIE_SECRET": "x" * 32,
    "WB_WECHAT_APP_ID": "wx1",
    "WB_WECHAT_APP_SECRET": "s",
    "WB_WECHAT_TOKEN": "t",
    "WB_WECHAT_ENCODING_AES_KEY": "a" * 43,
    "WB_SECURITY_ACTIVE_KEY": "k1",
    "WB_SECURITY_KEYS": "k1=AAAAAAAAAAAAAAAAAAAAAA==",
    "WB_SECURITY_BLIND_INDEX_KEY": "A" * 44,
    "WB_SECURITY_INGEST_HMAC_KEY": "A" * 44,
    "WB_SECURITY_AUDIT_HMAC_KEY": "A" * 44,
    "WB_SMS_PROVIDER": "tencent",
}


def test_production_with_every_secret_starts(tmp_path: Path) -> None:
    s = load_settings(environ={**PROD_SECRETS, "WB_SERVER_DATA_DIR": str(tmp_path)})
    assert s.server.mode == "production"
    assert not (tmp_path / "secrets.toml").exists()  # nothing generated in production


def b64_of(n: int) -> str:
    return base64.b64encode(bytes(range(n))).decode()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"WB_SECURITY_BLIND_INDEX_KEY": ""}, "blind_index_key"),
        ({"WB_SERVER_COOKIE_SECRET": ""}, "cookie_secret"),
        ({"WB_SMS_PROVIDER": "console"}, "provider"),
        ({"WB_SANDBOX_ENABLED": "true"}, "sandbox"),
        ({"WB_SERVER_PUBLIC_BASE_URL": "http://jk.example.cn"}, "public_base_url"),
        ({"WB_SERVER_DEBUG": "true"}, "[server] debug"),
        ({"WB_SERVER_COOKIE_SECRET": "x" * 31}, "[server] cookie_secret"),
        ({"WB_SECURITY_INGEST_HMAC_KEY": b64_of(31)}, "[security] ingest_hmac_key"),
        ({"WB_SECURITY_INGEST_HMAC_KEY": "not base64: " + "x" * 44}, "[security] ingest_hmac_key"),
        ({"WB_WECHAT_ENCODING_AES_KEY": "a" * 42}, "[wechat] encoding_aes_key"),
    ],
)
def test_production_refuses_to_start_naming_the_setting(tmp_path: Path, change: dict, named: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={**PROD_SECRETS, "WB_SERVER_DATA_DIR": str(tmp_path), **change})
    assert named in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.weixin.qq.com/",  # not https
        "https://api.weixin.qq.com.evil.cn/",  # a look-alike host
        "https://evil.cn/api.weixin.qq.com/",  # WeChat's host in the path
        "https://api.weixin.qq.com@evil.cn/",  # ... as user info
        "https://evil.cn\\@api.weixin.qq.com/",  # a browser's host is evil.cn
        "https://api.weixin.qq.com:8443/",  # another port
        "https://open.weixin.qq.com/",  # WeChat's, but not the API's host
        "https://api.weixin.qq.com/sandbox/",  # the sandbox's path
        "https://api.weixin.qq.com/sandbox",
        "https://jk.example.cn/sandbox/",  # the demo's setting: our own sandbox
        "https://[api.weixin.qq.com/",  # not even a URL
    ],
)
def test_production_refuses_an_api_base_url_that_is_not_wechat(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={**PROD_SECRETS, "WB_SERVER_DATA_DIR": str(tmp_path), "WB_WECHAT_API_BASE_URL": url})
    assert "[wechat] api_base_url" in str(exc.value) and "api.weixin.qq.com" in str(exc.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://open.weixin.qq.com/",
        "https://open.weixin.qq.com.evil.cn/",
        "https://evil.cn\\@open.weixin.qq.com/",
        "https://api.weixin.qq.com/",  # WeChat's, but not the authorize page's host
        "https://open.weixin.qq.com/sandbox/",
        "https://jk.example.cn/sandbox/",
    ],
)
def test_production_refuses_an_open_base_url_that_is_not_wechat(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={**PROD_SECRETS, "WB_SERVER_DATA_DIR": str(tmp_path), "WB_WECHAT_OPEN_BASE_URL": url})
    assert "[wechat] open_base_url" in str(exc.value) and "open.weixin.qq.com" in str(exc.value)


@pytest.mark.parametrize(
    "host",
    ["api.weixin.qq.com", "api2.weixin.qq.com", "sh.api.weixin.qq.com", "sz.api.weixin.qq.com", "hk.api.weixin.qq.com"],
)
def test_production_starts_with_wechat_s_api_host_or_a_backup_host(tmp_path: Path, host: str) -> None:
    urls = {"WB_WECHAT_API_BASE_URL": f"https://{host}/", "WB_WECHAT_OPEN_BASE_URL": "https://open.weixin.qq.com"}
    s = load_settings(environ={**PROD_SECRETS, "WB_SERVER_DATA_DIR": str(tmp_path), **urls})
    assert s.wechat.api_base_url == f"https://{host}/"


def test_production_compares_wechat_s_host_case_insensitively(tmp_path: Path) -> None:
    urls = {
        "WB_WECHAT_API_BASE_URL": "https://API.Weixin.QQ.com/",
        "WB_WECHAT_OPEN_BASE_URL": "HTTPS://OPEN.weixin.qq.com/",
    }
    assert load_settings(environ={**PROD_SECRETS, "WB_SERVER_DATA_DIR": str(tmp_path), **urls})


@pytest.mark.parametrize(
    "key",
    [
        "a" * 42,  # too short
        "a" * 44,  # too long
        "a" * 42 + "!",  # not base64
        b64_of(32)[:42] + "=",  # with one more "=": 31 bytes
    ],
)
def test_a_malformed_encoding_aes_key_is_refused_in_demo_mode_too(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={"WB_WECHAT_ENCODING_AES_KEY": key}, overrides=demo(tmp_path))
    assert "[wechat] encoding_aes_key" in str(exc.value) and "43" in str(exc.value)


def test_the_demo_s_generated_encoding_aes_key_and_wechat_s_format_load(tmp_path: Path) -> None:
    generated = load_settings(environ={}, overrides=demo(tmp_path)).wechat.encoding_aes_key
    assert len(generated) == 43
    given = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 letters and digits, as WeChat gives them
    s = load_settings(environ={"WB_WECHAT_ENCODING_AES_KEY": given}, overrides=demo(tmp_path))
    assert s.wechat.encoding_aes_key == given


def test_example_config_loads_and_documents_every_setting(tmp_path: Path) -> None:
    import dataclasses
    import tomllib

    from wechat_backend.config import Settings

    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    load_settings(example, environ={"WB_SERVER_DATA_DIR": str(tmp_path)})
    documented = tomllib.loads(example.read_text(encoding="utf-8"))
    for section in dataclasses.fields(Settings):
        cls = section.type if isinstance(section.type, type) else type(getattr(Settings(), section.name))
        assert section.name in documented, f"[{section.name}] missing from config.example.toml"
        for key in dataclasses.fields(cls):
            assert key.name in documented[section.name], f"[{section.name}] {key.name} is not documented"


def test_service_name_and_consult_phone_default_and_override(tmp_path: Path) -> None:
    s = load_settings(environ={}, overrides=demo(tmp_path))
    assert s.service.consult_phone == "" and s.service.name == "居民电子健康档案查询"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[server]\ndata_dir = "{tmp_path}"\n[service]\nconsult_phone = "0635-12320"\n', encoding="utf-8")
    assert load_settings(cfg, environ={}).service.consult_phone == "0635-12320"
    env = load_settings(environ={"WB_SERVICE_CONSULT_PHONE": "12345"}, overrides=demo(tmp_path))
    assert env.service.consult_phone == "12345"
