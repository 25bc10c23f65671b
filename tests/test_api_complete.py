"""The rest of the API: attachment downloads, merge and split, against a running daemon."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import make_msgid

import aiohttp
import pytest

from tests.support import api_get, daemon_running, wait_until
from tests.test_api_write import call, conforms
from tests.test_pipeline import mail, send

TOKEN = "test-token"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": [TOKEN]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    async with daemon_running(setup) as process:
        yield process


def with_attachment(subject: str, filename: str, data: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "Carol Customer <carol@client.test>"
    message["To"] = "support@example.test"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="client.test")
    message.set_content("The invoice is attached.")
    message.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return message.as_bytes()


async def new_tickets(daemon, *raws: bytes) -> list[str]:
    """Mail each of ``raws``; the codes of the tickets, oldest first, once all are there."""
    for raw in raws:
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw)

    async def listed():
        tickets = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
        return [t["code"] for t in reversed(tickets)] if len(tickets) >= len(raws) else None

    return await wait_until(listed, f"{len(raws)} tickets")


async def fetch(daemon, path: str, token: str | None = TOKEN) -> tuple[int, bytes, dict]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{daemon.setup.web_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.read(), dict(response.headers)


async def test_an_attachment_downloads_as_it_was_mailed(daemon):
    name = "Rechnung März.pdf"
    first, other = await new_tickets(
        daemon, with_attachment("Invoice", name, PDF), mail("Something else")
    )
    shown = await api_get(daemon.setup, f"/api/v1/tickets/{first}")
    conforms(shown, "TicketDetail")
    [item] = shown["messages"][0]["attachments"]
    assert item["filename"] == name and item["size"] == len(PDF)
    assert item["url"] == f"/api/v1/tickets/{first}/attachments/{item['id']}"
    status, body, headers = await fetch(daemon, item["url"])
    assert status == 200 and body == PDF
    assert headers["Content-Type"] == "application/pdf"
    disposition = headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Rechnung M_rz.pdf"')
    assert "filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf" in disposition
    assert headers["X-Content-Type-Options"] == "nosniff"
    for path in (
        f"/api/v1/tickets/{other}/attachments/{item['id']}",  # not that ticket's
        f"/api/v1/tickets/{first}/attachments/{item['id'] + 1000}",
        f"/api/v1/tickets/{first}/attachments/x1",
        f"/api/v1/tickets/{first}/attachments/99999999999999999999999",
        f"/api/v1/tickets/TCK-20260101-XXXX/attachments/{item['id']}",
    ):
        status, body, headers = await fetch(daemon, path)
        assert status == 404 and headers["Content-Type"].startswith("application/json"), path
        assert PDF not in body
    status, body, _ = await fetch(daemon, item["url"], token=None)
    assert status == 401 and PDF not in body


async def test_merge_moves_the_thread_and_refuses_what_it_cannot_do(daemon):
    source, target = await new_tickets(daemon, mail("Printer on fire"), mail("Printer again"))
    path = f"/api/v1/tickets/{source}/merge"
    for body, expected in (
        (b"{not json", 400),
        ({}, 422),
        ({"into": target, "colour": "red"}, 422),
        ({"into": 7}, 422),
        ({"into": "\x00"}, 422),
        ({"into": ""}, 422),
        ({"into": " "}, 404),
        ({"into": "TCK-20260101-XXXX"}, 404),
        ({"into": source.lower()}, 409),  # itself
    ):
        status, answer = await call(daemon, "POST", path, body)
        assert status == expected, (body, answer)
        conforms(answer, "Error")
    status, answer = await call(
        daemon, "POST", "/api/v1/tickets/TCK-20260101-XXXX/merge", {"into": target}
    )
    assert status == 404
    status, joined = await call(daemon, "POST", path, {"into": target.lower()})
    assert status == 200, joined
    conforms(joined, "Ticket")
    assert joined["code"] == target and joined["message_count"] == 2
    shown = await api_get(daemon.setup, f"/api/v1/tickets/{target}")
    assert [m["subject"] for m in shown["messages"]] == ["Printer on fire", "Printer again"]
    merged = await api_get(daemon.setup, f"/api/v1/tickets/{source}")
    assert merged["status"] == "Closed" and merged["messages"] == []
    status, answer = await call(daemon, "POST", path, {"into": target})
    assert status == 409 and target in answer["error"]["message"]
    status, answer = await call(daemon, "POST", f"/api/v1/tickets/{target}/merge", {"into": source})
    assert status == 409 and "already merged" in answer["error"]["message"]


async def test_split_moves_a_customer_message_to_a_new_ticket(daemon):
    [code, other] = await new_tickets(daemon, mail("Printer on fire"), mail("Unrelated"))
    follow_up = mail(f"Re: [{code}] Printer on fire", body="And the scanner is broken too.")
    await asyncio.to_thread(send, daemon.setup.smtp_port, follow_up)

    async def two_messages():
        shown = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
        return shown["messages"] if len(shown["messages"]) == 2 else None

    first, second = await wait_until(two_messages, "the follow-up on the ticket")
    [elsewhere] = (await api_get(daemon.setup, f"/api/v1/tickets/{other}"))["messages"]
    path = f"/api/v1/tickets/{code}/split"
    for body, expected in (
        (b"[]", 400),
        ({}, 422),
        ({"message_id": str(second["id"])}, 422),
        ({"message_id": 0}, 422),
        ({"message_id": 2**63}, 422),
        ({"message_id": True}, 422),
        ({"message_id": 2.5}, 422),
        ({"message_id": 1e300}, 422),
        ({"message_id": elsewhere["id"]}, 404),  # another ticket's
        ({"message_id": 10**12}, 404),
    ):
        status, answer = await call(daemon, "POST", path, body)
        assert status == expected, (body, answer)
        conforms(answer, "Error")
    status, new = await call(daemon, "POST", path, {"message_id": float(second["id"])})
    assert status == 201, new
    conforms(new, "Ticket")
    assert new["code"] != code and new["subject"] == second["subject"]
    moved = await api_get(daemon.setup, f"/api/v1/tickets/{new['code']}")
    assert [m["id"] for m in moved["messages"]] == [second["id"]]
    assert "scanner" in moved["messages"][0]["text"]
    left = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
    assert [m["id"] for m in left["messages"]] == [first["id"]]
    status, answer = await call(daemon, "POST", path, {"message_id": first["id"]})
    assert status == 409 and "only message" in answer["error"]["message"]
