"""Where signing in sends a browser: ``next=`` leads to a path on this site, or home.

A real daemon, signed into over HTTP with ``next=`` taken from the login page's query
(as the sign-in redirect writes it) and from the posted form (as a crafted page
could). Every hostile value lands on ``/``; honest paths with queries survive.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote, urlsplit

import pytest

from mailgate.web.redirects import local_path
from tests.support import daemon_running
from tests.web import give_password

PASSWORD = "correct horse battery"
# Where the login page sends on: the form's hidden field, or (signed in) "Continue".
NEXT_ON_PAGE = re.compile(r'(?:name="next" value|class="button" href)="([^"]*)"')

# Each of these, decoded by any browser, proxy or second server, leaves the site.
HOSTILE = [
    "/%09/evil.test/phish",  # the finding: a tab between the slashes
    "/\t/evil.test/phish",
    "\t//evil.test",
    "//evil.test",
    "///evil.test",
    "/\\evil.test",
    "\\\\evil.test",
    "/\\/evil.test",
    "/%2F%2Fevil.test",
    "/%2f/evil.test",
    "/%5cevil.test",
    "/%5C%5Cevil.test",
    "/%252F%252Fevil.test",  # encoded twice
    "/%25252525252F%2Fevil.test",  # encoded more often than any link is
    "https://evil.test",
    "http:evil.test",
    "javascript:alert(1)",
    "evil.test/phish",
    " //evil.test",
    "/\n/evil.test",
    "/\r\n/evil.test",
    "/%0d%0aLocation:%20https://evil.test",
    "/%0a/evil.test",
    "/\x00/evil.test",
    "/\x7f/evil.test",
    "/\u200b/evil.test",  # zero-width space
    "/\u3000/evil.test",  # ideographic space
    "/\u2028/evil.test",  # line separator
    "",
]

# Honest targets, and the Location each leads to (non-ASCII percent-encoded).
HONEST = {
    "/": "/",
    "/board": "/board",
    "/tickets/TCK-20260101-ABCD?tab=x": "/tickets/TCK-20260101-ABCD?tab=x",
    "/tickets?status=open&q=printer%20fire": "/tickets?status=open&q=printer%20fire",
    "/tickets?q=a%2Fb": "/tickets?q=a%2Fb",  # an encoded slash in a query is a search
    "/tickets?q=café": "/tickets?q=caf%C3%A9",
    "/tickets/TCK-20260101-ABCD#m12": "/tickets/TCK-20260101-ABCD#m12",
    "/https://evil.test": "/https://evil.test",  # a path on this site
}


@pytest.fixture
async def daemon(setup):
    setup.sections["web"].update(login_rate_limit="500/1m", login_ip_rate_limit="500/1m")
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    async with daemon_running(setup) as process:
        yield process


async def test_sign_in_never_redirects_off_site(daemon, client, engine):
    await give_password(engine, "alice@example.test", PASSWORD)
    cases = [(value, "/") for value in HOSTILE] + list(HONEST.items())
    for value, expected in cases:
        status, page, _ = await client.get(f"/login?next={quote(value, safe='')}")
        if "\x00" in value:  # refused before any page is made: nowhere to be sent
            assert status == 400, (value, status)
            form = {"email": "alice@example.test", "password": PASSWORD, "next": value}
            assert (await client.post("/login", form))[0] == 400, value
            continue
        assert status == 200, (value, status)
        assert html.unescape(NEXT_ON_PAGE.search(page).group(1)) == expected, value
        form = {"email": "alice@example.test", "password": PASSWORD, "next": value}
        status, body, response = await client.post("/login", form)
        assert status == 303, (value, status, body[:300])
        location = response.headers["Location"]
        assert location == expected, (value, location)
        assert not urlsplit(location).netloc and not urlsplit(location).scheme, value


async def test_the_sign_in_redirect_comes_back_to_the_page(daemon, client, engine):
    await give_password(engine, "alice@example.test", PASSWORD)
    status, _, response = await client.get("/tickets?status=open&q=caf%C3%A9")
    assert status == 303
    back = response.headers["Location"]
    status, page, _ = await client.get(back)
    next_path = html.unescape(NEXT_ON_PAGE.search(page).group(1))
    form = {"email": "alice@example.test", "password": PASSWORD, "next": next_path}
    status, _, response = await client.post("/login", form)
    assert status == 303 and response.headers["Location"] == "/tickets?status=open&q=caf%C3%A9"


@pytest.mark.parametrize("value", [*HOSTILE, None, 7, "/" + "%25" * 50 + "2f"])
def test_local_path_refuses_every_hostile_value(value):
    assert local_path(value) == "/"
