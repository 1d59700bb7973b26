"""Code tables shared by import, policy and synthetic data: one place for each vocabulary."""

from __future__ import annotations

# Record kinds of the ingest format (the national forms plus 门诊). The last two are imported
# and never shown to residents.
RECORD_KINDS = frozenset(
    {
        "hypertension_followup",
        "diabetes_followup",
        "elderly_check",
        "health_exam",
        "prenatal_first",
        "prenatal_followup",
        "postpartum_visit",
        "postpartum_42d",
        "newborn_visit",
        "child_check",
        "tcm_constitution",
        "outpatient",
        "severe_mental_followup",
        "tuberculosis_followup",
    }
)

# Programmes an archive is managed under (重点人群 and the three sensitive ones).
PROGRAMMES = ("hypertension", "diabetes", "elderly", "maternal", "child", "severe_mental", "tuberculosis", "hiv")

ARCHIVE_STATUSES = frozenset({"normal", "lost", "closed"})
GENDERS = frozenset({"0", "1", "2", "9"})  # GB/T 2261.1
