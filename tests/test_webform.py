"""The public web form /new: a request becomes the same ticket and acknowledgement as a
mail; a bot filling the honeypot is told "thank you" and nothing is stored."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support import api_get, daemon_running, journal_entries, wait_until
from tests.test_portal import wait_for_mail


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["web"]["form_rate_limit"] = "2/1h"
    setup.sections["web"]["form_ip_rate_limit"] = "4/1h"
    setup.sections["smtp"]["max_message_bytes"] = 40_000
    async with daemon_running(setup) as process:
        yield process


def url(daemon, path: str) -> str:
    return f"http://127.0.0.1:{daemon.setup.web_port}{path}"


async def only_ticket(daemon) -> dict:
    async def listed():
        return (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]

    [ticket] = await wait_until(listed, "a ticket from the web form")
    return await api_get(daemon.setup, f"/api/v1/tickets/{ticket['code']}")


def request_fields(csrf: str, **changes: str) -> dict[str, str]:
    fields = {
        "csrf": csrf,
        "name": "Dewi Lestari",
        "email": "dewi@client.test",
        "subject": "Cannot log in",
        "message": "The login page says my password is wrong.",
    }
    return {**fields, **changes}


async def test_web_form_makes_a_ticket_and_a_confirmation_mail(daemon, smarthost, page, tmp_path):
    await page.goto(url(daemon, "/new"))
    await page.fill("#name", "Dewi Lestari")
    await page.fill("#email", "dewi@client.test")
    await page.fill("#subject", "Cannot log in")
    await page.fill("#message", "The login page says my password is wrong.")
    screenshot = tmp_path / "error.png"
    screenshot.write_bytes(b"\x89PNG\r\n\x1a\n a screenshot")
    await page.set_input_files("#files", str(screenshot))
    await page.click("button[type=submit]")
    assert "dewi@client.test" in await page.locator(".flash").inner_text()

    ticket = await only_ticket(daemon)
    assert ticket["subject"] == "Cannot log in" and ticket["queue"] == "support"
    assert ticket["customer"] == {"name": "Dewi Lestari", "email": "dewi@client.test"}
    [message] = ticket["messages"]
    assert message["text"].strip() == "The login page says my password is wrong."
    assert [a["filename"] for a in message["attachments"]] == ["error.png"]
    [confirmation] = await wait_for_mail(smarthost, "dewi@client.test", 1)
    assert confirmation.message["Subject"] == f"[{ticket['code']}] Cannot log in"
    assert f"/t/{ticket['code']}?k=" in confirmation.message.get_content()


async def test_a_bot_filling_the_honeypot_gets_thanks_and_stores_nothing(daemon, page, engine):
    await page.goto(url(daemon, "/new"))
    await page.fill("#name", "Bot")
    await page.fill("#email", "bot@spam.test")
    await page.fill("#subject", "Cheap pills")
    await page.fill("#message", "Buy now")
    await page.locator("#website").fill("http://spam.test", force=True)
    await page.click("button[type=submit]")
    assert "bot@spam.test" in await page.locator(".flash").inner_text()
    assert await journal_entries(engine) == []


async def submit(client, fields: dict[str, str], files=(), path: str = "/new"):
    """POST the form as a browser does (multipart); (status, page)."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for filename, data in files:
        form.add_field("files", data, filename=filename, content_type="application/octet-stream")
    status, page, _ = await client.post(path, form, csrf_from=None)
    return status, page


async def test_errors_are_clear_and_keep_what_was_typed(client, engine):
    csrf = await client.csrf("/new")
    bad = request_fields(csrf, email="not an address", subject="", message="Keep this text")
    status, page = await submit(client, bad)
    assert status == 400
    assert "valid email address" in page and "Please give a subject" in page
    assert 'value="Dewi Lestari"' in page and "Keep this text</textarea>" in page
    status, page = await submit(client, request_fields("1.abcdef"))
    assert status == 400 and "expired" in page
    status, page = await submit(client, request_fields(csrf), [("big.bin", b"x" * 40_000)])
    assert status == 400 and "too large" in page and 'value="Cannot log in"' in page
    assert await journal_entries(engine) == []


async def test_rate_limits_per_address_and_per_ip(client, engine):
    csrf = await client.csrf("/new")
    for _ in range(2):
        assert (await submit(client, request_fields(csrf)))[0] == 200
    status, page = await submit(client, request_fields(csrf))
    assert status == 400 and "Too many requests" in page
    other = await submit(client, request_fields(csrf, email="eko@client.test"))
    assert other[0] == 200  # another address; the IP has used 3 of 4
    third = await submit(client, request_fields(csrf, email="fajar@client.test"))
    assert third[0] == 200
    status, page = await submit(client, request_fields(csrf, email="gita@client.test"))
    assert status == 400 and "Too many requests" in page
    assert len(await journal_entries(engine)) == 4


async def test_to_chooses_one_of_our_routes_and_its_language(daemon, client):
    status, _, _ = await client.get("/new?to=nobody@example.test")
    assert status == 404
    billing = "/new?to=billing@example.test"
    status, page, _ = await client.get(billing)
    assert status == 200 and "Hubungi dukungan" in page
    status, page = await submit(client, request_fields(await client.csrf(billing)), path=billing)
    assert status == 200 and "Permintaan diterima" in page
    ticket = await only_ticket(daemon)
    assert ticket["queue"] == "billing" and ticket["tags"] == ["billing"]
