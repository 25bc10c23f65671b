"""Debian's Chromium driven by Python Playwright, for the browser tests.

Playwright's own browser download does not work on these machines; the tests use
``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from tests.support import need

CHROMIUM = Path(os.environ.get("MAILGATE_CHROMIUM", "/usr/bin/chromium"))
# As the machine probe found: quiet, sandbox-free (root), no calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def chromium() -> Path:
    need(CHROMIUM.exists(), f"{CHROMIUM} is missing (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium):
    """A headless Chromium, closed when the test ends."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser):
    """A fresh browser context (no cookies) and a page in it."""
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        yield await context.new_page()
    finally:
        await context.close()
