"""/status and /metrics on a running daemon: the numbers move as mail goes through."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import MailgateProcess, wait_until
from tests.test_pipeline import mail, send, settled
from tests.webclient import get


@pytest.fixture
async def daemon(setup):
    process = MailgateProcess(setup)  # no smarthost: outgoing mail is captured
    await process.start()
    yield process
    assert await process.stop() == 0


def poison() -> bytes:
    """A message with more MIME parts than the parser takes: it is quarantined."""
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(600))
    head = "From: mallory@client.test\r\nTo: support@example.test\r\nSubject: Parts\r\n"
    mime = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    return f"{head}{mime}{parts}--b--\r\n".encode()


async def scrape(daemon) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    url = f"http://127.0.0.1:{daemon.setup.web_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_move_after_mail_is_processed(daemon, engine):
    before = await scrape(daemon)
    assert before[("mailgate_tickets_created_total", ())] == 0
    assert before[("mailgate_pipeline_latency_seconds_count", ())] == 0
    assert before[("mailgate_build_info", (("version", "0.1.0"),))] == 1
    for subject in ("First", "Second"):
        await asyncio.to_thread(send, daemon.setup.smtp_port, mail(subject))
    await asyncio.to_thread(send, daemon.setup.smtp_port, poison())
    await settled(engine, 3)

    async def delivered():
        metrics = await scrape(daemon)
        return metrics if metrics[("mailgate_acks_sent_total", ())] == 2 else None

    after = await wait_until(delivered, "two acknowledgements captured")
    assert after[("mailgate_messages_received_total", (("source", "smtp"),))] == 3
    assert after[("mailgate_tickets_created_total", ())] == 2
    assert after[("mailgate_quarantine_size", ())] == 1
    assert after[("mailgate_outbox_backlog", ())] == 0
    assert after[("mailgate_outbox_messages", (("state", "captured"),))] >= 2
    assert after[("mailgate_delivery_failures_total", ())] == 0
    assert after[("mailgate_pipeline_latency_seconds_count", ())] == 2
    assert after[("mailgate_pipeline_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert after[("mailgate_pipeline_latency_seconds_sum", ())] > 0


async def test_status_page_shows_listeners_and_the_quarantine(daemon, engine):
    await asyncio.to_thread(send, daemon.setup.smtp_port, poison())
    await settled(engine, 1)
    page = await get(f"http://127.0.0.1:{daemon.setup.web_port}/status")
    assert page.status == 200
    assert f"smtp 127.0.0.1:{daemon.setup.smtp_port}" in page.text
    assert f"lmtp 127.0.0.1:{daemon.setup.lmtp_port}" in page.text
    assert re.search(r'id="quarantined">1\b', page.text)
    assert "mailgate 0.1.0" in page.text and "up 0m" in page.text
    assert "too many MIME parts" not in page.text  # error texts are for agents
