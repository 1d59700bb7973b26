"""Visibility of a whole archive to its resident, with a machine reason for staff: :func:`visibility`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .sensitivity import _PROGRAMME_TAGS

KEY_PROGRAMMES = frozenset({"hypertension", "diabetes"})
SENSITIVE_PROGRAMMES = frozenset(_PROGRAMME_TAGS)
# The order visibility() checks in; the first failing check is the reason.
# fmt: off
REASONS = ("county_closed", "status_closed", "sensitive_programme", "status_lost", "not_opened",
           "not_key_population")
# fmt: on


@dataclass(frozen=True, kw_only=True)
class VisibilityInput:
    """What decides whether an archive is shown. ``today`` is the Asia/Shanghai date.
    ``pregnant_or_postpartum`` None (the default) means: in the ``maternal`` programme."""

    county_open: bool
    phase: str  # "key_populations" | "all"
    open_to_resident: bool
    status: str  # "normal" | "lost" | "closed"
    birth_date: date
    programmes: frozenset[str]
    today: date
    pregnant_or_postpartum: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "programmes", frozenset(self.programmes))

    @property
    def is_pregnant_or_postpartum(self) -> bool:
        explicit = self.pregnant_or_postpartum
        return "maternal" in self.programmes if explicit is None else explicit


@dataclass(frozen=True)
class Decision:
    visible: bool
    reason: str  # "ok" or one of REASONS


def age_on(birth_date: date, today: date) -> int:
    """Completed years (周岁). Someone born on 29 February gains a year on 1 March in common years."""
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def in_key_population(v: VisibilityInput) -> bool:
    """65 or older, hypertension or type-2 diabetes managed, pregnant/postpartum, or under 7."""
    age = age_on(v.birth_date, v.today)
    return age >= 65 or 0 <= age < 7 or bool(v.programmes & KEY_PROGRAMMES) or v.is_pregnant_or_postpartum


def visibility(v: VisibilityInput) -> Decision:
    """Whether the resident may see the archive, and the first reason (in :data:`REASONS` order) if not.

    County-wide and terminal reasons come first, so a closed county or a closed archive never says
    "sensitive_programme" to staff; the sensitive programme comes before the reasons staff or time
    can lift (失访, the per-archive switch, the rollout phase), because it would still hide the
    archive after they are lifted. Any status but normal/lost counts as closed; any phase but
    ``all`` counts as ``key_populations``.
    """
    checks = (
        ("county_closed", v.county_open),
        ("status_closed", v.status in ("normal", "lost")),
        ("sensitive_programme", not v.programmes & SENSITIVE_PROGRAMMES),
        ("status_lost", v.status == "normal"),
        ("not_opened", v.open_to_resident),
        ("not_key_population", v.phase == "all" or in_key_population(v)),
    )
    for reason, passed in checks:
        if not passed:
            return Decision(False, reason)
    return Decision(True, "ok")
