"""The kinds of push, what each says in plain words, and which records make which reminder.

A push names no diagnosis, value, drug or programme: only its kind in the words below, a date, the
institution and a link. ``binding_added`` is a security alert: it cannot be muted, ignores quiet
hours and goes first.
"""

from __future__ import annotations

RECORD_ADDED = "record_added"
FOLLOWUP_DUE = "followup_due"
EXAM_DUE = "exam_due"
CHILD_CHECK_DUE = "child_check_due"
PRENATAL_DUE = "prenatal_due"
BINDING_ADDED = "binding_added"
# A staff answer to the resident's question (留言), when the customer-service text cannot go
# (feedback/delivery.py). Not a reminder: never among the kinds a resident chooses (CHOOSABLE).
FEEDBACK_ANSWERED = "feedback_answered"

KINDS = (RECORD_ADDED, FOLLOWUP_DUE, EXAM_DUE, CHILD_CHECK_DUE, PRENATAL_DUE, BINDING_ADDED, FEEDBACK_ANSWERED)
DUE_KINDS = (FOLLOWUP_DUE, EXAM_DUE, CHILD_CHECK_DUE, PRENATAL_DUE)
# What a resident may turn off, per archive (not the security alert).
CHOOSABLE = (RECORD_ADDED, *DUE_KINDS)
URGENT = frozenset({BINDING_ADDED})  # no quiet hours, first in the queue

# What the push's "kind" field says (at most 20 characters: the template rules).
WORDS = {
    RECORD_ADDED: "新的健康服务记录",
    FOLLOWUP_DUE: "随访提醒",
    EXAM_DUE: "年度健康体检提醒",
    CHILD_CHECK_DUE: "儿童健康检查提醒",
    PRENATAL_DUE: "孕期检查提醒",
    BINDING_ADDED: "档案被绑定提醒",
    FEEDBACK_ANSWERED: "留言已回复",
}

# What the settings page and the 随访提醒 answer call each kind.
LABELS = {
    RECORD_ADDED: "有新的随访或检查记录时通知",
    FOLLOWUP_DUE: "下次随访前提醒",
    EXAM_DUE: "年度健康体检前提醒（65岁及以上）",
    CHILD_CHECK_DUE: "儿童健康检查前提醒（0～6岁）",
    PRENATAL_DUE: "孕期检查前提醒",
}
DUE_NAMES = {
    FOLLOWUP_DUE: "随访",
    EXAM_DUE: "健康体检",
    CHILD_CHECK_DUE: "儿童健康检查",
    PRENATAL_DUE: "孕期检查",
}

# Records whose arrival is announced (record_added): follow-ups, exams, child checks, maternal visits.
ANNOUNCED_RECORDS = frozenset(
    {
        "hypertension_followup",
        "diabetes_followup",
        "elderly_check",
        "health_exam",
        "child_check",
        "newborn_visit",
        "prenatal_first",
        "prenatal_followup",
        "postpartum_visit",
        "postpartum_42d",
    }
)
