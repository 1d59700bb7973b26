"""End-to-end fixtures: the real application with the WeChat sandbox mounted on its own port.

``live`` binds the port first, so the settings can point WeChat (``api_base_url``,
``open_base_url``) and ``public_base_url`` at the very server that then serves them: the backend
talks to "WeChat" over HTTP, and "WeChat" posts to our ``/wechat``, as in the demo.
``browser`` is headless Chromium through Playwright, for the phone page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from conftest import Live

__all__ = ["Browser", "Live", "as_menu_get", "click_keys"]  # Live (the running app) lives in tests/conftest.py

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"

# --------------------------------------------------------------------------- the menu


def click_keys(buttons: list[dict[str, Any]]) -> list[str]:
    """The CLICK keys of a menu, top-level and sub-buttons, in order."""
    leaves = [sub for b in buttons for sub in (b.get("sub_button") or [b])]
    return [b["key"] for b in leaves if b.get("type") == "click"]


def as_menu_get(buttons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A pushed ``button`` list as menu/get shows it: every leaf with an empty ``sub_button``."""
    return [
        {**b, "sub_button": [{**s, "sub_button": []} for s in b["sub_button"]]}
        if b.get("sub_button")
        else {**b, "sub_button": []}
        for b in buttons
    ]


# --------------------------------------------------------------------------- a browser over HTTP


class Browser:
    """Follows redirects one hop at a time and keeps cookies, as a browser does; records the hops."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.hops: list[tuple[str, str, int]] = []  # (method, url, status)

    async def go(self, url: str, *, method: str = "GET", data: dict[str, str] | None = None) -> httpx.Response:
        for _ in range(10):
            r = await self.client.request(method, url, data=data)
            self.hops.append((method, url, r.status_code))
            if r.status_code not in (301, 302, 303, 307, 308):
                return r
            url = urljoin(url, r.headers["Location"])
            if r.status_code in (301, 302, 303):
                method, data = "GET", None
        raise AssertionError(f"too many redirects: {self.hops}")


@pytest.fixture
async def web() -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=20) as client:
        yield Browser(client)


# --------------------------------------------------------------------------- headless Chromium


def _no_browser(reason: str) -> None:
    if REQUIRE_BROWSER:
        pytest.fail(f"REQUIRE_BROWSER=1, but {reason}", pytrace=False)
    pytest.skip(reason)


def _has_chinese_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    found = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, check=False)
    return bool(found.stdout.strip())


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (the system's ``/usr/bin/chromium``, never a downloaded build).

    Skipped when Chromium, Playwright or a Chinese font is missing, unless ``REQUIRE_BROWSER=1``
    (CI), which makes that a failure.
    """
    if not CHROMIUM.exists():
        _no_browser(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        _no_browser(f"playwright cannot be imported ({exc}); pip install -e '.[test]'")
    if not _has_chinese_font():
        _no_browser("no Chinese font (fc-list :lang=zh is empty); apt-get install fonts-wqy-microhei")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


def console_problems(page: Any) -> list[str]:
    """Errors the page reports while the test runs: script errors and console errors (a
    Content-Security-Policy refusal is one), except the browser's own request for /favicon.ico."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"console: {message.text} at {message.location.get('url')}")

    page.on("console", on_console)
    return problems
