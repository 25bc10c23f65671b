"""What customers see on the portal and the web form: attachments they can download
through their link, the team's name, the new ticket's code, and files to choose again."""

from __future__ import annotations

import asyncio
import html
import re

import aiohttp
import pytest

from mailgate.signing import Signer
from tests.support import MailgateProcess, api_get, wait_until
from tests.test_api_complete import PDF, with_attachment
from tests.test_pipeline import mail, send
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
SIGNER = Signer(b"test-secret-key")  # the key of every test config
LOG = b"2026-11-22 printer: paper jam\n" * 50
NOTE = b"internal only: the supplier's price list\n"
FILE_LINK = re.compile(r'<a class="badge" href="(/t/[^"]+)" download>([^<]+)</a>')
REFRESH = re.compile(r'<meta http-equiv="refresh" content="\d+;url=([^"]+)">')


@pytest.fixture
async def daemon(setup, engine):
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["web"]["team_name"] = "Acme Help"
    setup.routes[1]["team_name"] = "Tim Penagihan Acme"
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    await give_password(engine, "alice@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def client(daemon):
    web = WebClient(daemon.setup.web_port)
    yield web
    await web.close()


def portal(code: str, path: str = "") -> str:
    return f"/t/{code}{path}?k={SIGNER.portal_token(code)}"


async def tickets(daemon, count: int) -> list[str]:
    async def listed():
        found = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
        return [t["code"] for t in reversed(found)] if len(found) == count else None

    return await wait_until(listed, f"{count} tickets")


async def body_of(client: WebClient, path: str) -> tuple[int, bytes]:
    async with client.http.get(client.base + path, allow_redirects=False) as response:
        return response.status, await response.read()


async def test_portal_lists_and_serves_the_public_attachments(daemon, client):
    await asyncio.to_thread(
        send, daemon.setup.smtp_port, with_attachment("Invoice", "invoice.pdf", PDF)
    )
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Another thing"))
    code, other = await tickets(daemon, 2)
    alice = WebClient(daemon.setup.web_port)
    try:
        await alice.sign_in("alice@example.test", PASSWORD)
        page = f"/tickets/{code}"
        for action, name, data in (("reply", "printer.log", LOG), ("note", "prices.txt", NOTE)):
            form = aiohttp.FormData()
            form.add_field("text", f"A {action} with a file.")
            form.add_field("files", data, filename=name, content_type="text/plain")
            status, _, _ = await alice.post(f"{page}/{action}", form, csrf_from=page)
            assert status == 303, action
    finally:
        await alice.close()
    status, shown, _ = await client.get(portal(code))
    assert status == 200
    links = {name: html.unescape(href) for href, name in FILE_LINK.findall(shown)}
    assert set(links) == {"invoice.pdf", "printer.log"}  # never the note's file
    for name, expected in (("invoice.pdf", PDF), ("printer.log", LOG)):
        status, data = await body_of(client, links[name])
        assert status == 200 and data == expected, name
    detail = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
    note_file = next(
        a["id"] for m in detail["messages"] if m["kind"] == "note" for a in m["attachments"]
    )
    invoice = links["invoice.pdf"].split("/attachments/")[1].split("?")[0]
    for path in (
        portal(code, f"/attachments/{note_file}"),  # a note's: not public
        portal(other, f"/attachments/{invoice}"),  # not that link's ticket
        f"/t/{code}/attachments/{invoice}?k=wrong",
        f"/t/{code}/attachments/{invoice}",
        portal(code, "/attachments/x"),
    ):
        status, data = await body_of(client, path)
        assert status == 404 and data not in (PDF, NOTE), path


async def test_team_name_heads_the_portal_and_the_form(daemon, client):
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire"))
    await asyncio.to_thread(
        send,
        daemon.setup.smtp_port,
        mail("Tagihan", to="billing@example.test"),
        ["billing@example.test"],
    )
    support, billing = await tickets(daemon, 2)
    for path, team in (
        (portal(support), "Acme Help"),
        (portal(billing), "Tim Penagihan Acme"),
        ("/new", "Acme Help"),
        ("/new?to=billing@example.test", "Tim Penagihan Acme"),
    ):
        status, page, _ = await client.get(path)
        assert status == 200, path
        brand = re.search(r'<a class="brand" href="[^"]*">([^<]*)</a>', page).group(1)
        assert brand == team, path
        assert f"· {team}</title>" in page, path


async def test_the_confirmation_names_the_new_ticket(daemon, client):
    fields = {
        "csrf": await client.csrf("/new?to=billing@example.test"),
        "name": "Dewi Lestari",
        "email": "dewi@client.test",
        "subject": "Tagihan ganda",
        "message": "Saya ditagih dua kali.",
    }
    status, page, _ = await client.post("/new?to=billing@example.test", fields, csrf_from=None)
    assert status == 200 and "dewi@client.test" in page

    shown = page
    if "ticket-code" not in page:  # the pipeline has not made the ticket yet
        assert "Kode tiket Anda akan tampil di sini" in page
        again = html.unescape(REFRESH.search(page).group(1))

        async def confirmed():
            _, shown, _ = await client.get(again)
            return shown if "ticket-code" in shown else None

        shown = await wait_until(confirmed, "the confirmation with the ticket code")
    [code] = await tickets(daemon, 1)
    assert f'Kode tiket Anda: <strong class="code">{code}</strong>' in shown
    assert "Tim Penagihan Acme" in shown
    status, _, _ = await client.get("/new/done?r=1.notthemac")
    assert status == 404
    status, _, _ = await client.get(f"/new/done?r=2.{SIGNER.sign('new-done', '2')}")
    assert status == 404  # signed, but no such request


async def test_the_confirmation_in_chromium(daemon, page):
    await page.goto(f"http://127.0.0.1:{daemon.setup.web_port}/new")
    await page.fill("#name", "Dewi Lestari")
    await page.fill("#email", "dewi@client.test")
    await page.fill("#subject", "Cannot log in")
    await page.fill("#message", "The login page says my password is wrong.")
    await page.click("button[type=submit]")
    code = page.locator(".ticket-code .code")
    await code.wait_for()
    [made] = await tickets(daemon, 1)
    assert await code.inner_text() == made


async def test_a_refused_form_asks_for_the_files_again(daemon, client):
    form = aiohttp.FormData()
    for name, value in (("name", "Dewi"), ("email", "dewi@client.test"), ("subject", "")):
        form.add_field(name, value)
    form.add_field("message", "See the files.")
    form.add_field("csrf", await client.csrf("/new"))
    form.add_field("files", b"one", filename="screen.png", content_type="image/png")
    form.add_field("files", b"two", filename="log.txt", content_type="text/plain")
    status, page, _ = await client.post("/new", form, csrf_from=None)
    assert status == 400 and "Please give a subject." in page
    assert "The files you chose were not sent (screen.png, log.txt)" in page
    assert "choose them again" in page

    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire"))
    [code] = await tickets(daemon, 1)
    reply = aiohttp.FormData()
    reply.add_field("csrf", "expired")
    reply.add_field("text", "Here it is")
    reply.add_field("files", b"three", filename="photo.jpg", content_type="image/jpeg")
    status, page, _ = await client.post(portal(code), reply, csrf_from=None)
    assert status == 400 and "(photo.jpg)" in page
