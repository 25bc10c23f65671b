"""Spam held back, with Debian's real rspamd started by the tests (tests/rspamd.py).

GTUBE mail sent to the daemon by SMTP becomes a ticket held back as spam: no mail
goes out for it, it is not in the inbox but under the Spam filter, and *Not spam*
sends the acknowledgement it held back. With rspamd away, mail goes on unscored.
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import urllib.request
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from mailgate.config import Spam
from mailgate.db.models import JournalEntry, OutboxItem, Ticket
from mailgate.db.session import sessions
from mailgate.pipeline.spam import check_entries, verdict_of
from tests.rspamd import GTUBE, Rspamd, rspamd_installed
from tests.support import api_call, api_get, daemon_running, free_port
from tests.test_pipeline import mail, send, settled
from tests.web import WebClient, codes_on, give_password

PASSWORD = "correct horse battery"
CAROL = "carol@client.test"


@pytest.fixture(scope="session")
def rspamd(tmp_path_factory):
    rspamd_installed()
    server = Rspamd(tmp_path_factory.mktemp("rspamd")).start()
    yield server
    server.stop()


def entry(raw: bytes, entry_id: int = 1) -> JournalEntry:
    """A journal entry as SMTP intake writes it (not stored: the check needs none)."""
    return JournalEntry(
        id=entry_id,
        mail_from=CAROL,
        recipients=["support@example.test"],
        peer="127.0.0.1:40000",
        helo="client.test",
        received_at=datetime.now(UTC),
        raw=raw,
    )


async def test_rspamd_calls_gtube_spam_and_plain_mail_not(rspamd):
    settings = Spam(rspamd_url=rspamd.url)
    gtube, plain = await check_entries(
        settings, [entry(mail("Cheap pills", body=GTUBE)), entry(mail("My printer"), 2)]
    )
    assert gtube.result == "spam" and gtube.action == "reject"
    assert any(symbol.startswith("GTUBE(") for symbol in gtube.symbols)
    assert plain.result == "ham" and plain.action == "no action"
    assert plain.score is not None and plain.required_score is not None
    assert plain.summary.startswith("rspamd: no action, score")


async def test_rspamd_saw_the_envelope(rspamd):
    settings = Spam(rspamd_url=rspamd.url)
    raw = mail("Order 42", sender=f"Carol <{CAROL}>")
    [verdict] = await check_entries(settings, [entry(raw)])
    # The envelope (From, Rcpt, IP, Helo) changes what rspamd's rules find.
    [verdict_without] = await check_entries(
        settings, [JournalEntry(id=3, mail_from="", recipients=[], peer="", helo="", raw=raw)]
    )
    assert verdict.result == verdict_without.result == "ham"
    assert verdict.stored()["symbols"] != verdict_without.stored()["symbols"]


@pytest.mark.parametrize(
    ("action", "result"),
    [
        ("reject", "spam"),
        ("add header", "spam"),
        ("rewrite subject", "spam"),
        ("greylist", "ham"),
        ("soft reject", "ham"),
        ("no action", "ham"),
        ("discard", "failed"),
    ],
)
def test_rspamd_actions(action, result):
    verdict = verdict_of({"action": action, "score": 3.5, "required_score": 15, "symbols": {}})
    assert verdict.result == result


@pytest.mark.parametrize("answer", [[], {"score": 1}, {"action": None}, "reject"])
def test_an_answer_that_is_not_rspamd_s_fails_the_check(answer):
    assert verdict_of(answer).result == "failed"


async def _metric(setup, name: str) -> dict[str, float]:
    status, text = await asyncio.to_thread(_get_text, setup.web_port, "/metrics")
    assert status == 200
    found = re.findall(rf'^{name}\{{result="(\w+)"\}} ([0-9.]+)$', text, re.MULTILINE)
    return {label: float(value) for label, value in found}


def _get_text(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
        return answer.status, answer.read().decode()


def _configure(setup, smarthost, rspamd_url: str) -> None:
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.sections["spam"] = {"rspamd_url": rspamd_url, "timeout_seconds": 10.0}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]


async def _codes(engine) -> dict[str, str]:
    """Ticket codes by subject."""
    async with sessions(engine)() as session:
        return {t.subject: t.code for t in await session.scalars(select(Ticket))}


async def _outbox_of(engine, code: str) -> list[str]:
    async with sessions(engine)() as session:
        query = select(OutboxItem.kind).join(Ticket, Ticket.id == OutboxItem.ticket_id)
        return list(await session.scalars(query.where(Ticket.code == code)))


async def test_gtube_is_held_back_until_an_agent_says_not_spam(rspamd, setup, smarthost, engine):
    _configure(setup, smarthost, rspamd.url)
    async with daemon_running(setup) as daemon:
        await give_password(engine, "alice@example.test", PASSWORD)
        port = daemon.setup.smtp_port
        await asyncio.to_thread(send, port, mail("Cheap pills", body=GTUBE))
        await asyncio.to_thread(send, port, mail("Printer jammed"))  # the barrier
        await settled(engine, 2)
        codes = await _codes(engine)
        spam, ham = codes["Cheap pills"], codes["Printer jammed"]
        # The barrier's acknowledgement and notification went out; nothing for the spam.
        await smarthost.wait_for(2)
        assert await _outbox_of(engine, spam) == []
        assert sorted(await _outbox_of(engine, ham)) == ["acknowledgement", "agent_notification"]
        assert all(ham in m.message["Subject"] for m in smarthost.messages)

        web = WebClient(setup.web_port)
        try:
            await web.sign_in("alice@example.test", PASSWORD)
            _, inbox, _ = await web.get("/tickets")
            assert codes_on(inbox) == [ham]
            _, held, _ = await web.get("/tickets?spam=1")
            assert codes_on(held) == [spam]
            _, page, _ = await web.get(f"/tickets/{spam}")
            assert "Held back as spam" in page and "Spam check: rspamd: reject" in page
            assert "GTUBE" in page

            assert [t["code"] for t in (await api_get(setup, "/api/v1/tickets"))["tickets"]] == [
                ham
            ]
            listed = (await api_get(setup, "/api/v1/tickets", spam="true"))["tickets"]
            assert [(t["code"], t["spam"]) for t in listed] == [(spam, True)]
            detail = await api_get(setup, f"/api/v1/tickets/{spam}")
            assert detail["messages"][0]["spam_check"]["action"] == "reject"
            status, _ = await api_call(setup, "/api/v1/tickets", spam="maybe")
            assert status == 400
            assert await _metric(setup, "mailgate_spam_checks_total") == {
                "spam": 1,
                "ham": 1,
                "failed": 0,
            }

            status, _, answer = await web.post(
                f"/tickets/{spam}/not-spam", {}, csrf_from=f"/tickets/{spam}"
            )
            assert status == 303 and answer.headers["Location"].endswith("done=not_spam")
            [*_, ack] = await smarthost.wait_for(3)
            assert ack.rcpt_tos == (CAROL,) and spam in ack.message["Subject"]
            _, inbox, _ = await web.get("/tickets")
            assert sorted(codes_on(inbox)) == sorted([spam, ham])
            # Released once: a second "not spam" is refused and sends nothing.
            status, page, _ = await web.post(
                f"/tickets/{spam}/not-spam", {}, csrf_from=f"/tickets/{spam}"
            )
            assert status == 422 and "is not held back as spam" in page
        finally:
            await web.close()
        assert sorted(await _outbox_of(engine, spam)) == ["acknowledgement"]


async def _silent_server() -> tuple[asyncio.Server, int]:
    """Takes connections and the request, never answers: a hung rspamd."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("away", ["closed port", "silent"])
async def test_without_rspamd_mail_goes_on_unscored_and_is_counted(away, setup, smarthost, engine):
    server, port = await _silent_server() if away == "silent" else (None, free_port())
    _configure(setup, smarthost, f"http://127.0.0.1:{port}")
    setup.sections["spam"]["timeout_seconds"] = 1.0
    try:
        async with daemon_running(setup) as daemon:
            await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Cheap pills", body=GTUBE))
            await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer jammed"))
            entries = await settled(engine, 2)
            assert [e.state for e in entries] == ["done", "done"]
            await smarthost.wait_for(4)  # both acknowledged, alice told of both
            acks = [m for m in smarthost.messages if m.rcpt_tos == (CAROL,)]
            assert len(acks) == 2
            assert await _metric(setup, "mailgate_spam_checks_total") == {
                "spam": 0,
                "ham": 0,
                "failed": 2,
            }
            codes = await _codes(engine)
            detail = await api_get(setup, f"/api/v1/tickets/{codes['Cheap pills']}")
            assert detail["spam"] is False
            assert detail["messages"][0]["spam_check"]["result"] == "failed"
    finally:
        if server is not None:
            server.close()


def _lmtp_send(port: int, raw: bytes) -> None:
    with smtplib.LMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(CAROL, ["support@example.test"], raw)


async def test_an_mtas_spam_verdict_counts_only_on_a_trusted_path(setup, smarthost, engine):
    """The MTA's filter marked the mail as spam: on the path declared trusted that holds
    the ticket back with no rspamd asked; the same headers handed to the public
    listener are the sender's own word and count for nothing."""
    _configure(setup, smarthost, "")
    setup.sections["auth"] = {"trusted_paths": [f"127.0.0.1:{setup.lmtp_port}"]}
    flagged = "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=12.5 required=5.0\r\n"
    async with daemon_running(setup):
        await asyncio.to_thread(_lmtp_send, setup.lmtp_port, mail("From the MTA", extra=flagged))
        await asyncio.to_thread(send, setup.smtp_port, mail("From anyone", extra=flagged))
        await settled(engine, 2)
        codes = await _codes(engine)
        held, answered = codes["From the MTA"], codes["From anyone"]
        await smarthost.wait_for(2)
        assert await _outbox_of(engine, held) == []
        assert sorted(await _outbox_of(engine, answered)) == [
            "acknowledgement",
            "agent_notification",
        ]
        listed = (await api_get(setup, "/api/v1/tickets", spam="true"))["tickets"]
        assert [t["code"] for t in listed] == [held]
        detail = await api_get(setup, f"/api/v1/tickets/{held}")
        assert detail["messages"][0]["spam_check"]["action"] == "spam"


async def test_not_spam_sends_no_acknowledgement_to_a_no_reply_sender(
    rspamd, setup, smarthost, engine
):
    _configure(setup, smarthost, rspamd.url)
    robot = "no-reply@shop.test"
    async with daemon_running(setup) as daemon:
        await give_password(engine, "alice@example.test", PASSWORD)
        raw = mail("Your order", body=GTUBE, sender=f"Shop <{robot}>")
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw, sender=robot)
        await settled(engine, 1)
        held = (await _codes(engine))["Your order"]
        web = WebClient(setup.web_port)
        try:
            await web.sign_in("alice@example.test", PASSWORD)
            status, _, answer = await web.post(
                f"/tickets/{held}/not-spam", {}, csrf_from=f"/tickets/{held}"
            )
            assert status == 303 and answer.headers["Location"].endswith("done=not_spam")
            # The release and its decision are one transaction: nothing was queued.
            _, page, _ = await web.get(f"/tickets/{held}")
        finally:
            await web.close()
    assert await _outbox_of(engine, held) == []
    assert f"{robot} takes no replies" in page
