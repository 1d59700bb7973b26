"""Resident pages for questions (留言) and answers."""

from __future__ import annotations

routes: list = []
