"""What the account says: the answers are pure text; the contact line is spliced in by the callback."""

from __future__ import annotations

import datetime as dt

import pytest

from wechat_backend.notify.kinds import DUE_KINDS
from wechat_backend.notify.upcoming import DueLine
from wechat_backend.wechat import replies

HOME = "https://jkda.example.cn/r/home"
LINE = "\x00line\x00"


@pytest.mark.parametrize("key", [*replies.MENU_KEYS, "", "NO_SUCH_KEY"])
def test_an_answer_names_the_contact_line_once_exactly_when_it_needs_it(key: str) -> None:
    assert replies.answer(key, HOME, LINE).count(LINE) == (1 if replies.needs_contact(key) else 0)


@pytest.mark.parametrize(
    "contact",
    [replies.Contact(), replies.Contact("莘县燕店镇卫生院", "0635-7123456"), replies.Contact(None, "0635-7123456")],
)
def test_an_answer_with_the_line_printed_before_equals_the_answer_with_the_contact(contact: replies.Contact) -> None:
    line = replies.contact_line(contact)
    for key in (*replies.MENU_KEYS, ""):
        assert replies.answer(key, HOME, line) == replies.answer(key, HOME, contact)


def test_only_help_feedback_and_the_fallback_need_the_contact() -> None:
    assert {k for k in replies.MENU_KEYS if replies.needs_contact(k)} == {replies.HELP, replies.FEEDBACK}
    assert replies.needs_contact("") and replies.needs_contact("NO_SUCH_KEY")


# --------------------------------------------------------------------------- no dead ends

# Reminder pushes go only for kinds with a template configured, which ``answer`` does not know:
# only ``upcoming`` may speak of them.
PROMISES = ("会提醒", "前收到提醒", "也会提醒", "提醒您")


@pytest.mark.parametrize("key", [*replies.MENU_KEYS, ""])
def test_no_answer_promises_reminder_pushes_or_a_message_box(key: str) -> None:
    text = replies.answer(key, HOME, replies.Contact("莘县燕店镇卫生院", "0635-7123456"))
    assert not [p for p in PROMISES if p in text], text


def test_the_welcome_lists_what_works_and_links_home() -> None:
    for text in (replies.welcome(HOME), replies.welcome(HOME, "莘县燕店镇卫生院")):
        assert HOME in text and not [p for p in PROMISES if p in text]
        for part in ("基本信息", "健康体检", "慢病随访", "孕产妇和儿童保健记录", "变化趋势", "谁查看了档案"):
            assert part in text, part


def test_followup_without_a_bound_archive_says_how_to_bind() -> None:
    text = replies.answer(replies.FOLLOWUP, HOME, replies.Contact())
    assert "还没有绑定健康档案" in text and "下次随访、体检的日期" in text and "回复“绑定”" in text and HOME in text


def test_help_lists_followup_as_dates_and_reminder_settings() -> None:
    assert "随访 — 查看下次随访、体检日期和提醒设置" in replies.answer(replies.HELP, HOME, replies.Contact())


SETTINGS_URL = "https://jkda.example.cn/r/settings"
LINES = [
    DueLine(True, "刘**", "followup_due", dt.date(2026, 12, 8)),
    DueLine(False, "王**", "child_check_due", dt.date(2027, 1, 3)),
]


def upcoming(items: list[DueLine], pushed: tuple[str, ...], lead_days: int = 3) -> str:
    return replies.upcoming(
        items, home_url=HOME, settings_url=SETTINGS_URL, pushed=pushed, lead_days=lead_days, quiet=("21:00", "08:00")
    )


def test_upcoming_names_who_what_and_when_and_nothing_else() -> None:
    lines = upcoming(LINES, DUE_KINDS).splitlines()
    assert lines[:3] == [
        "随访提醒：接下来要做的随访和检查：",
        "本人 · 随访 · 2026年12月8日",
        "您的家人王** · 儿童健康检查 · 2027年1月3日",
    ]
    assert "刘**" not in "\n".join(lines)  # one's own name is not repeated


def test_upcoming_promises_pushes_only_for_kinds_with_a_template() -> None:
    every = upcoming(LINES, DUE_KINDS)
    assert "到期前3天，公众号会发消息提醒您（21:00到第二天08:00不发）。" in every
    assert every.endswith(SETTINGS_URL)
    some = upcoming(LINES, ("followup_due", "exam_due"))
    assert "随访、健康体检到期前3天，公众号会发消息提醒您" in some and some.endswith(SETTINGS_URL)
    none = upcoming(LINES, ())
    assert "公众号暂时不发送到期提醒" in none and none.endswith(HOME)
    assert not [p for p in (*PROMISES, "会发消息") if p in none] and SETTINGS_URL not in none
    assert "到期当天" in upcoming(LINES, DUE_KINDS, lead_days=0)


def test_upcoming_without_dates_says_so() -> None:
    text = upcoming([], ())
    assert text.startswith("随访提醒：暂时没有查到下次随访或体检的日期。") and HOME in text


def test_upcoming_stays_far_below_the_passive_reply_limit() -> None:
    many = [DueLine(False, "欧阳**", "child_check_due", dt.date(2027, 12, 28))] * 5
    assert len(upcoming(many, DUE_KINDS).encode()) < 1024


def test_feedback_says_how_to_ask_where_answers_are_and_whom_to_call() -> None:
    text = replies.answer(replies.FEEDBACK, HOME, replies.Contact("莘县燕店镇卫生院", "0635-7123456"))
    assert "发送“留言”加上您的问题" in text and "莘县燕店镇卫生院咨询电话：0635-7123456" in text
    assert HOME.rsplit("/", 1)[0] + "/feedback" in text  # 我的留言
    unknown = replies.answer(replies.FEEDBACK, HOME, replies.Contact())
    assert "发送“留言”加上您的问题" in unknown and "建档机构" in unknown


def test_the_archive_answer_lists_the_sections_that_exist() -> None:
    text = replies.answer(replies.ARCHIVE, HOME, replies.Contact())
    assert HOME in text and replies.ARCHIVE_CONTENTS in text


def test_staff_get_the_login_link_by_sending_the_word_before_their_menu_has_it() -> None:
    assert replies.keyword_key("工作台") == replies.STAFF
    text = replies.answer(replies.STAFF, "https://example.cn/r/home", replies.Contact())
    assert "https://example.cn/staff/login?next=/staff/" in text
    assert "县级管理员" in text
