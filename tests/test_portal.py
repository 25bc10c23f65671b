"""The customer portal: the link in the acknowledgement, the public thread, replies.

A real daemon fed through its SMTP port, the acknowledgement caught by the smarthost
sink, the page driven by Chromium (and by plain HTTP for the error cases).
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Message, Ticket
from mailgate.signing import Signer
from tests.support import api_get, daemon_running, wait_until
from tests.test_pipeline import mail, send

PORTAL_LINK = re.compile(r"http://127\.0\.0\.1:\d+/t/([A-Z0-9-]+)\?k=([a-z0-9]+)")


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    async with daemon_running(setup) as process:
        yield process


async def acknowledged(daemon, smarthost, to="support@example.test") -> tuple[str, str]:
    """Mail a new request; the ticket code and the portal link of its acknowledgement."""
    before = len(smarthost.messages)
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire", to=to), [to])
    await smarthost.wait_for(before + 1)

    async def ack():
        for received in smarthost.messages[before:]:
            if received.rcpt_tos == ("carol@client.test",):
                return received
        return None

    found = PORTAL_LINK.search((await wait_until(ack, "the acknowledgement")).message.get_content())
    assert found, "the acknowledgement has no portal link"
    return found.group(1), found.group(0).removeprefix(f"http://127.0.0.1:{daemon.setup.web_port}")


async def thread(daemon, code: str) -> list[dict]:
    return (await api_get(daemon.setup, f"/api/v1/tickets/{code}"))["messages"]


async def test_portal_link_shows_the_thread_and_takes_a_reply(daemon, smarthost, page, tmp_path):
    code, link = await acknowledged(daemon, smarthost)
    base = f"http://127.0.0.1:{daemon.setup.web_port}"
    response = await page.goto(base + link)
    assert response.status == 200
    assert code in await page.locator("h1").inner_text()
    assert await page.locator("ol.thread > li").count() == 1
    assert "my printer is on fire" in await page.locator("ol.thread").inner_text()

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    await page.fill("#text", "Here is a photo of the printer.")
    await page.set_input_files("#files", str(photo))
    await page.click("button[type=submit]")
    await page.wait_for_url(re.compile(r"sent=1"))
    assert "reply was received" in await page.locator(".flash").inner_text()

    async def replied():
        messages = await thread(daemon, code)
        return messages if len(messages) == 2 else None

    _, reply = await wait_until(replied, "the portal reply on the ticket")
    assert reply["kind"] == "customer" and reply["from"] == "carol@client.test"
    assert reply["text"].strip() == "Here is a photo of the printer."
    assert [a["filename"] for a in reply["attachments"]] == ["photo.png"]
    await page.reload()
    assert await page.locator("ol.thread > li").count() == 2
    assert "photo.png" in await page.locator("ol.thread > li").nth(1).inner_text()

    forged = link[:-4] + ("aaaa" if not link.endswith("aaaa") else "bbbb")
    response = await page.goto(base + forged)
    assert response.status == 404
    assert "There is no such page" in await page.locator("main").inner_text()


async def test_a_portal_reply_is_threaded_like_a_mail_reply(daemon, smarthost, engine, client):
    code, link = await acknowledged(daemon, smarthost)
    fields = {"csrf": await client.csrf(link), "text": "Still burning."}
    status, _, response = await client.post(link, fields, csrf_from=None)
    assert status == 303 and "sent=1" in response.headers["Location"]
    # The agent is notified of the reply, as for a reply by mail.
    [notification] = await wait_for_mail(smarthost, "alice@example.test", 2)
    assert notification.message["Subject"].startswith(f"[{code}]")
    assert "Still burning." in notification.message.get_content()
    async with AsyncSession(engine) as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        [_, reply] = await session.scalars(
            select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        )
    assert reply.to_addrs == ["support@example.test"] and reply.subject.endswith("Printer on fire")


async def wait_for_mail(smarthost, address: str, count: int) -> list:
    async def arrived():
        found = [m for m in smarthost.messages if address in m.rcpt_tos]
        return found[count - 1 :] if len(found) >= count else None

    return await wait_until(arrived, f"{count} mails to {address}")


async def test_wrong_missing_or_unknown_links_are_404(daemon, smarthost, client):
    code, _ = await acknowledged(daemon, smarthost)
    other = "TCK-20260101-ABCD"
    stranger = Signer(b"test-secret-key").portal_token(other)
    for path in (
        f"/t/{code}",
        f"/t/{code}?k=",
        f"/t/{code}?k=0123456789abcdef",
        f"/t/{other}?k={stranger}",
    ):
        status, body, _ = await client.get(path)
        assert status == 404 and "There is no such page" in body, path
    status, _, _ = await client.post(f"/t/{code}?k=0123456789abcdef", {"text": "hi"}, None)
    assert status == 404
    assert len(await thread(daemon, code)) == 1


async def test_thread_hides_notes_and_speaks_the_route_locale(daemon, smarthost, engine, client):
    code, link = await acknowledged(daemon, smarthost, to="billing@example.test")
    async with AsyncSession(engine) as session, session.begin():
        ticket = await session.scalar(select(Ticket).where(Ticket.code == code))
        for kind, text in (("note", "internal: refund is fine"), ("agent", "We refunded you.")):
            session.add(
                Message(
                    ticket_id=ticket.id,
                    kind=kind,
                    message_id=f"<{kind}@example.test>",
                    text=text,
                    created_at=datetime.now(UTC),
                )
            )
    status, page, _ = await client.get(link)
    assert status == 200
    assert "We refunded you." in page and "refund is fine" not in page
    assert "Tambahkan balasan" in page and 'lang="id"' in page


async def test_bad_replies_get_clear_errors_and_keep_the_text(daemon, smarthost, client):
    code, link = await acknowledged(daemon, smarthost)
    csrf = await client.csrf(link)
    status, page, _ = await client.post(link, {"csrf": csrf, "text": "   "}, csrf_from=None)
    assert status == 400 and "Please write a reply" in page
    forged = {"csrf": "forged", "text": "Keep me, please"}
    status, page, _ = await client.post(link, forged, csrf_from=None)
    assert status == 400 and "expired" in page
    assert "Keep me, please</textarea>" in page
    assert len(await thread(daemon, code)) == 1
