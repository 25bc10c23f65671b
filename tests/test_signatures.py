"""Agents' signatures, end to end: from the config and from the profile page, under
replies sent from the web, the API and the agent's mail client; never under notes.

A real daemon, mail out at a real aiosmtpd smarthost sink, SQLite and PostgreSQL;
the browser flow in Chromium.
"""

from __future__ import annotations

import json

import aiohttp
import pytest
from playwright.async_api import expect

from mailgate.actions.signatures import signature_to_add
from mailgate.config import MAX_SIGNATURE, ConfigError, parse_config
from tests.support import api_get, daemon_running, wait_until
from tests.test_agents import ALICE, BOB, CAROL, Desk
from tests.web import WebClient, give_password

PASSWORD = "correct horse battery"
CONFIGURED = "Alice Example\nSupport lead, Example Ltd."
ATTRIBUTION = "On Sun, 22 Nov 2026 at 10:00, Example Support <support@example.test> wrote:"


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = [ALICE, BOB]
    setup.routes[0]["name"] = "Example Support"
    setup.agents = [
        {"email": ALICE, "name": "Alice", "signature": CONFIGURED},
        {"email": BOB, "name": "Bob"},
    ]
    async with daemon_running(setup) as process:
        for agent in (ALICE, BOB):
            await give_password(engine, agent, PASSWORD)
        yield process


@pytest.fixture
async def desk(daemon, smarthost, engine) -> Desk:
    return await Desk(daemon, smarthost, engine).open()


@pytest.fixture
async def signed_in(daemon):
    clients = []

    async def sign_in(email: str) -> WebClient:
        client = WebClient(daemon.setup.web_port)
        clients.append(client)
        await client.sign_in(email, PASSWORD)
        return client

    yield sign_in
    for client in clients:
        await client.close()


async def api_message(desk: Desk, kind: str, text: str, agent: str = ALICE) -> None:
    url = f"http://127.0.0.1:{desk.daemon.setup.web_port}/api/v1/tickets/{desk.code}/messages"
    body = json.dumps({"kind": kind, "text": text, "agent": agent}).encode()
    headers = {"Content-Type": "application/json", "Authorization": "Bearer test-token"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        assert r.status == 201, await r.text()


async def web_message(client: WebClient, desk: Desk, kind: str, text: str) -> None:
    page = f"/tickets/{desk.code}"
    status, body, _ = await client.post(f"{page}/{kind}", {"text": text}, csrf_from=page)
    assert status == 303, body[:300]


async def received(desk: Desk, address: str, marker: str, part: str = "plain") -> str:
    """The text (or ``part="html"``) of the one mail to ``address`` that says
    ``marker`` (waited for)."""

    async def arrived():
        return [
            m for m in desk.smarthost.messages
            if address in m.rcpt_tos and marker in m.message.get_body(("plain",)).get_content()
        ]  # fmt: skip

    [mail] = await wait_until(arrived, f"the mail saying {marker!r} to {address}")
    return mail.message.get_body((part,)).get_content().replace("\r\n", "\n")


def signed_once(text: str, marker: str, signature: str) -> bool:
    """``signature`` is in ``text`` once, under ``marker`` after a "-- " line."""
    return text.count(signature) == 1 and text.index(marker) < text.index(f"-- \n{signature}\n")


async def test_the_configured_signature_is_under_replies_from_web_api_and_mail(desk, signed_in):
    alice = await signed_in(ALICE)
    await web_message(alice, desk, "reply", "Answered on the web.")
    await api_message(desk, "agent", "Answered by a script.")
    await desk.agent_mail("Answered from my mail client.")
    await desk.agent_mail(
        f"My client signs too.\n\n-- \n{CONFIGURED}\n\n{ATTRIBUTION}\n> Printer on fire\n"
    )
    for marker in ("Answered on the web.", "Answered by a script.", "from my mail client"):
        assert signed_once(await received(desk, CAROL, marker), marker, CONFIGURED), marker
    text = await received(desk, CAROL, "My client signs too.")
    assert text.count("Support lead, Example Ltd.") == 1, text  # not added a second time
    markup = await received(desk, CAROL, "Answered by a script.", "html")
    assert markup.count("Alice Example<br>\nSupport lead, Example Ltd.") == 1, markup
    shown = await api_get(desk.daemon.setup, f"/api/v1/tickets/{desk.code}")
    replies = [m["text"] for m in shown["messages"] if m["kind"] == "agent"]
    assert replies[0] == "Answered on the web."  # the thread keeps what the agent wrote


async def test_notes_never_carry_the_signature(desk, signed_in):
    alice = await signed_in(ALICE)
    await web_message(alice, desk, "note", "Web note.")
    await api_message(desk, "note", "Script note.")
    await desk.agent_mail("#note\nMail note.")
    for marker in ("Web note.", "Script note.", "Mail note."):
        assert "Support lead" not in await received(desk, BOB, marker), marker
    await api_message(desk, "agent", "The barrier reply.")
    assert "Support lead" in await received(desk, CAROL, "The barrier reply.")
    to_carol = [m for m in desk.smarthost.messages if CAROL in m.rcpt_tos]
    assert len(to_carol) == 2  # the acknowledgement and the reply: no note reached her


async def test_the_profile_signature_wins_over_the_configured_one(desk, signed_in):
    alice, bob = await signed_in(ALICE), await signed_in(BOB)
    _, page, _ = await bob.get("/profile")
    assert "You have no signature yet." in page
    own = "Bob Builder\nTier 2 <support> & more"
    status, _, response = await bob.post(
        "/profile", {"signature": own.replace("\n", "\r\n"), "action": "save"}, "/profile"
    )
    assert status == 303 and response.headers["Location"] == "/profile?done=saved"
    _, page, _ = await bob.get("/profile")
    assert "Tier 2 &lt;support&gt; &amp; more" in page and "This is your own signature." in page
    await api_message(desk, "agent", "Bob answers.", agent=BOB)
    assert signed_once(await received(desk, CAROL, "Bob answers."), "Bob answers.", own)
    markup = await received(desk, CAROL, "Bob answers.", "html")
    assert "-- <br>\nBob Builder<br>\nTier 2 &lt;support&gt; &amp; more<br>" in markup

    await alice.post("/profile", {"signature": "Alice, on her own", "action": "save"}, "/profile")
    await desk.agent_mail("Alice answers by mail.")
    text = await received(desk, CAROL, "Alice answers by mail.")
    assert "Alice, on her own" in text and "Support lead" not in text
    status, page, _ = await alice.post(
        "/profile", {"signature": "x" * (MAX_SIGNATURE + 1), "action": "save"}, "/profile"
    )
    assert status == 422 and "at most" in page
    await alice.post("/profile", {"signature": "ignored", "action": "default"}, "/profile")
    _, page, _ = await alice.get("/profile")
    assert "set for you in the configuration" in page
    await web_message(alice, desk, "reply", "Alice answers on the web.")
    text = await received(desk, CAROL, "Alice answers on the web.")
    assert signed_once(text, "Alice answers on the web.", CONFIGURED) and "on her own" not in text


async def test_an_agent_sets_the_signature_in_the_browser_and_replies(desk, page):
    base = f"http://127.0.0.1:{desk.daemon.setup.web_port}"
    await page.goto(base + "/login")
    await page.get_by_label("Email").first.fill(BOB)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("link", name="Bob", exact=True).click()
    await expect(page.locator("h1")).to_have_text("Your profile")
    await page.get_by_label("Signature").fill("Bob from the browser\nCall +62 21 555 0100")
    await page.get_by_role("button", name="Save signature").click()
    await expect(page.get_by_role("status")).to_have_text("Your signature is saved.")
    await expect(page.get_by_label("Signature")).to_have_value(
        "Bob from the browser\nCall +62 21 555 0100"
    )
    await page.goto(f"{base}/tickets/{desk.code}")
    await page.locator("form.compose:not(.note) textarea").fill("Sent from Chromium.")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.get_by_role("status")).to_have_text("Reply sent to the customer.")
    text = await received(desk, CAROL, "Sent from Chromium.")
    assert signed_once(text, "Sent from Chromium.", "Bob from the browser\nCall +62 21 555 0100")


def test_the_config_takes_a_signature_of_several_lines_and_refuses_a_huge_one():
    agent = '[[agents]]\nemail = "alice@example.test"\nsignature = """Alice\nTier 2"""\n'
    [alice] = parse_config(agent, "mailgate.toml").agents
    assert alice.signature == "Alice\nTier 2"
    huge = f'[[agents]]\nemail = "alice@example.test"\nsignature = "{"x" * 2001}"\n'
    with pytest.raises(ConfigError) as error:
        parse_config(huge, "/etc/mailgate/mailgate.toml")
    assert "/etc/mailgate/mailgate.toml:3: agents[0].signature:" in str(error.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks.", "Alice\nTier 2"),
        ("Thanks.\n\n-- \nAlice\nTier 2\n", ""),  # the client signed it already
        ("Thanks.\n-- \n  Alice \n\nTier  2", ""),  # spacing aside
        ("Alice\nTier 2\nThanks, that is all.", "Alice\nTier 2"),  # not at the end
        ("Thanks.\n-- \nTier 2", "Alice\nTier 2"),  # only part of it
    ],
)
def test_a_signature_is_added_unless_the_reply_ends_with_it(text, expected):
    assert signature_to_add(text, "\r\nAlice\r\nTier 2\r\n") == expected
    assert signature_to_add(text, " \n") == ""
