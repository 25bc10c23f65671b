"""Canned replies on the web, in the reply box (Chromium) and in the API, against a
running daemon. Alice works the support queue, Budi billing, Root is an admin."""

from __future__ import annotations

import asyncio
import html
import json
import re

import aiohttp
import pytest
from playwright.async_api import expect

from tests.support import MailgateProcess, api_get, wait_until
from tests.test_api_write import conforms
from tests.test_pipeline import mail, send, settled
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
ALICE, BUDI, ROOT = "alice@example.test", "budi@example.test", "root@example.test"
REFUND = (
    "Hello {{ customer.name }}, your refund for {{ ticket.code }} is on its way.\n{{ agent.name }}"
)


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    for agent in (ALICE, BUDI, ROOT):
        await give_password(engine, agent, PASSWORD)
    yield process
    assert await process.stop() == 0


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


async def open_ticket(daemon, engine, subject="Refund please", to="support@example.test") -> str:
    raw = mail(subject, sender="Carol Customer <carol@client.test>", to=to)
    before = len((await api_get(daemon.setup, "/api/v1/tickets"))["tickets"])
    await asyncio.to_thread(send, daemon.setup.smtp_port, raw, [to])
    await settled(engine, before + 1)
    return (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"][0]["code"]


async def create(client: WebClient, name: str, body: str, scope: str):
    return await client.post("/canned", {"name": name, "body": body, "scope": scope}, "/canned")


def listed(page: str) -> dict[str, str]:
    """{name: scope} of the replies the /canned page lists."""
    rows = re.findall(r'<a href="/canned/\d+">([^<]+)</a></td>\s*<td>([^<]+)</td>', page)
    return dict(rows)


def reply_id(page: str, name: str) -> str:
    return re.search(rf'<a href="/canned/(\d+)">{re.escape(name)}</a>', page).group(1)


async def test_agents_keep_their_own_and_their_queues_replies(daemon, signed_in):
    stranger = WebClient(daemon.setup.web_port)
    try:
        status, _, response = await stranger.get("/canned")
        assert (status, response.headers["Location"]) == (303, "/login?next=/canned")
    finally:
        await stranger.close()
    alice, budi, root = await signed_in(ALICE), await signed_in(BUDI), await signed_in(ROOT)
    status, _, response = await create(alice, "Refund", REFUND, "support")
    assert (status, response.headers["Location"]) == (303, "/canned?done=created")
    status, _, _ = await create(alice, "thanks", "Thanks, <b>{{ customer.name }}</b>!", "personal")
    assert status == 303
    _, page, _ = await alice.get("/canned")
    assert listed(page) == {"refund": "shared, support", "thanks": "personal"}
    assert "Thanks, &lt;b&gt;" in page and "<b>{{" not in page  # escaped
    assert '<a href="/canned">Canned replies</a>' in page  # in the agent nav

    # Budi (billing) sees neither, may not open, change or delete them, nor share in support.
    _, page, _ = await budi.get("/canned")
    assert listed(page) == {}
    _, page, _ = await alice.get("/canned")
    refund, thanks = reply_id(page, "refund"), reply_id(page, "thanks")
    for path in (f"/canned/{refund}", f"/canned/{thanks}"):
        assert (await budi.get(path))[0] == 404
        assert (await budi.post(path, {"name": "x", "body": "y"}, "/canned"))[0] == 404
        assert (await budi.post(f"{path}/delete", {}, "/canned"))[0] == 404
    status, page, _ = await create(budi, "mine", "Hi", "support")
    assert status == 422 and "a queue you work in" in page
    assert 'value="mine"' in page  # what was typed stays

    # Root, an admin, keeps every queue's shared replies, never Alice's personal ones.
    _, page, _ = await root.get("/canned")
    assert listed(page) == {"refund": "shared, support"}
    assert (await root.get(f"/canned/{thanks}"))[0] == 404
    form = {"name": "refund", "body": REFUND + "\nRoot was here", "scope": "support"}
    status, _, _ = await root.post(f"/canned/{refund}", form, "/canned")
    assert status == 303
    status, page, _ = await alice.get(f"/canned/{refund}")
    assert status == 200 and "Root was here" in page

    # Mistakes are explained; nothing is saved.
    status, page, _ = await create(alice, "thanks", "Again", "personal")
    assert status == 422 and "there is a canned reply thanks (personal" in html.unescape(page)
    status, page, _ = await create(alice, "phone", "Call {{ customer.phone }}", "personal")
    assert status == 422
    assert "unknown placeholder {{ customer.phone }}" in html.unescape(page)
    status, page, _ = await create(alice, "two words", "Hi", "personal")
    assert status == 422 and "one word" in page
    status, _, _ = await alice.post("/canned", {"name": "x", "body": "y"}, csrf_from=None)
    assert status == 403  # no CSRF token

    status, _, _ = await alice.post(f"/canned/{thanks}/delete", {}, "/canned")
    assert status == 303
    _, page, _ = await alice.get("/canned")
    assert listed(page) == {"refund": "shared, support"}


async def test_the_ticket_page_offers_the_replies_rendered_for_the_ticket(
    daemon, engine, signed_in
):
    code = await open_ticket(daemon, engine)
    alice, budi = await signed_in(ALICE), await signed_in(BUDI)
    await create(alice, "refund", REFUND, "support")
    await create(alice, "link", "<b>See</b> {{ portal_url }}", "personal")
    await create(budi, "invoice", "Your invoice, {{ customer.name }}", "billing")
    _, page, _ = await alice.get(f"/tickets/{code}")
    texts = {
        name: html.unescape(text)
        for name, text in re.findall(r'data-name="([^"]+)" data-text="([^"]*)"', page)
    }
    assert set(texts) == {"link", "refund"}  # not billing's
    assert texts["refund"] == (
        f"Hello Carol Customer, your refund for {code} is on its way.\nAlice"
    )
    assert re.fullmatch(rf"<b>See</b> http://127\.0\.0\.1:\d+/t/{code}\?k=\w+", texts["link"])
    assert 'data-text="&lt;b&gt;See' in page  # escaped in the attribute
    assert '<script src="/static/canned.js" defer></script>' in page


async def test_inserting_a_canned_reply_by_keyboard_and_sending_it(
    daemon, engine, smarthost, signed_in, page
):
    code = await open_ticket(daemon, engine)
    await create(await signed_in(ALICE), "refund", REFUND, "support")
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    await page.goto(f"{base}/tickets/{code}")
    await page.get_by_label("Email").first.fill(ALICE)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("h1 .code")).to_have_text(code)

    box = page.locator("#reply-text")
    await box.fill("Dear customer,\n\n")
    await box.press("Control+End")  # the cursor after the greeting
    search = page.get_by_role("combobox", name="Insert a canned reply")
    await search.focus()
    await page.keyboard.type("ref")
    await expect(page.locator("#canned-options [role=option]:visible")).to_have_text(
        ["refund support"]
    )
    await page.keyboard.press("ArrowDown")  # round to the only option and back
    await page.keyboard.press("Enter")
    expected = f"Hello Carol Customer, your refund for {code} is on its way.\nAlice"
    await expect(box).to_have_value(f"Dear customer,\n\n{expected}")
    await expect(box).to_be_focused()
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.get_by_role("status")).to_have_text("Reply sent to the customer.")

    async def arrived():
        return [m for m in smarthost.messages if "your refund for" in m.raw.decode()]

    [sent] = await wait_until(arrived, "the reply at the smarthost")
    assert sent.rcpt_tos == ("carol@client.test",)
    text = sent.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.startswith(f"Dear customer,\n\n{expected}\n")


async def call(daemon, method: str, path: str, body=None, **params) -> tuple[int, dict | None]:
    url = f"http://127.0.0.1:{daemon.setup.web_port}{path}"
    headers = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers, params=params) as response,
    ):
        return response.status, await response.json() if response.status != 204 else None


async def test_the_api_keeps_and_renders_canned_replies(daemon, engine):
    code = await open_ticket(daemon, engine)
    status, shared = await call(
        daemon,
        "POST",
        "/api/v1/canned-replies",
        {"name": "Refund", "body": REFUND, "queue": "support"},
    )
    assert status == 201, shared
    conforms(shared, "CannedReply")
    assert (shared["name"], shared["scope"], shared["queue"], shared["owner"]) == (
        "refund", "shared", "support", None
    )  # fmt: skip
    personal = {"name": "sig", "body": "-- {{ agent.name }}", "owner": "Budi@Example.test"}
    status, mine = await call(daemon, "POST", "/api/v1/canned-replies", personal)
    assert status == 201 and (mine["scope"], mine["owner"]) == ("personal", BUDI)

    refused = [
        ({"name": "refund", "body": "again", "queue": "support"}, 409, "already"),
        ({"name": "x", "body": "{{ customer.phone }}", "queue": "support"}, 422, "placeholder"),
        ({"name": "x", "body": "Hi", "queue": "support", "owner": ALICE}, 422, "either"),
        ({"name": "x", "body": "Hi"}, 422, "either"),
        ({"name": "x", "body": "Hi", "queue": "sales"}, 422, "no queue"),
        ({"name": "x", "body": "Hi", "owner": "mallory@example.test"}, 422, "owner"),
        ({"name": "two words", "body": "Hi", "queue": "support"}, 422, "name"),
    ]
    for body, expected, words in refused:
        status, answer = await call(daemon, "POST", "/api/v1/canned-replies", body)
        assert (status, words in answer["error"]["message"]) == (expected, True), answer

    status, listing = await call(daemon, "GET", "/api/v1/canned-replies")
    conforms(listing, "CannedReplyList")
    assert [r["name"] for r in listing["canned_replies"]] == ["refund", "sig"]
    status, listing = await call(daemon, "GET", "/api/v1/canned-replies", owner=BUDI)
    assert [r["name"] for r in listing["canned_replies"]] == ["sig"]

    path = f"/api/v1/canned-replies/{shared['id']}"
    status, changed = await call(daemon, "PATCH", path, {"body": "Refunded, {{ customer.email }}."})
    assert status == 200 and changed["body"] == "Refunded, {{ customer.email }}."
    status, answer = await call(daemon, "PATCH", path, {"body": "{{ nope }}"})
    assert status == 422
    assert (await call(daemon, "GET", path))[1]["body"] == changed["body"]

    rendered = f"/api/v1/tickets/{code}/canned-replies/{shared['id']}/rendered"
    status, text = await call(daemon, "GET", rendered, agent=ALICE)
    assert status == 200, text
    conforms(text, "RenderedCannedReply")
    assert text["text"] == "Refunded, carol@client.test."
    others = f"/api/v1/tickets/{code}/canned-replies/{mine['id']}/rendered"
    assert (await call(daemon, "GET", others, agent=ALICE))[0] == 404  # Budi's own
    assert (await call(daemon, "GET", others, agent=BUDI))[1]["text"] == "-- Budi"
    assert (await call(daemon, "GET", rendered, agent="mallory"))[0] == 422

    assert (await call(daemon, "DELETE", path))[0] == 204
    assert (await call(daemon, "GET", path))[0] == 404
    assert (await call(daemon, "DELETE", path))[0] == 404
