"""Field dictionaries: for each record kind a resident may see, the national form's sections and, for
every payload key, its label, unit, code meanings and normal range. Pure data, no I/O.

One module per family of forms; ``FORMS`` maps each kind of ``sections.RESIDENT_KINDS`` to its
form, ``BASIC_FORM`` is the 个人基本信息表 of the archive's ``basic_info``.
"""

from __future__ import annotations

from .base import Field, Form, FormSection, Range
from .basic import BASIC_FORM
from .children import CHILD_CHECK, NEWBORN_VISIT
from .exams import ELDERLY_CHECK, HEALTH_EXAM
from .followups import DIABETES, HYPERTENSION
from .maternal import POSTPARTUM_42D, POSTPARTUM_VISIT, PRENATAL_FIRST, PRENATAL_FOLLOWUP
from .outpatient import OUTPATIENT
from .tcm import TCM_CONSTITUTION

FORMS: dict[str, Form] = {
    form.kind: form
    for form in (
        HYPERTENSION,
        DIABETES,
        HEALTH_EXAM,
        ELDERLY_CHECK,
        PRENATAL_FIRST,
        PRENATAL_FOLLOWUP,
        POSTPARTUM_VISIT,
        POSTPARTUM_42D,
        NEWBORN_VISIT,
        CHILD_CHECK,
        TCM_CONSTITUTION,
        OUTPATIENT,
    )
}

__all__ = ["BASIC_FORM", "FORMS", "Field", "Form", "FormSection", "Range"]
