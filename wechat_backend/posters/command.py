"""``wechat-backend qrcodes [--institution CODE] --out DIR``: each institution's poster as
``<code>.png`` and ``<code>.pdf``.

Exit 0 all written; 1 written, but something is missing (no CJK font: PDFs only, and the line
says what to install); 2 could not run (unknown institution, WeChat refused, no database). A run
stopped by WeChat keeps what it did: the codes already asked for are stored and the posters
written, and running it again goes on from there.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from ..config import Settings
from ..wechat.api import WeChatError
from . import qr
from .render import INSTALL_FONT_HINT, find_cjk_font, render_pdf, render_png
from .service import NO_QR_PERMISSION, lacks_qr_permission, poster_for


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from ..__main__ import CommandError, _progress, _require_schema
    from ..services import build_services

    out = Path(args.out)
    services = await build_services(settings)  # with Redis: WeChat calls need the shared access token
    written = asked = 0
    font = find_cjk_font()
    try:
        await _require_schema(services)
        async with services.sessions() as s:
            rows = await qr.institutions(s, code=args.institution)
        if args.institution and not rows:
            raise CommandError(f"没有代码为 {args.institution} 的机构：请核对机构代码（见导入文件的 institution 行）")
        if not rows:
            raise CommandError("还没有机构：请先导入机构（wechat-backend import 文件.jsonl）")
        out.mkdir(parents=True, exist_ok=True)
        with _progress(total=len(rows), desc="生成海报", unit="个") as bar:
            for row in rows:
                try:
                    stored = await qr.ensure_code(services.sessions, services.wechat, row.code)
                except WeChatError as exc:
                    raise CommandError(_refused(exc, row, written)) from None
                asked += stored.new
                poster = poster_for(settings, row, stored.url)
                _write(out / f"{row.code}.pdf", await asyncio.to_thread(render_pdf, poster, font))
                if font is not None:
                    _write(out / f"{row.code}.png", await asyncio.to_thread(render_png, poster, font))
                written += 1
                bar.update(1)
    finally:
        await services.close()
    kinds = "PNG 和 PDF" if font is not None else "PDF"
    print(f"已为 {written} 个机构生成海报（{kinds}）到 {out}：新申请二维码 {asked} 个，沿用 {written - asked} 个")
    if font is None:
        print(f"！{INSTALL_FONT_HINT}（已申请的二维码会沿用，不会重新申请）", file=sys.stderr)
        return 1
    return 0


def _refused(exc: WeChatError, row: qr.InstitutionView, written: int) -> str:
    """One line: which institution, why WeChat gave no code, what to do, and what was done."""
    from ..__main__ import _explain

    if lacks_qr_permission(exc):
        why = f"{NO_QR_PERMISSION}；请在公众平台完成微信认证，或把 [wechat] app_id 换成已认证服务号的"
    else:
        why = _explain(exc)
    done = f"已完成 {written} 个机构，重新运行会接着生成" if written else "没有生成任何海报"
    return f"向微信申请 {row.code}（{row.name}）的二维码失败：{why}。{done}"


def _write(path: Path, body: bytes) -> None:
    """Whole or not at all: a poster half written is never left under its name."""
    part = path.with_name(path.name + ".part")
    try:
        part.write_bytes(body)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
