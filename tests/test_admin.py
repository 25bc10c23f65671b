"""Admin pages on a running daemon: the quarantine (download, reprocess in the daemon's
pipeline) and the outbox's captured mail; for admins only."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import JournalEntry
from tests.support import MailgateProcess, wait_until
from tests.test_pipeline import mail, send, settled
from tests.test_reprocess import quarantined_entry
from tests.test_status import poison
from tests.web import WebClient, give_password

PASSWORD = "correct horse battery"


@pytest.fixture
async def daemon(setup):
    setup.agents = [
        {"email": "alice@example.test", "name": "Alice"},
        {"email": "root@example.test", "name": "Root", "admin": True},
    ]
    process = MailgateProcess(setup)  # no smarthost: outgoing mail is captured
    await process.start()
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def admin(daemon, engine):
    web = WebClient(daemon.setup.web_port)
    await give_password(engine, "root@example.test", PASSWORD)
    await web.sign_in("root@example.test", PASSWORD)
    yield web
    await web.close()


async def entry_state(engine, entry_id: int) -> str:
    async with AsyncSession(engine) as session:
        return await session.scalar(select(JournalEntry.state).where(JournalEntry.id == entry_id))


async def test_admin_pages_are_for_admins(daemon, engine):
    web = WebClient(daemon.setup.web_port)
    try:
        for path in ("/admin/quarantine", "/admin/outbox", "/admin/outbox/1"):
            status, _, response = await web.get(path)
            assert status == 303 and response.headers["Location"].startswith("/login"), path
        await give_password(engine, "alice@example.test", PASSWORD)
        await web.sign_in("alice@example.test", PASSWORD)
        for path in ("/admin/quarantine", "/admin/outbox"):
            status, _, _ = await web.get(path)
            assert status == 403, path
    finally:
        await web.close()


async def test_quarantine_lists_downloads_and_reprocesses(daemon, engine, admin):
    await asyncio.to_thread(send, daemon.setup.smtp_port, poison())
    [bad] = await settled(engine, 1)
    good = await quarantined_entry(engine)
    status, page, _ = await admin.get("/admin/quarantine")
    assert status == 200
    assert "too many MIME parts" in page and "a bug since fixed" in page
    tokens = set(re.findall(r'name="csrf" value="([^"]+)"', page))
    assert len(tokens) == 1 and re.fullmatch(r"[a-z2-7]{16}", tokens.pop())  # every form's
    status, raw, response = await admin.get(f"/admin/quarantine/{bad.id}/raw")
    assert status == 200 and raw.encode() == bad.raw
    assert response.headers["Content-Disposition"].startswith("attachment;")

    status, _, response = await admin.post(
        f"/admin/quarantine/{good}/reprocess", {}, csrf_from="/admin/quarantine"
    )
    assert status == 303
    status, page, _ = await admin.get(response.headers["Location"])
    assert "Reprocessed: 1 done" in page
    assert await entry_state(engine, good) == "done"

    status, _, response = await admin.post(
        "/admin/quarantine/reprocess", {}, csrf_from="/admin/quarantine"
    )
    assert status == 303 and "1+quarantined" in response.headers["Location"]
    assert await entry_state(engine, bad.id) == "quarantined"
    status, _, _ = await admin.post(f"/admin/quarantine/{bad.id}/reprocess", {}, csrf_from=None)
    assert status == 403  # no CSRF token

    status, page, _ = await admin.get("/status")
    assert re.search(r'id="quarantined">1 · <a href="/admin/quarantine">', page)


async def test_outbox_shows_the_captured_acknowledgement(daemon, engine, admin):
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire"))
    await settled(engine, 1)

    async def listed():
        _, page, _ = await admin.get("/admin/outbox")
        return page if "Printer on fire" in page else None

    page = await wait_until(listed, "the captured acknowledgement listed")
    item = re.search(r'href="/admin/outbox/(\d+)"', page).group(1)
    status, shown, _ = await admin.get(f"/admin/outbox/{item}")
    assert status == 200 and "captured" in shown and "carol@client.test" in shown
    assert re.search(r"/t/TCK-\d{8}-\w{4}\?k=", shown)
    status, raw, response = await admin.get(f"/admin/outbox/{item}/raw")
    assert status == 200 and "Auto-Submitted: auto-replied" in raw
    assert response.headers["Content-Disposition"].startswith(
        f'attachment; filename="outbox-{item}'
    )


async def test_outbox_pages_say_how_many_and_go_both_ways(daemon, engine, admin):
    for n in range(3):
        await asyncio.to_thread(send, daemon.setup.smtp_port, mail(f"Question {n}"))
    await settled(engine, 3)

    def items(page: str) -> list[int]:
        return [int(n) for n in dict.fromkeys(re.findall(r'href="/admin/outbox/(\d+)"', page))]

    def link(page: str, rel: str) -> str:
        return re.search(rf'href="([^"]+)" rel="{rel}"', page).group(1).replace("&amp;", "&")

    async def captured():
        _, page, _ = await admin.get("/admin/outbox")
        return page if "3 in all" in page else None

    everything = items(await wait_until(captured, "three captured acknowledgements"))
    _, page, _ = await admin.get("/admin/outbox?limit=2")
    assert items(page) == everything[:2] and 'rel="prev"' not in page
    _, page, _ = await admin.get(link(page, "next"))
    assert items(page) == everything[2:] and 'rel="next"' not in page
    assert "limit=2" in link(page, "first")
    _, page, _ = await admin.get(link(page, "prev"))
    assert items(page) == everything[:2] and "3 in all" in page
