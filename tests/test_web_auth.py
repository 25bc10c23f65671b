"""Agent sign-in: passwords from the CLI, login links by mail, sessions, CSRF, rate limits."""

from __future__ import annotations

import asyncio
import re
import subprocess

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from mailgate.config import LoadedConfig, parse_config
from mailgate.db.migrate import upgrade
from mailgate.db.models import AgentAccount, OutboxItem
from mailgate.db.session import sessions
from mailgate.outbox.compose import Composer
from mailgate.outbox.templates import MailTemplates
from mailgate.runtime import RuntimeConfig
from mailgate.signing import Signer
from mailgate.web.app import init_app
from mailgate.web.context import WebContext
from tests.support import daemon_running, wait_until
from tests.web import CSRF_INPUT, WebClient, give_password

PASSWORD = "correct horse battery"


@pytest.fixture
async def daemon(setup):
    setup.sections["web"]["login_rate_limit"] = "4/10m"
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.routes[1]["agents"] = ["budi@example.test"]
    setup.agents = [
        {"email": "alice@example.test", "name": "Alice"},
        {"email": "budi@example.test", "name": "Budi"},
        {"email": "root@example.test", "name": "Root", "admin": True},
    ]
    async with daemon_running(setup) as process:
        yield process


def cli(setup, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        setup.command(*args), input=stdin, capture_output=True, text=True, timeout=60
    )


async def test_cli_password_signs_in_and_a_wrong_one_does_not(daemon, client):
    done = await asyncio.to_thread(
        cli, daemon.setup, "agent", "passwd", "Alice@example.test", stdin=PASSWORD + "\n"
    )
    assert done.returncode == 0, done.stderr
    status, body, _ = await client.post(
        "/login", {"email": "alice@example.test", "password": "not it at all"}
    )
    assert status == 401 and "Wrong address or password" in body
    status, _, response = await client.post(
        "/login", {"email": "alice@example.test", "password": PASSWORD, "next": "/board"}
    )
    assert status == 303 and response.headers["Location"] == "/board"
    cookie = response.headers["Set-Cookie"]
    assert "mailgate_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # base_url is http here
    status, body, _ = await client.get("/login")
    assert status == 200 and "You are signed in as Alice (alice@example.test)" in body


async def test_cli_agent_add_prints_the_config_block_for_an_unknown_address(daemon):
    done = await asyncio.to_thread(
        cli, daemon.setup, "agent", "add", "new@example.test", "--name", "Nia", "--admin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert '[[agents]]\nemail = "new@example.test"\nname = "Nia"\nadmin = true' in done.stdout
    refused = await asyncio.to_thread(
        cli, daemon.setup, "agent", "passwd", "new@example.test", stdin=PASSWORD + "\n"
    )
    assert refused.returncode == 1 and "not among the [[agents]]" in refused.stderr
    short = await asyncio.to_thread(
        cli, daemon.setup, "agent", "passwd", "budi@example.test", stdin="short\n"
    )
    assert short.returncode == 1 and "at least 10 characters" in short.stderr


async def test_cli_refuses_passwords_that_are_easy_to_guess(daemon, engine):
    for weak, reason in (
        (" " * 12, "a password cannot be only spaces"),
        ("x" * 12, "a password cannot be one character repeated"),
        ("QwertyUiop", "that password is on the list of the most common ones"),
        ("bismillah123", "that password is on the list of the most common ones"),
        ("Alice@Example.test", "a password cannot be the agent's address"),
    ):
        done = await asyncio.to_thread(
            cli, daemon.setup, "agent", "passwd", "alice@example.test", stdin=weak + "\n"
        )
        assert done.returncode == 1 and f"mailgate: {reason}" in done.stderr, (weak, done.stderr)
    async with sessions(engine)() as session:
        assert await session.get(AgentAccount, "alice@example.test") is None  # nothing stored


async def test_an_address_outside_the_config_cannot_sign_in(daemon, client, engine):
    await give_password(engine, "stranger@example.test", PASSWORD)
    status, _, _ = await client.post(
        "/login", {"email": "stranger@example.test", "password": PASSWORD}
    )
    assert status == 401


async def test_sign_in_is_rate_limited_per_address(daemon, client, engine):
    await give_password(engine, "budi@example.test", PASSWORD)
    for _ in range(4):
        status, _, _ = await client.post("/login", {"email": "budi@example.test", "password": "x"})
        assert status == 401
    status, body, _ = await client.post(
        "/login", {"email": "budi@example.test", "password": PASSWORD}
    )
    assert status == 429 and "Too many sign-in attempts" in body
    other = WebClient(daemon.setup.web_port)  # another address still gets in
    try:
        await give_password(engine, "alice@example.test", PASSWORD)
        await other.sign_in("alice@example.test", PASSWORD)
    finally:
        await other.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_posts_without_a_valid_csrf_token_are_refused(daemon, client, engine):
    await give_password(engine, "alice@example.test", PASSWORD)
    form = {"email": "alice@example.test", "password": PASSWORD}
    status, body, _ = await client.post("/login", form, csrf_from=None)
    assert status == 403 and "security token" in body
    status, _, _ = await client.post("/login", {**form, "csrf": "forged"}, csrf_from=None)
    assert status == 403
    await client.sign_in("alice@example.test", PASSWORD)
    status, _, _ = await client.post("/logout", {}, csrf_from=None)
    assert status == 403
    status, _, response = await client.post("/logout", {}, csrf_from="/login?next=/x")
    assert status == 303 and response.headers["Location"] == "/login"
    status, body, _ = await client.get("/login")
    assert status == 200 and "You are signed in" not in body


async def test_a_login_link_signs_in_once(daemon, client, engine):
    status, body, _ = await client.post("/login/link", {"email": "root@example.test"})
    assert status == 200 and "a sign-in link is on its way" in body
    status, body, _ = await client.post("/login/link", {"email": "nobody@example.test"})
    assert status == 200 and "a sign-in link is on its way" in body  # says nothing more

    async def captured():
        async with sessions(engine)() as session:
            return list(await session.scalars(select(OutboxItem)))

    [mail] = await wait_until(captured, "the login link mail")
    assert mail.recipients == ["root@example.test"] and mail.kind == "login_link"
    path = re.search(rb"http://127\.0\.0\.1:\d+(/login/link/\S+)", mail.raw).group(1).decode()
    status, body, _ = await client.get(path)
    assert status == 200 and "Sign in to mailgate in this browser?" in body  # not used yet
    status, _, response = await client.post(path, {}, csrf_from=path)
    assert status == 303 and "mailgate_session=" in response.headers["Set-Cookie"]
    again = WebClient(daemon.setup.web_port)
    try:
        status, body, _ = await again.post(path, {}, csrf_from="/login")
        assert status == 410 and "expired or was used" in body
    finally:
        await again.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_cookies_are_secure_behind_an_https_base_url(database_url, engine):
    """In process: the app of a daemon whose public address is https."""
    config = f"""
[database]
url = "{database_url}"
[web]
base_url = "https://support.example.test"
secret_key = "test"
[[routes]]
address = "support@example.test"
agents = ["alice@example.test"]
[[agents]]
email = "alice@example.test"
"""
    runtime = RuntimeConfig(LoadedConfig(parse_config(config, "test"), None))
    signer = Signer(b"test")
    composer = Composer(MailTemplates(), signer, runtime.settings.web.base_url)
    await upgrade(engine)
    await give_password(engine, "alice@example.test", PASSWORD)
    app = init_app(WebContext(engine, runtime, signer, composer))
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/login")
        assert "Secure" in page.headers["Set-Cookie"]  # the CSRF seed
        token = CSRF_INPUT.search(await page.text()).group(1)
        form = {"email": "alice@example.test", "password": PASSWORD, "csrf": token}
        # A real browser sends a Secure cookie back over https only; here, by hand.
        seed = {name: morsel.value for name, morsel in page.cookies.items()}
        signed_in = await client.post("/login", data=form, cookies=seed, allow_redirects=False)
        assert signed_in.status == 303
        cookie = signed_in.headers["Set-Cookie"]
        assert "mailgate_session=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
