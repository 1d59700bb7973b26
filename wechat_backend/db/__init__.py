"""Storage: models, the engine/session factory, and Alembic migrations."""

from .engine import create_engine, is_sqlite, read_session_factory, session_factory
from .migrate import current_revision, upgrade, upgrade_url

__all__ = [
    "create_engine",
    "current_revision",
    "is_sqlite",
    "read_session_factory",
    "session_factory",
    "upgrade",
    "upgrade_url",
]
