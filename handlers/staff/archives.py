"""Staff pages: archives (see the package docstring)."""

from __future__ import annotations

routes: list = []
