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
