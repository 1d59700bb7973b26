"""Privacy policy (DESIGN.md): pure functions, no I/O, no resident-facing text.

* **Labels**, as HL7 DS4P does: at import every record, and every sensitive entry of the 个人基本信息表,
  gets a :class:`Label` — confidentiality ``N``/``R`` and tags ``PSY``, ``TB`` (local), ``HIV``. Residents
  see only ``N``. What cannot be classified (unknown record kind, unreadable ICD-10 code, unknown form
  code or screening result) fails closed: ``R`` with no tag, :data:`RESTRICTED` (labels.py, over the
  code and text classification in sensitivity.py).
* **Visibility** of a whole archive, with a machine reason for staff: :func:`visibility` (visibility.py).
* **Masks** for identifiers on screens and in logs: :func:`mask_id_number` and friends (masks.py).
"""

from ..codes import RECORD_KINDS
from .labels import NORMAL, RESTRICTED, Label, label_basic_info, label_record, redact_basic_info, redact_payload
from .masks import mask_address, mask_id_number, mask_name, mask_phone
from .sensitivity import (
    DEFAULT_POLICY,
    HIV,
    PSY,
    SENSITIVITIES,
    TB,
    UNPARSEABLE,
    archive_sensitivity,
    check_policy,
    code_sensitivity,
    codes_sensitivity,
    normalise_icd10,
    text_sensitivity,
)
from .visibility import (
    KEY_PROGRAMMES,
    REASONS,
    SENSITIVE_PROGRAMMES,
    Decision,
    VisibilityInput,
    age_on,
    in_key_population,
    visibility,
)

__all__ = [
    "DEFAULT_POLICY",
    "HIV",
    "KEY_PROGRAMMES",
    "NORMAL",
    "PSY",
    "REASONS",
    "RECORD_KINDS",
    "RESTRICTED",
    "SENSITIVE_PROGRAMMES",
    "SENSITIVITIES",
    "TB",
    "UNPARSEABLE",
    "Decision",
    "Label",
    "VisibilityInput",
    "age_on",
    "archive_sensitivity",
    "check_policy",
    "code_sensitivity",
    "codes_sensitivity",
    "in_key_population",
    "label_basic_info",
    "label_record",
    "mask_address",
    "mask_id_number",
    "mask_name",
    "mask_phone",
    "normalise_icd10",
    "redact_basic_info",
    "redact_payload",
    "text_sensitivity",
    "visibility",
]
