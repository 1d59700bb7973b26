"""The pure rules of pushes: when each reminder is due, when a push may go, what it says, and what
a failed try means."""

from __future__ import annotations

import datetime as dt

from wechat_backend.config import NotifySettings, TemplateSpec
from wechat_backend.notify.kinds import CHILD_CHECK_DUE, EXAM_DUE, FOLLOWUP_DUE, PRENATAL_DUE, RECORD_ADDED
from wechat_backend.notify.message import client_msg_id, fit, link, template_data
from wechat_backend.notify.outbox import judge
from wechat_backend.notify.quiet import is_quiet, next_beijing_midnight, send_at, spread
from wechat_backend.notify.schedule import (
    add_months,
    applies,
    due_from_birth,
    due_from_record,
    next_child_check,
    next_prenatal,
)

D = dt.date
UTC = dt.UTC


def test_follow_ups_use_the_recorded_date_else_a_quarter_later() -> None:
    assert due_from_record("hypertension_followup", D(2026, 9, 1), D(2026, 10, 15), {}) == (
        FOLLOWUP_DUE,
        D(2026, 10, 15),
    )
    assert due_from_record("diabetes_followup", D(2026, 9, 1), None, {}) == (FOLLOWUP_DUE, D(2026, 11, 30))
    assert due_from_record("outpatient", D(2026, 9, 1), None, {}) is None


def test_the_yearly_exam_is_for_people_of_65_and_over() -> None:
    assert due_from_record("elderly_check", D(2026, 3, 1), None, {}) == (EXAM_DUE, D(2027, 3, 1))
    born = D(1962, 6, 10)
    assert applies(EXAM_DUE, born, D(2027, 6, 10)) and not applies(EXAM_DUE, born, D(2027, 6, 9))
    # Someone turning 65 within the year gets the first exam on the birthday; a 40-year-old nothing.
    assert due_from_birth(born, D(2026, 12, 4)) == [(EXAM_DUE, D(2027, 6, 10))]
    assert due_from_birth(D(1963, 1, 10), D(2026, 12, 4)) == []  # more than a year ahead
    assert due_from_birth(D(1960, 1, 10), D(2026, 12, 4)) == []  # 65 already: the exam records set it
    assert due_from_birth(D(1986, 1, 1), D(2026, 12, 4)) == []


def test_child_checks_follow_the_national_ages() -> None:
    born = D(2026, 1, 31)
    assert next_child_check(born, born) == D(2026, 2, 28)  # one month: the month's last day
    assert next_child_check(born, D(2026, 7, 1)) == D(2026, 7, 31)  # six months
    assert next_child_check(born, D(2029, 2, 1)) == D(2030, 1, 31)  # then yearly: four years
    assert next_child_check(born, D(2032, 2, 1)) is None  # past six
    assert due_from_birth(D(2026, 10, 1), D(2026, 12, 4)) == [(CHILD_CHECK_DUE, D(2027, 1, 1))]
    assert add_months(D(2024, 1, 31), 1) == D(2024, 2, 29)
    assert not applies(CHILD_CHECK_DUE, D(2019, 1, 1), D(2026, 1, 2))


def test_prenatal_visits_follow_the_gestational_week_and_stop_after_birth() -> None:
    assert next_prenatal(D(2026, 9, 1), {"gestational_week": 12}) == D(2026, 9, 29)  # week 16
    assert next_prenatal(D(2026, 9, 1), {"孕周": "24+3"}) == D(2026, 9, 29)  # week 28
    assert next_prenatal(D(2026, 9, 1), {"gestational_week": 38}) is None
    assert next_prenatal(D(2026, 9, 1), {}) == D(2026, 9, 29)  # no week: four weeks on
    assert due_from_record("postpartum_visit", D(2026, 9, 1), None, {}) == (PRENATAL_DUE, None)


def test_quiet_hours_wait_for_the_morning_and_spread_over_an_hour() -> None:
    s = NotifySettings()
    assert is_quiet(dt.time(21, 0), "21:00", "08:00") and is_quiet(dt.time(7, 59), "21:00", "08:00")
    assert not is_quiet(dt.time(8, 0), "21:00", "08:00") and not is_quiet(dt.time(12, 0), "12:00", "12:00")
    assert is_quiet(dt.time(13, 0), "12:00", "14:00") and not is_quiet(dt.time(14, 0), "12:00", "14:00")
    night = dt.datetime(2026, 12, 4, 14, 30, tzinfo=UTC)  # 22:30 in Beijing
    at = send_at(night, s, "k1")
    morning = dt.datetime(2026, 12, 5, 0, 0, tzinfo=UTC)  # 08:00
    assert morning <= at < morning + dt.timedelta(hours=1) and at == morning + spread("k1")
    assert send_at(night, s, "k1", urgent=True) == night
    noon = dt.datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    assert send_at(noon, s, "k1") == noon
    assert len({spread(f"k{i}") for i in range(50)}) > 40  # not all at one moment


def test_the_quota_resets_at_midnight_in_beijing() -> None:
    assert next_beijing_midnight(dt.datetime(2026, 12, 4, 15, 59, tzinfo=UTC)) == dt.datetime(
        2026, 12, 4, 16, tzinfo=UTC
    )
    assert next_beijing_midnight(dt.datetime(2026, 12, 4, 16, 0, tzinfo=UTC)) == dt.datetime(
        2026, 12, 5, 16, tzinfo=UTC
    )


def test_a_push_says_only_the_kind_date_place_and_whose() -> None:
    spec = TemplateSpec("T", {"thing1": "kind", "time2": "date", "thing3": "institution", "thing4": "name"})
    payload = {"archive": "a1", "record": "r1", "date": "2026-12-08", "institution": "莘县燕店镇卫生院", "name": "张**"}
    assert template_data(spec, FOLLOWUP_DUE, payload) == {
        "thing1": "随访提醒",
        "time2": "2026年12月8日",
        "thing3": "莘县燕店镇卫生院",
        "thing4": "您的家人张**",
    }
    long_name = "某某市某某县某某镇某某村卫生室第一分室（东院）"
    assert fit(long_name) == long_name[:19] + "…" and len(fit(long_name)) == 20
    assert fit("两行\n文字") == "两行 文字"
    assert link("https://x.cn/", RECORD_ADDED, payload) == "https://x.cn/r/records/r1"
    assert link("https://x.cn", FOLLOWUP_DUE, payload) == "https://x.cn/r/archives/a1"
    assert client_msg_id("k" * 200) == client_msg_id("k" * 200) != client_msg_id("k")
    assert len(client_msg_id("k" * 200)) == 32


def test_what_a_failed_try_means() -> None:
    now = dt.datetime(2026, 12, 4, 4, 0, tzinfo=UTC)
    assert judge(None, True, 0, 5, now).status == "sent"
    assert judge(-1, False, 0, 5, now).due_at == now + dt.timedelta(minutes=1)
    assert judge(45011, False, 1, 5, now, 0.8).due_at == now + dt.timedelta(minutes=2) * 0.8
    assert judge(None, False, 4, 5, now).status == "dead"
    unfollowed = judge(43004, False, 0, 5, now)
    assert unfollowed.status == "skipped" and unfollowed.unfollowed
    assert judge(43101, False, 0, 5, now).status == "skipped" and not judge(43101, False, 0, 5, now).unfollowed
    quota = judge(45009, False, 2, 5, now)
    assert (quota.status, quota.attempts, quota.quota) == ("pending", 2, True)  # the try does not count
    assert quota.due_at == dt.datetime(2026, 12, 4, 16, tzinfo=UTC)
