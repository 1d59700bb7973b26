"""How the bind flow says no: every refusal is audited with its precise reason, and the person sees
one of a few fixed answers, so the form cannot tell who has an archive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncSession

from .. import audit
from ..errors import AppError, BadInput, Conflict

if TYPE_CHECKING:
    from .service import Caller

Refusal = tuple[str, AppError]
"""Why (for the audit) and what the person is told."""


async def refuse(
    s: AsyncSession, caller: Caller, action: str, archive_id: int | None, refusal: Refusal, *, result: str = "denied"
) -> NoReturn:
    """Audit a refusal with its precise reason, commit that row, and answer with the error."""
    audit.by_identity(s, caller, action, archive_id, result=result, reason=refusal[0])
    await s.commit()
    raise refusal[1]


def cap_error(reason: str, cfg: Any) -> Conflict:
    if reason == "already_bound":
        return Conflict("您已绑定这份档案，可在“我的档案”中查看")
    if reason == "identity_full":
        return Conflict(f"每个微信最多绑定{cfg.archives_per_identity}份档案，请先解除不再需要的档案")
    return Conflict(f"这份档案已绑定{cfg.identities_per_archive}个微信，请档案本人解除不需要的绑定后再试")


def too_many_tries() -> BadInput:
    return BadInput("code", "验证码错误次数过多，已失效，请重新获取验证码")


def finished(status: str) -> AppError:
    if status == "verified":
        return Conflict("这次绑定已经完成，可在“我的档案”中查看")
    if status == "sending":
        return Conflict("验证码正在发送，请稍候")
    return BadInput("bind_id", "验证码已失效，请重新获取验证码")
