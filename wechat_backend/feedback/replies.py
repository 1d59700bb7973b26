"""What the account says about questions: the reply to a 留言 text, and the customer-service
message that carries a staff answer. Pure; plain Simplified Chinese ending with what to do next."""

from __future__ import annotations

from .views import Inbox

CITY_TEAM = "健康档案服务工作人员"  # who answers the city's inbox
CUSTOM_ANSWER_MAX = 600  # characters of the answer a customer-service text carries; the page has it all


def who_answers(to: Inbox) -> str:
    return CITY_TEAM if to.city else (to.name or "建档机构")


def urgent_line(to: Inbox) -> str:
    if to.consult_phone:
        return f"急事请直接拨打咨询电话：{to.consult_phone}"
    return "急事请直接联系您的建档机构（社区卫生服务中心或乡镇卫生院）。"


def received(to: Inbox, list_url: str) -> str:
    """The reply to ``留言 …``: received, who answers, where the answer will be."""
    return (
        f"已收到您的留言，将由{who_answers(to)}回复。\n"
        "回复后会通过公众号消息通知您，也可以在“我的留言”里查看：\n"
        f"{list_url}\n\n"
        f"{urgent_line(to)}"
    )


def refused(message: str, to: Inbox | None = None) -> str:
    """A 留言 text that was not taken (too long, an odd character, too many today): why, and what
    to do. Nothing was stored."""
    tail = f"\n{urgent_line(to)}" if to is not None else ""
    return f"留言没有提交：{message}{tail}"


def custom_answer(who: str, answer: str, page_url: str) -> str:
    """The customer-service text with a staff answer (the resident's own question, answered by
    the staff member who wrote it); a long answer is cut here and read whole on the page."""
    body = answer if len(answer) <= CUSTOM_ANSWER_MAX else answer[: CUSTOM_ANSWER_MAX - 1] + "…"
    return f"{who}回复了您的留言：\n{body}\n\n查看留言和完整回复：\n{page_url}"
