"""Sign-in, web-form and portal limits hold exactly under concurrent requests.

Each test fires 40 requests at a running daemon at once, over real HTTP, and counts
what got through: exactly the configured limit, not one more.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections import Counter

import aiohttp
import pytest
from sqlalchemy import select

from mailgate.db.models import Ticket
from mailgate.signing import Signer
from tests.support import MailgateSetup, daemon_running, journal_entries, wait_until

CONCURRENT = 40
PORTAL_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
async def daemon(setup):
    # The default lock wait: on a loaded machine 40 requests at once can queue for
    # SQLite's write lock longer than the tests' usual 3 seconds.
    setup.sections["database"]["write_timeout_seconds"] = 10.0
    setup.sections["web"] |= {
        "login_rate_limit": "10/15m",
        "login_ip_rate_limit": "100/15m",
        "form_rate_limit": "5/1h",
        "form_ip_rate_limit": "8/1h",
    }
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    async with daemon_running(setup) as process:
        yield process


async def all_at_once(client, path: str, fields: dict[str, str], ports=()) -> list[int]:
    """POST ``fields`` (multipart, as a browser sends a form with files) to ``path``
    ``CONCURRENT`` times at once, to the client's daemon or spread over the daemons
    on ``ports``; the statuses."""
    bases = [f"http://127.0.0.1:{port}" for port in ports] or [client.base]

    async def post(base: str) -> int:
        form = aiohttp.FormData()
        for name, value in fields.items():
            form.add_field(name, value)
        async with client.http.post(base + path, data=form, allow_redirects=False) as response:
            await response.read()
            return response.status

    posts = (post(bases[n % len(bases)]) for n in range(CONCURRENT))
    return list(await asyncio.gather(*posts))


async def test_concurrent_wrong_passwords_get_exactly_the_limit(daemon, client):
    fields = {"email": "alice@example.test", "password": "wrong", "csrf": await client.csrf()}
    statuses = await all_at_once(client, "/login", fields)
    assert Counter(statuses) == {401: 10, 429: CONCURRENT - 10}


async def test_two_daemons_on_one_database_share_the_limit(daemon, client, tmp_path):
    """Two nodes (on SQLite: two processes on one file) count the same attempts."""
    other = MailgateSetup(tmp_path / "other", daemon.setup.database_url)
    own = {"listen", "base_url"}  # the other daemon's own web port
    for name in ("database", "web"):
        mine = daemon.setup.sections[name].items()
        other.sections[name] |= {key: value for key, value in mine if key not in own}
    other.routes, other.agents = daemon.setup.routes, daemon.setup.agents
    other.directory.mkdir()
    async with daemon_running(other):
        fields = {"email": "alice@example.test", "password": "wrong", "csrf": await client.csrf()}
        ports = (daemon.setup.web_port, other.web_port)
        statuses = await all_at_once(client, "/login", fields, ports)
    assert Counter(statuses) == {401: 10, 429: CONCURRENT - 10}


async def test_concurrent_web_forms_and_portal_replies_get_exactly_the_limits(
    daemon, client, engine
):
    """5 requests per address and 8 per client, shared by the form and the portal."""
    fields = {
        "csrf": await client.csrf("/new"),
        "name": "Dewi Lestari",
        "email": "dewi@client.test",
        "subject": "Cannot log in",
        "message": "The login page says my password is wrong.",
    }
    statuses = await all_at_once(client, "/new", fields)
    assert Counter(statuses) == {200: 5, 400: CONCURRENT - 5}
    assert len(await journal_entries(engine)) == 5

    code = await wait_until(lambda: ticket_code(engine), "a ticket from the web form")
    portal = f"/t/{code}?k={Signer(b'test-secret-key').portal_token(code)}"
    _, page, _ = await client.get(portal)
    reply = {"csrf": html.unescape(PORTAL_CSRF.search(page).group(1)), "text": "Any news?"}
    statuses = await all_at_once(client, portal, reply)
    assert Counter(statuses) == {303: 3, 400: CONCURRENT - 3}
    assert len(await journal_entries(engine)) == 8


async def ticket_code(engine) -> str | None:
    async with engine.connect() as connection:
        return await connection.scalar(select(Ticket.code).limit(1))
