"""What the official account says: the welcome, the keyword and menu answers, and the fallback.

Plain, short lines in Simplified Chinese, each ending with what to do next. Pure functions: the
callback decides which answer applies and passes in the links and the consultation phone — a
:class:`Contact`, or the line :func:`contact_line` printed for it earlier (the callback caches that
line per follower). An answer names the contact line at most once.
Passive text replies are limited to 2048 bytes; every text here stays far below.
被动回复用户消息: https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Passive_user_reply_message.html
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..notify.kinds import DUE_KINDS, DUE_NAMES
from ..notify.message import date_words

if TYPE_CHECKING:
    from ..notify.upcoming import DueLine

# Menu CLICK keys (自定义菜单 key); `menu push` builds the menu with these.
BIND = "BIND"
ARCHIVE = "ARCHIVE"
FOLLOWUP = "FOLLOWUP"
HELP = "HELP"
FEEDBACK = "FEEDBACK"
# Not on the residents' menu: the word a staff member sends to get the 工作台's login link before
# their first login has tagged them for the staff menu.
STAFF = "STAFF"
MENU_KEYS = (BIND, ARCHIVE, FOLLOWUP, HELP, FEEDBACK, STAFF)

# Text keywords, in the order they are tried: "我要绑定档案" is about binding.
KEYWORDS: tuple[tuple[str, str], ...] = (
    ("工作台", STAFF),
    ("绑定", BIND),
    ("档案", ARCHIVE),
    ("随访", FOLLOWUP),
    ("体检", FOLLOWUP),
    ("留言", FEEDBACK),
    ("帮助", HELP),
)
_HELP_WORDS = frozenset({"?", "？", "help"})

# Answers that name the consultation phone (the callback looks it up only for these).
NEEDS_CONTACT = frozenset({HELP, FEEDBACK})


@dataclass(frozen=True)
class Contact:
    """The institution a resident can call: from the QR code they followed through, when known."""

    institution: str | None = None
    phone: str | None = None


def needs_contact(key: str) -> bool:
    """Whether the answer to ``key`` names the consultation phone (HELP, FEEDBACK, the fallback)."""
    return key in NEEDS_CONTACT or key not in MENU_KEYS


def keyword_key(text: str) -> str | None:
    """The menu key a text message asks for, or None."""
    text = text.strip()
    if text.lower() in _HELP_WORDS:
        return HELP
    return next((key for word, key in KEYWORDS if word in text), None)


def contact_line(contact: Contact | str) -> str:
    if isinstance(contact, str):
        return contact  # printed before
    if contact.phone:
        who = contact.institution or "建档机构"
        return f"有疑问请拨打{who}咨询电话：{contact.phone}"
    return "有疑问请联系您的建档机构（社区卫生服务中心或乡镇卫生院）。"


# What a resident can read once an archive is bound (the archive pages under /r/); the welcome and
# the 档案 answer list it. Reminders go only for kinds with a template configured: only
# :func:`upcoming`, which is told which kinds are pushed, speaks of reminders coming.
ARCHIVE_CONTENTS = "基本信息、健康体检、慢病随访、孕产妇和儿童保健记录、变化趋势，以及谁查看了档案"


def welcome(home_url: str, institution: str | None = None) -> str:
    hello = f"您好，欢迎关注！感谢您在{institution}扫码关注。" if institution else "您好，欢迎关注！"
    return (
        f"{hello}\n"
        f"在这里可以查看您本人和家人的居民电子健康档案：{ARCHIVE_CONTENTS}。\n\n"
        "第一次使用请先绑定档案（需要用建档时登记的手机号接收验证码）：\n"
        f"{home_url}\n\n"
        "回复“帮助”查看全部功能。"
    )


def answer(key: str, home_url: str, contact: Contact | str) -> str:
    """The answer to a menu click or keyword; an unknown key gets the fallback."""
    if key == BIND:
        bind_url = home_url.rsplit("/", 1)[0] + "/bind"  # /r/home -> /r/bind, the form itself
        return (
            "绑定健康档案：\n"
            f"1. 打开 {bind_url}\n"
            "2. 先选为谁绑定，再填写姓名、身份证号（或档案编号）和建档时登记的手机号\n"
            "3. 输入收到的短信验证码，完成绑定\n\n"
            "也可以为孩子、父母等家人绑定，手机号须是他们档案里登记的号码。"
        )
    if key == ARCHIVE:
        return f"查看健康档案：\n{home_url}\n\n绑定后可以看到{ARCHIVE_CONTENTS}。\n还没有绑定？回复“绑定”查看步骤。"
    if key == FOLLOWUP:  # for someone who has bound no archive (the callback looks that up)
        return (
            "随访提醒：您还没有绑定健康档案。\n"
            "绑定后，在这里可以看到下次随访、体检的日期。\n"
            "回复“绑定”查看步骤，或打开：\n"
            f"{home_url}"
        )
    if key == FEEDBACK:  # how to ask; a text "留言 …" itself is taken by feedback/ (the callback)
        feedback_url = home_url.rsplit("/", 1)[0] + "/feedback"
        return (
            "留言咨询：发送“留言”加上您的问题，例如：\n"
            "留言 降压药是饭前吃还是饭后吃？\n\n"
            "建档机构的工作人员看到后会回复，回复会通过公众号消息通知您。"
            "也可以在档案页面点“留言”。我的留言和回复：\n"
            f"{feedback_url}\n\n"
            f"{contact_line(contact)}"
        )
    if key == STAFF:
        login_url = home_url.rsplit("/r/", 1)[0] + "/staff/login?next=/staff/"
        return (
            "工作人员登录工作台：\n"
            f"{login_url}\n\n"
            "首次登录时，验证码发到县级管理员为您登记的手机号；登录后公众号菜单会出现“工作台”。"
            "还没有登记？请联系县级管理员。"
        )
    if key == HELP:
        return (
            "回复下面的词语即可使用：\n"
            "绑定 — 绑定本人或家人的健康档案\n"
            "档案 — 查看健康档案\n"
            "随访 — 查看下次随访、体检日期和提醒设置\n"
            "留言 — 向建档机构提问（如：留言 降压药怎么吃）\n"
            "帮助 — 显示本说明\n\n"
            f"{contact_line(contact)}"
        )
    return fallback(contact)


def fallback(contact: Contact | str) -> str:
    return (
        "抱歉，没有看懂您的意思。\n请回复：绑定、档案、随访、留言 或 帮助。\n"
        "想问建档机构的工作人员，请发送“留言 您的问题”。\n\n"
        f"{contact_line(contact)}"
    )


def upcoming(
    items: Sequence[DueLine],
    *,
    home_url: str,
    settings_url: str,
    pushed: Sequence[str],
    lead_days: int,
    quiet: tuple[str, str],
) -> str:
    """The 随访提醒 answer for someone with bound archives: their next due dates (``items``, soonest
    first: who, what, when — never a diagnosis or a value), then when reminders come. ``pushed``:
    the due kinds whose template is configured; only those are said to be sent."""
    if items:
        lines = ["随访提醒：接下来要做的随访和检查："]
        lines += [f"{_who(i)} · {DUE_NAMES[i.kind]} · {date_words(i.due_on.isoformat())}" for i in items]
    else:
        lines = ["随访提醒：暂时没有查到下次随访或体检的日期。"]
    lines.append("")
    kinds = [k for k in DUE_KINDS if k in pushed]
    if not kinds:
        lines += ["公众号暂时不发送到期提醒，日期可以在“我的档案”里查看：", home_url]
        return "\n".join(lines)
    what = "" if len(kinds) == len(DUE_KINDS) else "、".join(DUE_NAMES[k] for k in kinds)
    when = f"到期前{lead_days}天" if lead_days > 0 else "到期当天"
    start, end = quiet
    calm = f"（{start}到第二天{end}不发）" if start > end else (f"（{start}到{end}不发）" if start != end else "")
    lines += [f"{what}{when}，公众号会发消息提醒您{calm}。", "不想收到某类提醒，可以在“提醒设置”里关掉：", settings_url]
    return "\n".join(lines)


def _who(item: DueLine) -> str:
    return "本人" if item.own else f"您的家人{item.name}"
