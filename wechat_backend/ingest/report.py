"""What an import did: counts, the first rejected lines with their reasons, and, when asked for
(the HTTP API), every line's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_KEPT_ERRORS = 200


@dataclass
class ImportReport:
    lines: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # the first MAX_KEPT_ERRORS
    seconds: float = 0.0
    # kind -> payload key the field dictionary does not know (not shown to residents) -> records,
    # e.g. {"hypertension_followup": {"foo_bar": 3}}; kinds residents never see are not counted
    unknown_keys: dict[str, dict[str, int]] = field(default_factory=dict)
    # line number -> inserted/updated/unchanged/rejected, when asked for (the HTTP API answers with it)
    statuses: dict[int, str] | None = None
    reasons: dict[int, str] = field(default_factory=dict)  # with statuses: every rejected line's reason

    def reject(self, line_no: int, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append((line_no, reason))
        if self.statuses is not None:
            self.statuses[line_no] = "rejected"
            self.reasons[line_no] = reason

    def add_unknown(self, counts: dict[str, dict[str, int]]) -> None:
        for kind, paths in counts.items():
            mine = self.unknown_keys.setdefault(kind, {})
            for path, n in paths.items():
                mine[path] = mine.get(path, 0) + n

    @property
    def exit_code(self) -> int:
        return 1 if self.rejected else 0


@dataclass
class Tally:
    """The counts of a batch, and each line's outcome."""

    counts: dict[str, int]
    lines: dict[int, str]

    def add(self, no: int, status: str) -> None:
        self.counts[status] += 1
        self.lines[no] = status
