"""Opaque public ids: what URLs and APIs show instead of autoincrement keys."""

from __future__ import annotations

import secrets


def new_public_id() -> str:
    """96 random bits, URL-safe (16 characters)."""
    return secrets.token_urlsafe(12)
