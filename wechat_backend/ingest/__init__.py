"""Archives and service records from the upstream public-health system."""

from .lines import PROGRAMMES, RECORD_KINDS, LineError, parse_line
from .service import ImportReport, IngestService

__all__ = ["PROGRAMMES", "RECORD_KINDS", "ImportReport", "IngestService", "LineError", "parse_line"]
