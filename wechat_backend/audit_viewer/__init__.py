"""The audit viewer of the 工作台: filters (``filters``, pure), a row as shown and its CSV
(``lines``, pure), and the scoped queries (``service``)."""

from __future__ import annotations

from .filters import ACTION_LABELS, AuditFilters, parse_filters
from .lines import AuditLine
from .service import AuditExport, AuditPage, AuditViewer, Looker

__all__ = [
    "ACTION_LABELS",
    "AuditExport",
    "AuditFilters",
    "AuditLine",
    "AuditPage",
    "AuditViewer",
    "Looker",
    "parse_filters",
]
