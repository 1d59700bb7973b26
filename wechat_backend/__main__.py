"""``wechat-backend <command>``: the one command-line entry point.

Exit codes: 0 done; 1 done, but some input was rejected (import); 2 could not run. Messages are
Chinese, one line each, and never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .config import ConfigError, Settings, load_settings

log = logging.getLogger("wechat_backend")


class CommandError(Exception):
    """The command could not run; the message tells the operator what to do."""


def _progress(**kw: Any) -> tqdm:
    return tqdm(file=sys.stderr, dynamic_ncols=True, mininterval=0.5, **kw)


# --------------------------------------------------------------------------- commands


async def cmd_db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from .db import current_revision, upgrade
    from .records.dates import hide_restricted_dates
    from .services import build_services

    services = await build_services(settings, with_redis=False)
    try:
        await upgrade(services.engine)
        # The data part of 0005 needs the keys: run until it has finished once.
        with _progress(desc="核对不向居民公开的记录的日期", unit="条", leave=False) as bar:
            done = await hide_restricted_dates(services.sessions, services.keyring, progress=bar.update)
        if done is not None:
            moved, unreadable = done
            if moved:
                print(f"已把 {moved} 条不向居民公开的记录的日期改为仅密文保存")
            if unreadable:
                print(
                    f"！有 {unreadable} 条记录无法解密（密钥已不在 [security] keys 中），其日期未处理；"
                    "补回密钥后请再运行 wechat-backend db upgrade",
                    file=sys.stderr,
                )
        # The data part of 0006 (stats.backfill): the name+birth index, the key-group flag, the counts.
        from .stats.backfill import backfill, pending

        left = await pending(services.sessions)
        if left is not None:
            with _progress(total=left, desc="补建档案的姓名+出生日期索引和重点人群标记", unit="份", leave=False) as bar:
                filled, unreadable, counted = await backfill(
                    services.sessions, services.keyring, services.clock.today(), progress=bar.update
                ) or (0, 0, 0)
            if filled:
                print(f"已为 {filled} 份档案补建姓名+出生日期索引和重点人群标记")
            if counted:
                print(f"已统计 {counted} 个机构的建档、开放和绑定数")
            if unreadable:
                print(
                    f"！有 {unreadable} 份档案无法解密（密钥已不在 [security] keys 中），未补建；"
                    "补回密钥后请再运行 wechat-backend db upgrade",
                    file=sys.stderr,
                )
        print(f"数据库已是最新结构（版本 {await current_revision(services.engine)}）")
    finally:
        await services.close()
    return 0


async def cmd_seed(settings: Settings, args: argparse.Namespace) -> int:
    from .seed import write_jsonl

    out = Path(args.out)
    with _progress(total=args.archives, desc="生成档案", unit="份") as bar:
        counts = await asyncio.to_thread(write_jsonl, out, args.archives, args.seed, progress=bar.update)
    summary = "，".join(f"{k} {v} 行" for k, v in counts.items())
    print(f"已写入 {out}：{summary}")
    return 0


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from .services import build_services

    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"找不到导入文件 {path}")
    services = await build_services(settings, with_redis=False)
    try:
        await _require_schema(services)
        with _progress(total=path.stat().st_size, desc="导入", unit="B", unit_scale=True) as bar:

            def on_error(no: int, reason: str) -> None:
                bar.write(f"第 {no} 行：{reason}", file=sys.stderr)

            report = await services.ingest.import_file(path, on_error=on_error, progress=bar.update)
    finally:
        await services.close()
    rate = report.lines / report.seconds if report.seconds else 0.0
    print(
        f"导入完成：新增 {report.inserted}，更新 {report.updated}，未变 {report.unchanged}，拒收 {report.rejected}"
        f"（共 {report.lines} 行，用时 {report.seconds:.1f} 秒，每秒 {rate:,.0f} 行）"
    )
    if report.rejected:
        print("被拒收的行已在上方逐行列出原因；修正后可重新导入同一文件，已导入的行不会重复。")
    # Payload keys the field dictionary does not know: imported, never shown to residents.
    unknown = sorted(
        ((n, f"{kind}.{path}") for kind, paths in report.unknown_keys.items() for path, n in paths.items()),
        key=lambda x: (-x[0], x[1]),
    )
    if unknown:
        listed = "，".join(f"{name}（{n} 条）" for n, name in unknown[:10])
        more = f"，另有 {len(unknown) - 10} 个" if len(unknown) > 10 else ""
        print(f"有 {len(unknown)} 个字段不在字段字典中，居民看不到：{listed}{more}")
    return report.exit_code


async def cmd_county(settings: Settings, args: argparse.Namespace) -> int:
    from .errors import AppError
    from .services import build_services

    services = await build_services(settings, with_redis=False)
    try:
        await _require_schema(services)
        if args.county_command == "set":
            if args.opening is None and args.phase is None:
                raise CommandError("请至少指定 --opening on|off 或 --phase key_populations|all")
            opening = None if args.opening is None else args.opening == "on"
            try:
                await services.counties.set(args.code, opening=opening, phase=args.phase)
            except AppError as exc:
                raise CommandError(exc.message) from None
        views = await services.counties.list()
    finally:
        await services.close()
    if args.county_command == "set":
        views = [v for v in views if v.code == args.code]
    from .cli_table import table

    phase_name = {"key_populations": "重点人群", "all": "全部居民"}
    if views:
        rows = [
            (
                v.code,
                v.name,
                "是" if v.opening else "否",
                phase_name.get(v.phase, v.phase),
                f"{v.institutions:,}",
                f"{v.archives:,}",
            )
            for v in views
        ]
        print(table(("代码", "名称", "开放", "阶段", "机构数", "档案数"), rows, right=(4, 5)))
    else:
        print("还没有县（市、区）：请先导入机构（wechat-backend import 文件.jsonl）")
    return 0


async def cmd_staff(settings: Settings, args: argparse.Namespace) -> int:
    from .staff.command import run

    return await run(settings, args)


async def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    from .stats.command import run

    return await run(settings, args)


async def cmd_qrcodes(settings: Settings, args: argparse.Namespace) -> int:
    from .posters.command import run

    return await run(settings, args)


async def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    if args.keys_command == "new":
        import base64
        import secrets

        print(f"{args.key_id}={base64.b64encode(secrets.token_bytes(16)).decode()}")
        print(
            "把这一项加入 [security] keys（或 WB_SECURITY_KEYS），将 active_key 设为该编号，"
            "保留旧密钥，然后运行 wechat-backend keys rotate。",
            file=sys.stderr,
        )
        return 0
    from .keys import RotationError
    from .services import build_services

    services = await build_services(settings, with_redis=False)
    try:
        await _require_schema(services)
        pending = await services.key_rotation.pending()
        total = sum(pending.values())
        if not total:
            print(f"所有数据均已使用当前密钥 {settings.security.active_key} 加密，无需轮换。")
            return 0
        with _progress(total=total, desc="重新加密", unit="行") as bar:
            try:
                done = await services.key_rotation.run(progress=bar.update)
            except RotationError as exc:
                raise CommandError(str(exc)) from None
    finally:
        await services.close()
    print("密钥轮换完成：" + "，".join(f"{k} {v} 行" for k, v in done.items()))
    print("审计日志中加密保存的拒绝原因仍用旧密钥：在审计日志的保存期限（至少 6 个月）内请保留旧密钥。")
    return 0


async def cmd_audit(settings: Settings, args: argparse.Namespace, services: Any = None) -> int:
    """``audit seal``: chain the rows not sealed yet. ``audit verify``: check the chain, the head
    row and the head file, sealing nothing. Exit 0 intact (or sealed), 1 broken, 2 could not run.
    ``services``: those of a command already running (``worker --once``), left open."""
    from sqlalchemy.exc import SQLAlchemyError

    from .audit_chain import ChainBroken, ChainError, Problem
    from .services import build_services

    def say(p: Problem) -> str:
        witnesses = {"file": f"链头文件（{chain.head_file}）", "head_row": "链头记录（audit_chain 表）"}
        witness = witnesses.get(p.witness or "", "")
        if p.code == "edited":
            return f"seq={p.seq}（id={p.row_id}）：内容与其 mac 不符，该行被修改过"
        if p.code == "deleted" and p.witness:
            return f"{witness}记录的 seq={p.seq} 在表中不存在：该行被删除"
        if p.code == "deleted":
            after = f"，其后一行为 seq={(p.until or 0) + 1}（id={p.row_id}）" if p.row_id is not None else ""
            gap = f"seq={p.seq} 这一行" if p.seq == p.until else f"seq={p.seq}–{p.until} 这些行"
            return f"{gap}不见了：被删除{after}"
        if p.code == "newest_deleted":
            return (
                f"{witness}记录到 seq={p.until}，表中只到 seq={(p.seq or 1) - 1}：最新的行被删除"
                "（若数据库确曾从备份恢复，核实后移走链头文件即可继续封存）"
            )
        if p.code == "head_mismatch":
            return f"{witness}记录的 seq={p.seq} 的 mac 与表中该行不符：该行或链头被改动"
        if p.code == "head_missing":
            return "链头记录（audit_chain 表中 id=1 的行）不见了：被删除"
        if p.code == "head_file_unreadable":
            return f"链头文件 {chain.head_file} 无法读取或格式不对：被改动"
        if p.code == "checkpoint_forged":
            return f"检查点 seq={p.seq} 的签名无效：检查点被伪造或改动"
        return f"检查点 seq={p.seq} 记录的 mac 与表中该行不符：该行或检查点被改动"

    own = services is None
    if own:
        services = await build_services(settings, with_redis=False)
    chain = services.audit_chain
    try:
        await _require_schema(services)
        try:
            if args.audit_command == "seal":
                print(f"审计日志：已封存 {await chain.seal_pending()} 行")
                return 0
            result = await chain.verify()
        except ChainBroken as exc:
            print(f"审计日志未封存：{say(exc.problem)}。请运行 wechat-backend audit verify")
            return 1
        except ChainError:
            raise CommandError("未配置 [security] audit_hmac_key，无法封存或检查审计日志") from None
        except SQLAlchemyError as exc:
            raise CommandError(
                f"无法读取审计日志（{type(exc).__name__}），请确认已运行 wechat-backend db upgrade"
            ) from None
    finally:
        if own:
            await services.close()
    start = f"（自检查点 seq={result.start_seq} 起）" if result.start_seq else ""
    pending = f"；另有 {result.pending} 行尚未封存，未在检查之列" if result.pending else ""
    if result.ok:
        print(f"审计日志完整：已检查 {result.checked} 行{start}，链头 seq={result.last_seq}{pending}。")
    else:
        print(f"审计日志已被破坏：已检查 {result.checked} 行{start}，发现 {result.bad} 处问题：")
        for p in result.problems[:10]:
            print(f"  {say(p)}")
        if result.bad > 10:
            print(f"  ……其余 {result.bad - 10} 处从略")
    if result.head_file == "missing":
        print(f"! 未找到链头文件 {chain.head_file}：无法确认最新的行没有被删除（该文件由本机的封存进程写入）")
    return 0 if result.ok else 1


async def cmd_notify(settings: Settings, args: argparse.Namespace) -> int:
    """``notify scan [--date D]``, ``notify retry --dead``, ``notify stats``."""
    import datetime as dt

    from .notify.stats import push_counts
    from .services import build_services

    services = await build_services(settings)
    try:
        await _require_schema(services)
        if args.notify_command == "scan":
            try:
                day = dt.date.fromisoformat(args.date) if args.date else None
            except ValueError:
                raise CommandError(f"日期 {args.date!r} 应写成 YYYY-MM-DD") from None
            with _progress(desc="到期扫描", unit="项") as bar:

                def advance(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                report = await services.due_scan.scan(day, progress=advance)
            lead = settings.notify.lead_days
            print(
                f"到期扫描（{report.day}，之后 {lead} 天内到期）：{report.items} 项，新排入 {report.queued} 条提醒"
                f"（已排入过的不会重复），用时 {report.seconds:.1f} 秒"
            )
        elif args.notify_command == "retry":
            if not args.dead:
                raise CommandError("请写明要重发哪些：notify retry --dead")
            n = await services.outbox.retry_dead(args.kind or None)
            print(f"已把 {n} 条放弃发送的推送重新排入队列，推送进程会尽快发送")
        else:
            async with services.sessions() as s:
                rows = await push_counts(s, county=args.county)
            _print_push_counts(rows)
    finally:
        await services.close()
    return 0


def _print_push_counts(rows: list[Any]) -> None:
    from .notify.kinds import WORDS

    if not rows:
        print("还没有推送记录")
        return
    print("类型\t县（市、区）\t机构\t待发送\t已发送\t已跳过\t已放弃")
    for r in rows:
        print(
            f"{WORDS.get(r.kind, r.kind)}\t{r.county_code or '-'}\t{r.institution_code or '-'}\t"
            f"{r.pending}\t{r.sent}\t{r.skipped}\t{r.dead}"
        )


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from .app import make_app
    from .services import build_services

    services = await build_services(settings)
    try:
        await _require_schema(services)
        await _run_http(services, make_app)
    finally:
        await services.close()
    return 0


async def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Sends what the outbox holds: pushes whose first send failed or never happened. Also seals
    the audit log (audit_chain.py) every few seconds, and runs the daily jobs (housekeeping.py)."""
    from . import housekeeping
    from .services import build_services

    services = await build_services(settings)
    try:
        await _require_schema(services)
        if args.once:
            scanned = await services.due_scan.run_due_today()
            if scanned is not None:
                print(f"到期扫描（{scanned.day}）：{scanned.items} 项到期，新排入 {scanned.queued} 条提醒")
            done = await services.outbox.run_once()
            await housekeeping.run_daily(services)
            print(
                f"推送：已发送 {done.sent} 条，稍后重试 {done.retry} 条，跳过 {done.skipped} 条，已放弃 {done.dead} 条"
            )
            return await cmd_audit(settings, argparse.Namespace(audit_command="seal"), services)
        stop = _stop_on_signals()
        log.info(
            "worker started: sending the outbox, the daily due scan at %s, sealing the audit log",
            settings.notify.scan_at,
        )
        await asyncio.gather(
            services.outbox.run(stop),
            services.due_scan.run(stop),
            services.audit_chain.run(stop),
            housekeeping.run(services, stop),
        )
        log.info("worker stopped")
    finally:
        await services.close()
    return 0


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from . import housekeeping
    from .demo import ensure_demo_staff, prepare_demo

    if not settings.is_demo:
        raise CommandError('demo 命令只能在演示模式下运行（[server] mode = "demo"）')
    from .app import make_app
    from .services import build_services

    services = await build_services(settings)
    try:
        residents = await prepare_demo(services, archives=args.archives, seed=args.seed, progress=_progress)
        print()
        print(f"演示服务：{settings.server.public_base_url}/healthz")
        print("可用于绑定的演示居民（均为合成数据）：")
        for r in residents:
            print(f"  {r['name']}  身份证号 {r['id_number']}  手机 {r['phone']}  {r['county_name']}")
        print(f"微信沙箱（模拟手机）：{settings.server.public_base_url}/sandbox/")
        staff = await ensure_demo_staff(services)
        if staff:
            print("工作台演示账号（在模拟手机中点“工作台”，输入手机号，验证码见沙箱短信收件箱）：")
            for label, name, phone in staff:
                print(f"  {label}  {name}  手机 {phone}")
        print("按 Ctrl+C 停止。")
        stop_worker = asyncio.Event()
        # The demo's worker, in-process: the outbox, the daily due scan, the audit sealer.
        tasks = [
            asyncio.create_task(services.outbox.run(stop_worker)),
            asyncio.create_task(services.due_scan.run(stop_worker)),
            asyncio.create_task(services.audit_chain.run(stop_worker)),
            asyncio.create_task(housekeeping.run(services, stop_worker)),
        ]
        try:
            await _run_http(services, make_app, on_ready=lambda: _push_demo_menu(services))
        finally:
            stop_worker.set()
            await asyncio.gather(*tasks)
    finally:
        await services.close()
    return 0


async def cmd_menu(settings: Settings, args: argparse.Namespace) -> int:
    from .services import build_services
    from .wechat.api import WeChatError
    from .wechat.menu import push_menu

    services = await build_services(settings)
    try:
        try:
            pushed = await push_menu(settings, services.wechat)
        except WeChatError as exc:
            raise CommandError(f"创建菜单失败：{_explain(exc)}") from None
    finally:
        await services.close()
    names = "、".join(b["name"] for b in pushed.buttons)
    print(f"已创建菜单：{names}；工作人员（标签 {settings.menu.staff_tag}）另有“工作台”菜单。")
    return 0


async def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    """Config was validated by loading it; now the database, Redis and the WeChat credentials."""
    from .db import current_revision
    from .health import failing_parts
    from .services import build_services
    from .wechat.api import WeChatError

    print(f"✓ 配置：{settings.server.mode} 模式，公网地址 {settings.server.public_base_url}")
    services = await build_services(settings)
    problems = warnings = 0
    try:
        failing = await failing_parts(services.engine, services.redis)
        for part, name, hint in (
            ("database", "数据库", "请检查 [database] url 及数据库是否启动"),
            ("redis", "Redis", "请检查 [redis] url 及 Redis 是否启动"),
        ):
            print(f"✗ {name}：无法连接，{hint}" if part in failing else f"✓ {name}：可连接")
            problems += part in failing
        if "redis" not in failing and services.redis is not None:
            for line in await _redis_notes(settings, services.redis.client):
                print(line)
                warnings += line.startswith("!")
        if "database" not in failing and await current_revision(services.engine) is None:
            print("✗ 数据库结构：尚未初始化，请运行 wechat-backend db upgrade")
            problems += 1
        for line in _template_notes(settings):
            print(line)
            warnings += line.startswith("!")
        if services.tokens is not None:
            try:
                await services.tokens.get()
                print("✓ 微信接口：AppID/AppSecret 有效，已取得接口调用凭据")
            except WeChatError as exc:
                print(f"✗ 微信接口：{_explain(exc)}")
                problems += 1
    finally:
        await services.close()
    if problems:
        print(f"发现 {problems} 个问题，请按上面的提示处理。")
    else:
        print(f"检查通过，另有 {warnings} 条提醒（以 ! 开头），请留意。" if warnings else "检查通过。")
    return 0 if not problems else 1  # a warning (!) is not a failure


def _template_notes(settings: Settings) -> list[str]:
    """Which pushes are configured: a kind without a template id is never sent."""
    from .notify.kinds import BINDING_ADDED, KINDS, WORDS

    missing = [WORDS[k] for k in KINDS if k != BINDING_ADDED and not settings.templates.spec(k).template_id]
    if not missing:
        return ["✓ 模板消息：各类推送都已配置模板"]
    return [
        f"! 模板消息：未配置 {'、'.join(missing)} 的模板（[templates.*] template_id），这些推送不会发送；"
        "模板消息需要已认证的服务号"
    ]


async def _redis_notes(settings: Settings, client: Any) -> list[str]:
    """Lines about how Redis is set up and what the callback recorded in it: ``!`` lines are
    warnings (not failures), the rest are for information."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from redis.exceptions import RedisError

    from .wechat.callback import PLAINTEXT_REFUSED_TTL, plaintext_refused_key

    async def ask(call: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """One Redis call, bounded; None when Redis refuses it (CONFIG disabled, no permission) or fails."""
        try:
            async with asyncio.timeout(2.0):
                return await call(*args)
        except (RedisError, OSError, TimeoutError):
            return None

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    async def config(name: str) -> str | None:
        got = await ask(client.config_get, name)
        values = {text(k): text(v) for k, v in (got or {}).items()}
        return values.get(name)

    lines = []
    policy = await config("maxmemory-policy")
    if policy is None:
        lines.append(
            "! Redis 内存策略：无法检查（CONFIG 命令被禁用或无权限），"
            "请在 Redis 服务端确认 maxmemory-policy 为 noeviction"
        )
    elif policy != "noeviction":
        lines.append(
            f"! Redis 的 maxmemory-policy 为 {policy}："
            "内存满时会丢弃键（验证码、频率限制、登录会话），请设为 noeviction"
        )
    else:
        lines.append("✓ Redis 内存策略：noeviction")
    if await config("appendonly") == "no":
        lines.append(
            "  提示：Redis 未开启 appendonly，重启时会丢失最近一次快照之后的验证码、频率限制和登录会话"
            "（居民从菜单重新进入即可）；需要时可设 appendonly yes"
        )
    if settings.wechat.encoding_aes_key:
        refused = await ask(client.get, plaintext_refused_key(settings))
        if refused is not None:
            when = ""
            if text(refused).isdigit():
                at = dt.datetime.fromtimestamp(int(text(refused)), ZoneInfo(settings.notify.timezone))
                when = f"（最近一次 {at:%Y-%m-%d %H:%M}）"
            lines.append(
                f"! 微信消息：已配置 encoding_aes_key，但仍收到明文推送{when}，已拒绝（403）：请在公众平台"
                "“设置与开发 → 基本配置”中把消息加解密方式改为兼容模式或安全模式"
                f"（此提醒在最后一次拒绝 {PLAINTEXT_REFUSED_TTL // 86400} 天后消失）"
            )
    return lines


_WECHAT_HINTS = {
    40001: "接口调用凭据无效，请确认 AppSecret 正确且没有其他系统在另行获取凭据",
    40013: "AppID 无效，请核对 [wechat] app_id",
    40125: "AppSecret 无效，请核对 [wechat] app_secret（公众平台可重置）",
    40164: "本机出口 IP 不在公众号的 IP 白名单中：请在公众平台“设置与开发 → 基本配置 → IP白名单”中加入本机 IP",
    61004: "本机出口 IP 不在白名单中（61004），请在公众平台加入本机 IP",
    45009: "接口调用已达当日上限，请明天再试或在公众平台清零",
    -1: "微信系统繁忙，请稍后再试",
}


def _explain(exc: Exception) -> str:
    errcode = getattr(exc, "errcode", None)
    if errcode in _WECHAT_HINTS:
        return f"{_WECHAT_HINTS[errcode]}（错误码 {errcode}）"
    if errcode is not None:
        return f"微信返回错误码 {errcode}，请对照公众平台全局返回码说明"
    reason = getattr(exc, "reason", "")
    return {
        "timeout": "连接微信接口超时，请检查网络",
        "connect": "无法连接微信接口，请检查网络与 [wechat] api_base_url",
    }.get(reason, f"无法完成（{reason or type(exc).__name__}）")


# --------------------------------------------------------------------------- helpers


async def _require_schema(services: Any) -> None:
    from .db import current_revision

    try:
        revision = await current_revision(services.engine)
    except Exception as exc:  # the database itself is unreachable or refuses us
        raise CommandError(f"无法连接数据库：{type(exc).__name__}。请检查 [database] url") from None
    if revision is None:
        raise CommandError("数据库尚未初始化，请先运行 wechat-backend db upgrade")


def _stop_on_signals() -> asyncio.Event:
    """Set by SIGINT or SIGTERM: the long-running commands finish what they are doing and exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _push_demo_menu(services: Any) -> None:
    from .wechat.menu import push_menu

    await push_menu(services.settings, services.wechat)


async def _run_http(
    services: Any, make_app: Callable[[Any], Any], on_ready: Callable[[], Awaitable[None]] | None = None
) -> None:
    from .app import settle_heap

    s = services.settings.server
    app = make_app(services)
    settle_heap()
    # [limits] max_body_bytes is the cap on every body, checked before any of it is buffered
    # (WebApp.get_handler_delegate); a route that streams a larger body raises it for itself.
    cap = services.settings.limits.max_body_bytes
    server = app.listen(s.port, address=s.host, xheaders=False, max_body_size=cap)
    stop = _stop_on_signals()
    log.info("listening on %s:%s", s.host, s.port)
    if on_ready is not None:
        await on_ready()
    await stop.wait()
    log.info("stopping: no new connections, finishing requests in flight")
    server.stop()
    left = await app.drain(timeout=10.0)
    if left:
        log.warning("stopping with %d requests still in flight after 10 s", left)
    await server.close_all_connections()


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wechat-backend", description="居民电子健康档案 · 微信公众号后端")
    p.add_argument("--config", help="配置文件路径（默认读取环境变量 WECHAT_BACKEND_CONFIG）")
    sub = p.add_subparsers(dest="command", required=True, metavar="<command>")

    sub.add_parser("serve", help="启动 HTTP 服务")
    worker = sub.add_parser("worker", help="推送进程：发送未能即时发出的公众号消息（失败自动重试）")
    worker.add_argument("--once", action="store_true", help="只处理一批到期消息后退出（适合定时任务）")
    demo = sub.add_parser("demo", help="演示：建库、生成并导入合成档案、开放各县、启动服务")
    demo.add_argument("--archives", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=2018)

    db = sub.add_parser("db", help="数据库")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="<action>")
    db_sub.add_parser("upgrade", help="执行数据库迁移到最新版本")

    seed = sub.add_parser("seed", help="生成合成档案（JSON Lines）")
    seed.add_argument("--archives", type=int, required=True)
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--out", required=True)

    imp = sub.add_parser("import", help="导入 JSON Lines 文件")
    imp.add_argument("file")

    county = sub.add_parser(
        "county",
        help="县级开放参数",
        description="各县（市、区）的“个人档案是否显示健康档案开放给居民”开关和开放阶段。",
    )
    c_sub = county.add_subparsers(dest="county_command", required=True, metavar="<action>")
    c_set = c_sub.add_parser(
        "set",
        help="设置某县的开放开关或开放阶段",
        description="设置某县的开放开关或开放阶段。每次修改写入审计日志（谁、何时、改成什么）。",
        epilog=(
            "开放阶段：\n"
            "  key_populations  重点人群：只向 0–6 岁儿童、65 岁及以上老年人、孕产妇、高血压和 2 型糖尿病\n"
            "                   患者开放（其余居民看到“暂未开放”）\n"
            "  all              全部居民：开关打开、状态正常、机构已开放的档案都可查看\n"
            "无论哪个阶段，严重精神障碍、结核病、艾滋病等敏感项目都不向居民显示。\n"
            "例：wechat-backend county set 371502 --opening on --phase key_populations"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c_set.add_argument("code", metavar="县代码", help="县（市、区）的 6 位行政区划代码，见 county list")
    c_set.add_argument("--opening", choices=("on", "off"), help="on 开放给居民，off 关闭（居民立即看不到）")
    c_set.add_argument(
        "--phase", choices=("key_populations", "all"), help="开放阶段：key_populations 重点人群，all 全部居民"
    )
    c_sub.add_parser(
        "list", help="列出各县的开放状态", description="列出各县（市、区）的开放开关、阶段、机构数和档案数。"
    )

    staff = sub.add_parser("staff", help="工作人员账号", description="工作人员账号：添加、列出、停用。")
    s_sub = staff.add_subparsers(dest="staff_command", required=True, metavar="<action>")
    s_add = s_sub.add_parser(
        "add",
        help="添加工作人员",
        description=("添加工作人员。首次从公众号“工作台”进入时，验证码发到这里登记的手机，验证后与其微信绑定。"),
        epilog=(
            "角色：city 市级管理员（全市）；county 县级管理员（需 --county）；\n"
            "      institution 机构工作人员（需 --institution）。\n"
            "例：wechat-backend staff add --name 王医生 --phone 13800138000 --role institution --institution 371502001"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s_add.add_argument("--name", required=True, help="姓名（加密保存）")
    s_add.add_argument("--phone", required=True, help="手机号（接收登录验证码，加密保存）")
    s_add.add_argument("--role", required=True, choices=("city", "county", "institution"), help="角色")
    s_add.add_argument("--county", help="县（市、区）代码（county 角色）")
    s_add.add_argument("--institution", help="机构代码（institution 角色）")
    s_list = s_sub.add_parser("list", help="列出工作人员（手机号已脱敏）")
    s_list.add_argument("--county", help="只看这个县")
    s_dis = s_sub.add_parser("disable", help="停用工作人员：其登录立即失效")
    s_dis.add_argument("staff_id", metavar="编号", help="staff list 中的编号")

    stats = sub.add_parser(
        "stats",
        help="开放与使用统计（绩效评价用）",
        description=(
            "按机构、县、全市统计：截至 --to 的建档数、重点人群建档数、已开放数、开放率、已绑定数和绑定率，"
            "以及 --from 至 --to 期间查看档案的居民、推送、留言和扫码关注。"
        ),
    )
    stats.add_argument("--county", help="只看这个县（市、区）")
    stats.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="起始日期（默认 --to 前 29 天）")
    stats.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="截止日期（默认今天）")
    stats.add_argument("--format", choices=("table", "csv", "json"), default="table", help="输出格式（默认 table）")

    qr = sub.add_parser(
        "qrcodes",
        help="生成各机构的二维码海报（PNG 和 PDF）",
        description="为每个机构向微信申请一次永久二维码（之后复用），并生成 A4 海报 <机构代码>.png 和 .pdf。",
    )
    qr.add_argument("--institution", help="只生成这个机构的")
    qr.add_argument("--out", required=True, help="输出目录")

    menu = sub.add_parser("menu", help="公众号菜单")
    m_sub = menu.add_subparsers(dest="menu_command", required=True, metavar="<action>")
    m_sub.add_parser("push", help="按 [menu] 创建公众号菜单（含工作人员的个性化菜单）")
    sub.add_parser("check", help="检查配置、数据库、Redis 和微信接口凭据")

    keys = sub.add_parser("keys", help="加密密钥")
    k_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="<action>")
    k_sub.add_parser("rotate", help="用当前密钥重新加密全部数据并重建盲索引（可中断后继续）")
    k_new = k_sub.add_parser("new", help="生成一个新的 SM4 密钥")
    k_new.add_argument("key_id")

    notify = sub.add_parser("notify", help="随访提醒和新记录通知")
    n_sub = notify.add_subparsers(dest="notify_command", required=True, metavar="<action>")
    n_scan = n_sub.add_parser("scan", help="扫描到期的随访、体检并排入提醒（可重复运行，不会重复提醒）")
    n_scan.add_argument("--date", help="按哪一天扫描（YYYY-MM-DD，默认今天）")
    n_retry = n_sub.add_parser("retry", help="重新发送已放弃的推送")
    n_retry.add_argument("--dead", action="store_true", help="重发全部已放弃（尝试次数用完）的推送")
    n_retry.add_argument("--kind", action="append", help="只重发这一类（可多次指定）")
    n_stats = n_sub.add_parser("stats", help="按类型、县和机构统计推送：待发送、已发送、已跳过、已放弃")
    n_stats.add_argument("--county", help="只看这个县（行政区划代码）")

    aud = sub.add_parser("audit", help="审计日志的防篡改链")
    a_sub = aud.add_subparsers(dest="audit_command", required=True, metavar="<action>")
    a_sub.add_parser("verify", help="检查整条链和链头文件（不封存）：0 完整，1 被破坏，2 无法检查")
    a_sub.add_parser("seal", help="立即封存尚未入链的审计行（推送进程每隔几秒也会做）")
    return p


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Awaitable[int]]] = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "demo": cmd_demo,
    "db": cmd_db_upgrade,
    "seed": cmd_seed,
    "import": cmd_import,
    "county": cmd_county,
    "keys": cmd_keys,
    "menu": cmd_menu,
    "check": cmd_check,
    "audit": cmd_audit,
    "notify": cmd_notify,
    "staff": cmd_staff,
    "stats": cmd_stats,
    "qrcodes": cmd_qrcodes,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings = load_settings(args.config)
        if args.command == "demo":  # the demo talks to the built-in sandbox, never to WeChat
            base = settings.server.public_base_url.rstrip("/")
            sandbox = {"api_base_url": f"{base}/sandbox/", "open_base_url": f"{base}/sandbox/"}
            from .demo import demo_templates

            demo = {"sandbox": {"enabled": True}, "wechat": sandbox, "templates": demo_templates(settings)}
            settings = load_settings(args.config, overrides=demo)
        return asyncio.run(COMMANDS[args.command](settings, args))
    except (ConfigError, CommandError) as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("已中断。已提交的批次会保留，可重新运行同一命令继续。", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"错误：{type(exc).__name__}：{exc.strerror or '系统错误'}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Run through the importable module, not this ``__main__`` copy: command modules import
    # CommandError from ``wechat_backend.__main__``, and ``main`` must catch that same class.
    from wechat_backend.__main__ import main as _main

    sys.exit(_main())
