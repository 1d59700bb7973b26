"""Staff pages: counties (see the package docstring)."""

from __future__ import annotations

routes: list = []
