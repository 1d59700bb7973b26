"""``wechat-backend staff add|list|disable``."""

from __future__ import annotations

import argparse

from ..cli_table import table
from ..config import Settings
from ..errors import AppError
from .scope import ROLE_LABELS


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from ..__main__ import CommandError, _require_schema
    from ..services import build_services

    services = await build_services(settings, with_redis=False)
    try:
        await _require_schema(services)
        try:
            if args.staff_command == "add":
                added = await services.staff.add(
                    name=args.name,
                    phone=args.phone,
                    role=args.role,
                    county_code=args.county,
                    institution_code=args.institution,
                )
                where = added.institution_code or added.county_code or "全市"
                who = f"{ROLE_LABELS[added.role]} {added.name}（{where}，手机 {added.phone}）"
                print(f"已添加{who}，编号 {added.public_id}")
                print("请本人在公众号中点“工作台”，用发到该手机的验证码完成首次登录。")
                return 0
            if args.staff_command == "disable":
                gone = await services.staff.disable(args.staff_id)
                print(f"已停用 {gone.name}（编号 {gone.public_id}），其登录已失效。")
                return 0
            rows = await services.staff.list(county_code=args.county)
        except AppError as exc:
            raise CommandError(exc.message) from None
    finally:
        await services.close()
    if not rows:
        print("还没有工作人员：wechat-backend staff add --help")
        return 0
    print(
        table(
            ("编号", "姓名", "手机", "角色", "县", "机构", "状态", "微信"),
            [
                (
                    r.public_id,
                    r.name,
                    r.phone,
                    ROLE_LABELS.get(r.role, r.role),
                    r.county_code or "",
                    r.institution_code or "",
                    "在用" if r.active else "已停用",
                    "已绑定" if r.linked else "未绑定",
                )
                for r in rows
            ],
        )
    )
    return 0
