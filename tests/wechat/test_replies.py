"""What the account says: the answers are pure text; the contact line is spliced in by the callback."""

from __future__ import annotations

import pytest

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

# Nothing the account does yet: reminder pushes and 留言 (a message box). No answer may promise them.
PROMISES = ("会提醒", "前收到提醒", "也会提醒", "提醒您", "点“留言”", "写下您的问题", "工作人员会在", "留言给")


@pytest.mark.parametrize("key", [*replies.MENU_KEYS, ""])
def test_no_answer_promises_reminder_pushes_or_a_message_box(key: str) -> None:
    text = replies.answer(key, HOME, replies.Contact("莘县燕店镇卫生院", "0635-7123456"))
    assert not [p for p in PROMISES if p in text], text


def test_the_welcome_lists_what_works_and_links_home() -> None:
    for text in (replies.welcome(HOME), replies.welcome(HOME, "莘县燕店镇卫生院")):
        assert HOME in text and not [p for p in PROMISES if p in text]
        for part in ("基本信息", "健康体检", "慢病随访", "孕产妇和儿童保健记录", "变化趋势", "谁查看了档案"):
            assert part in text, part


def test_followup_says_reminders_are_not_sent_yet_and_where_the_next_date_is() -> None:
    text = replies.answer(replies.FOLLOWUP, HOME, replies.Contact())
    assert "暂时还不会主动发送随访提醒" in text and "下次随访的日期" in text and HOME in text


def test_feedback_gives_the_institutions_phone_instead_of_a_button() -> None:
    text = replies.answer(replies.FEEDBACK, HOME, replies.Contact("莘县燕店镇卫生院", "0635-7123456"))
    assert "暂时还不能留言" in text and "莘县燕店镇卫生院咨询电话：0635-7123456" in text
    assert HOME not in text  # nothing to open: no page takes a message
    unknown = replies.answer(replies.FEEDBACK, HOME, replies.Contact())
    assert "暂时还不能留言" in unknown and "建档机构" in unknown


def test_the_archive_answer_lists_the_sections_that_exist() -> None:
    text = replies.answer(replies.ARCHIVE, HOME, replies.Contact())
    assert HOME in text and replies.ARCHIVE_CONTENTS in text
