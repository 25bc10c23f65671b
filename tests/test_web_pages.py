"""What every page shares: the stylesheet and the security headers."""

from __future__ import annotations

import asyncio
import urllib.request

import pytest

from tests.support import daemon_running


@pytest.fixture
async def daemon(setup):
    async with daemon_running(setup) as process:
        yield process


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_responses_carry_security_headers_and_the_stylesheet_is_served(daemon):
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    for path in ("/healthz", "/static/mailgate.css"):
        status, headers, body = await asyncio.to_thread(fetch, base + path)
        assert status == 200
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "unsafe-inline" not in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Type"].startswith("text/css") and b"--accent" in body


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_chromium_renders_the_stylesheet(daemon, page):
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    response = await page.goto(base + "/static/mailgate.css")
    assert response.status == 200
    assert "--accent" in await page.content()
