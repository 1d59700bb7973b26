"""Errors a person may see: a stable code, an HTTP status and a Chinese message saying what to do.

Services raise these; ``handlers.base.BaseHandler.write_error`` is the only place that turns them
into a response. Never put ``str(exc)`` of anything else in front of a user.
"""

from __future__ import annotations


class AppError(Exception):
    code = "internal"
    status = 500
    message = "系统繁忙，请稍后再试"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None, **extra: object):
        self.message = message or self.message
        self.headers = headers or {}
        self.extra = extra
        super().__init__(self.code)

    def to_json(self) -> dict[str, object]:
        return {"error": self.code, "message": self.message, **self.extra}


class BadInput(AppError):
    code, status = "bad_input", 400

    def __init__(self, field: str, message: str | None = None):
        super().__init__(message or f"请检查填写的内容：{field}", field=field)


class Mismatch(AppError):
    """Name, ID number or phone do not match an archive: the same words whichever it is (and for
    an ID number no archive has), so the answer never tells who has an archive. The words are put
    together here only; ``consult_phone`` is ``[service] consult_phone``, the city's number."""

    code, status, message = "mismatch", 400, "信息不一致，请核对姓名、身份证号和手机号后重试"
    PHONE_CHANGED = "如手机号已更换，请携带身份证到建档机构更新"

    def __init__(self, consult_phone: str = "") -> None:
        text = f"{self.message}。{self.PHONE_CHANGED}。"
        if consult_phone:
            super().__init__(f"{text}咨询电话：{consult_phone}", consult_phone=consult_phone)
        else:
            super().__init__(text)


class NotLoggedIn(AppError):
    code, status, message = "not_logged_in", 401, "请从公众号菜单重新进入"


class ConsentRequired(AppError):
    code, status, message = "consent_required", 403, "请先阅读并同意隐私说明"


class Forbidden(AppError):
    code, status, message = "forbidden", 403, "您没有权限进行此操作"


class NotOpen(AppError):
    code, status, message = "not_open", 403, "暂未开放自助查询，请咨询建档机构"


class NotFound(AppError):
    code, status, message = "not_found", 404, "未找到相关记录"


class Conflict(AppError):
    code, status, message = "conflict", 409, "该档案已绑定"


class TooLarge(AppError):
    code, status, message = "too_large", 413, "提交的内容过大"


class RateLimited(AppError):
    code, status = "rate_limited", 429

    def __init__(self, retry_after: int, message: str | None = None):
        super().__init__(
            message or f"操作过于频繁，请 {retry_after} 秒后再试", headers={"Retry-After": str(retry_after)}
        )


class Unavailable(AppError):
    code, status, message = "unavailable", 503, "服务暂时不可用，请稍后再试"
