"""The public web form /new: a request becomes the same ticket and acknowledgement as a
mail; a bot filling the honeypot is told "thank you" and nothing is stored."""

from __future__ import annotations

import pytest

from tests.support import MailgateProcess, api_get, journal_entries, wait_until
from tests.test_portal import wait_for_mail
from tests.webclient import get, post_form


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["web"]["form_rate_limit"] = "2/1h"
    setup.sections["web"]["form_ip_rate_limit"] = "4/1h"
    setup.sections["smtp"]["max_message_bytes"] = 40_000
    process = MailgateProcess(setup)
    await process.start()
    yield process
    assert await process.stop() == 0


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


async def test_errors_are_clear_and_keep_what_was_typed(daemon, engine):
    form = await get(url(daemon, "/new"))
    bad = request_fields(form.csrf, email="not an address", subject="", message="Keep this text")
    page = await post_form(url(daemon, "/new"), bad)
    assert page.status == 400
    assert "valid email address" in page.text and "Please give a subject" in page.text
    assert 'value="Dewi Lestari"' in page.text and "Keep this text</textarea>" in page.text
    expired = await post_form(url(daemon, "/new"), request_fields("1.abcdef"))
    assert expired.status == 400 and "expired" in expired.text
    big = ("files", "big.bin", "application/octet-stream", b"x" * 40_000)
    too_large = await post_form(url(daemon, "/new"), request_fields(form.csrf), [big])
    assert too_large.status == 400 and "too large" in too_large.text
    assert 'value="Cannot log in"' in too_large.text
    assert await journal_entries(engine) == []


async def test_rate_limits_per_address_and_per_ip(daemon, engine):
    csrf = (await get(url(daemon, "/new"))).csrf
    for _ in range(2):
        assert (await post_form(url(daemon, "/new"), request_fields(csrf))).status == 200
    limited = await post_form(url(daemon, "/new"), request_fields(csrf))
    assert limited.status == 400 and "Too many requests" in limited.text
    other = await post_form(url(daemon, "/new"), request_fields(csrf, email="eko@client.test"))
    assert other.status == 200  # another address; the IP has used 3 of 4
    third = await post_form(url(daemon, "/new"), request_fields(csrf, email="fajar@client.test"))
    assert third.status == 200
    by_ip = await post_form(url(daemon, "/new"), request_fields(csrf, email="gita@client.test"))
    assert by_ip.status == 400 and "Too many requests" in by_ip.text
    assert len(await journal_entries(engine)) == 4


async def test_to_chooses_one_of_our_routes_and_its_language(daemon):
    unknown = await get(url(daemon, "/new?to=nobody@example.test"))
    assert unknown.status == 404
    form = await get(url(daemon, "/new?to=billing@example.test"))
    assert form.status == 200 and "Hubungi dukungan" in form.text
    page = await post_form(url(daemon, "/new?to=billing@example.test"), request_fields(form.csrf))
    assert page.status == 200 and "Permintaan diterima" in page.text
    ticket = await only_ticket(daemon)
    assert ticket["queue"] == "billing" and ticket["tags"] == ["billing"]
