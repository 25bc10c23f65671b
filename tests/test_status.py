"""/status and /metrics on a running daemon: the numbers move as mail goes through."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import MailgateProcess, wait_until
from tests.test_pipeline import mail, send, settled
from tests.web import WebClient


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
    for reason in ("temporary", "permanent", "suppressed"):
        assert after[("mailgate_delivery_failures_total", (("reason", reason),))] == 0
    assert after[("mailgate_pipeline_failures_total", ())] == 0
    assert after[("mailgate_oldest_waiting_seconds", (("queue", "journal"),))] == 0
    assert after[("mailgate_healthy", ())] == 1
    assert after[("mailgate_pipeline_latency_seconds_count", ())] == 2
    assert after[("mailgate_pipeline_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert after[("mailgate_pipeline_latency_seconds_sum", ())] > 0


async def test_status_page_shows_listeners_and_the_quarantine(daemon, engine):
    await asyncio.to_thread(send, daemon.setup.smtp_port, poison())
    await settled(engine, 1)
    client = WebClient(daemon.setup.web_port)
    try:
        status, page, _ = await client.get("/status")
    finally:
        await client.close()
    assert status == 200
    assert f"smtp 127.0.0.1:{daemon.setup.smtp_port}" in page
    assert f"lmtp 127.0.0.1:{daemon.setup.lmtp_port}" in page
    assert re.search(r'id="quarantined">1\b', page)
    assert "mailgate 0.1.0" in page and re.search(r"up (&lt;1m|\d+m)", page)
    assert "too many MIME parts" not in page  # error texts are for agents


@pytest.fixture
async def imap_status(tmp_path):
    """The app in-process, with two IMAP intakes in the states a daemon would show."""
    from aiohttp.test_utils import TestClient, TestServer

    from mailgate.config import Imap, LoadedConfig, parse_config
    from mailgate.db.migrate import upgrade
    from mailgate.db.session import create_engine
    from mailgate.intake.imap import ImapIntake
    from mailgate.runtime import RuntimeConfig
    from mailgate.web.app import init_app
    from mailgate.web.context import DaemonStatus, WebContext
    from mailgate.work import pipeline_deps

    runtime = RuntimeConfig(LoadedConfig(parse_config('[web]\nsecret_key = "k"\n', "test"), None))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/status.db")
    await upgrade(engine)
    boxes = [
        Imap(name=name, host="imap.example.test", username="u", deliver_to="support@example.test")
        for name in ("sales", "help")
    ]
    sales, help_box = (ImapIntake(box, engine) for box in boxes)
    sales.status.connected = sales.status.idling = sales.status.holds_lease = True
    sales.status.backlog = 7
    help_box.status.error("login failed for u@imap.example.test")
    status = DaemonStatus(listeners=["smtp 127.0.0.1:2525"], imap=[sales, help_box])
    deps = pipeline_deps(runtime)
    app = init_app(WebContext(engine, runtime, deps.signer, deps.composer, status=status))
    async with TestClient(TestServer(app)) as client:
        yield client
    await engine.dispose()


async def test_status_page_shows_imap_mailboxes(imap_status):
    response = await imap_status.get("/status")
    page = await response.text()
    assert response.status == 200
    sales = re.search(r"<td>sales</td>(.*?)</tr>", page, re.S).group(1)
    assert "idling" in sales and "<td>7</td>" in sales
    help_row = re.search(r"<td>help</td>(.*?)</tr>", page, re.S).group(1)
    assert "disconnected" in help_row and "UTC" in help_row
    assert "login failed" not in page  # the error text is for signed-in agents
    metrics = await (await imap_status.get("/metrics")).text()
    assert 'mailgate_imap_backlog{mailbox="sales"} 7.0' in metrics
    assert 'mailgate_imap_connected{mailbox="help"} 0.0' in metrics
