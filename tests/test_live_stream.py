"""The /live event stream over HTTP, on two daemons (two nodes) sharing a database.

A change made through node A reaches a stream open on node B; who is on a ticket
crosses nodes too; a browser that reconnects (to either node) with Last-Event-ID
gets what it missed; streams are for agents only, show only their tickets, are
limited per agent, and end when the daemon stops, so it stops at once.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select

from mailgate.db.models import Draft, Ticket
from mailgate.db.session import sessions
from tests.support import MailgateProcess, MailgateSetup
from tests.test_pipeline import mail, send, settled
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
ALICE, BUDI, ROOT = "alice@example.test", "budi@example.test", "root@example.test"
STREAMS_PER_AGENT = 3


def configure(setup: MailgateSetup) -> None:
    with_agents(setup)
    setup.routes[0]["agents"] = [ALICE, ROOT]
    setup.sections["web"]["live_streams_per_agent"] = STREAMS_PER_AGENT


@pytest.fixture
async def nodes(setup, engine, tmp_path):
    """Two daemons on one database: node A (``setup``'s ports) and node B."""
    configure(setup)
    first = MailgateProcess(setup)
    await first.start()
    (tmp_path / "b").mkdir()
    other = MailgateSetup(tmp_path / "b", setup.database_url)
    configure(other)
    second = MailgateProcess(other)
    await second.start()
    for email in (ALICE, BUDI, ROOT):
        await give_password(engine, email, PASSWORD)
    yield first, second
    assert await second.stop() == 0
    assert await first.stop() == 0


@asynccontextmanager
async def agent(node: MailgateProcess, email: str):
    client = WebClient(node.setup.web_port)
    await client.sign_in(email, PASSWORD)
    try:
        yield client
    finally:
        await client.close()


class Events:
    """A /live stream read as a browser's EventSource reads it."""

    def __init__(self, response) -> None:
        self.response = response
        self.unread: list[tuple[str, dict | list, str]] = []  # events of other names

    async def next(self, name: str) -> tuple[dict | list, str]:
        """The data and id of the next event called ``name``, in the order sent."""
        async with asyncio.timeout(30):
            while not any(event[0] == name for event in self.unread):
                self.unread.append(await self._read())
        event = next(event for event in self.unread if event[0] == name)
        self.unread.remove(event)
        return event[1], event[2]

    async def _read(self) -> tuple[str, dict | list, str]:
        while True:
            fields: dict[str, str] = {}
            while line := (await self.response.content.readline()).decode():
                if line == "\n":
                    break
                key, _, value = line.rstrip("\n").partition(": ")
                fields[key] = value
            else:
                raise EOFError("the stream ended")
            if "event" in fields:
                return fields["event"], json.loads(fields["data"]), fields.get("id", "")

    async def ended(self) -> bool:
        async with asyncio.timeout(30):
            while await self.response.content.readline():
                pass
        return True


@asynccontextmanager
async def live(client: WebClient, query: str = "", headers: dict | None = None):
    async with client.http.get(f"{client.base}/live{query}", headers=headers or {}) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "text/event-stream"
        yield Events(response)


async def ticket_code(daemon, engine, subject: str, to: str, count: int) -> str:
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail(subject, to=to), [to])
    await settled(engine, count)
    async with sessions(engine)() as session:
        return await session.scalar(select(Ticket.code).where(Ticket.subject == subject))


async def note(client: WebClient, code: str, text: str) -> None:
    page = f"/tickets/{code}"
    status, body, _ = await client.post(f"{page}/note", {"text": text}, csrf_from=page)
    assert status == 303, body[:300]


async def test_a_change_through_one_node_reaches_a_stream_on_the_other(nodes, engine):
    a, b = nodes
    code = await ticket_code(a, engine, "Printer on fire", "support@example.test", 1)
    async with (
        agent(a, ROOT) as root_on_a,
        agent(b, ALICE) as alice_on_b,
        live(alice_on_b) as inbox_on_b,
        live(alice_on_b, f"?ticket={code}") as ticket_on_b,
    ):
        await note(root_on_a, code, "Looking at it.")
        assert (await inbox_on_b.next("ticket"))[0] == {
            "code": code,
            "new": False,
            "message": True,
        }
        assert (await ticket_on_b.next("ticket"))[0]["code"] == code

        assert await ticket_on_b.next("presence") == ([], "")  # nobody else yet
        async with live(root_on_a, f"?ticket={code}"):
            assert (await ticket_on_b.next("presence"))[0] == [{"name": "Root", "typing": ""}]
            page = f"/tickets/{code}"
            status, _, _ = await root_on_a.post(
                f"{page}/draft", {"kind": "reply", "text": "Dear Carol"}, csrf_from=page
            )
            assert status == 204
            typing = [{"name": "Root", "typing": "reply"}]
            assert (await ticket_on_b.next("presence"))[0] == typing
        assert (await ticket_on_b.next("presence"))[0] == []  # Root closed the page


async def test_a_browser_that_reconnects_to_either_node_gets_what_it_missed(nodes, engine):
    a, b = nodes
    code = await ticket_code(a, engine, "Printer on fire", "support@example.test", 1)
    async with agent(a, ALICE) as alice_on_a, agent(b, ALICE) as alice_on_b:
        async with live(alice_on_b) as stream:
            await note(alice_on_a, code, "First.")
            _, seen = await stream.next("ticket")
        await note(alice_on_a, code, "Second, while the browser was away.")
        await note(alice_on_a, code, "Third.")
        async with live(alice_on_a, headers={"Last-Event-ID": seen}) as stream:
            first, second = await stream.next("ticket"), await stream.next("ticket")
        assert first[0]["code"] == second[0]["code"] == code
        assert first[1] != seen and second[1] != seen
        # A cursor the page was drawn at works the same (the first connection).
        _, body, _ = await alice_on_b.get("/tickets")
        since = body.split('data-since="')[1].split('"')[0]
        await note(alice_on_a, code, "Fourth.")
        async with live(alice_on_b, f"?since={since}") as stream:
            assert (await stream.next("ticket"))[0]["code"] == code


async def test_streams_are_for_agents_and_show_only_their_tickets(nodes, engine):
    a, b = nodes
    support = await ticket_code(a, engine, "Printer on fire", "support@example.test", 1)
    async with agent(b, BUDI) as budi, agent(a, ALICE) as alice:
        anonymous = WebClient(a.setup.web_port)
        try:
            status, _, response = await anonymous.get("/live")
            assert status == 303 and response.headers["Location"].startswith("/login")
        finally:
            await anonymous.close()
        status, _, _ = await budi.get(f"/live?ticket={support}")
        assert status == 404  # not Budi's queue: no such ticket, as far as he can tell
        async with live(budi) as stream:
            await note(alice, support, "Only for the support queue.")
            billing = await ticket_code(a, engine, "Invoice twice", "billing@example.test", 2)
            # The barrier: Budi's first events are his own queue's new ticket.
            first, second = (await stream.next("ticket"))[0], (await stream.next("ticket"))[0]
            assert first == {"code": billing, "new": False, "message": True}  # the mail
            assert second == {"code": billing, "new": True, "message": False}  # the ticket


async def test_streams_per_agent_are_limited(nodes, engine):
    a, _ = nodes
    async with (
        agent(a, ALICE) as alice,
        agent(a, ROOT) as root,
        live(alice),
        live(alice),
        live(alice),
    ):
        status, body, _ = await alice.get("/live")
        assert status == 429 and f"At most {STREAMS_PER_AGENT}" in body
        async with live(root):  # another agent has streams of their own
            pass


async def test_drafts_refuse_what_is_not_a_draft(nodes, engine):
    a, _ = nodes
    code = await ticket_code(a, engine, "Printer on fire", "support@example.test", 1)
    page = f"/tickets/{code}"
    async with agent(a, ALICE) as alice, agent(a, BUDI) as budi:
        status, _, _ = await alice.post(f"{page}/draft", {"kind": "memo", "text": "x"}, page)
        assert status == 400
        status, _, _ = await alice.post(
            f"{page}/draft", {"kind": "note", "text": "x" * 200_001}, page
        )
        assert status == 413
        status, _, _ = await alice.post(f"{page}/draft", {"kind": "note", "text": "x"}, None)
        assert status == 403  # no CSRF token
        status, _, _ = await budi.post(f"{page}/draft", {"kind": "note", "text": "x"}, "/tickets")
        assert status == 404
        status, _, _ = await alice.post(f"{page}/draft", {"kind": "note", "text": "kept"}, page)
        assert status == 204
        status, _, _ = await alice.post(f"{page}/draft", {"kind": "note", "text": "  "}, page)
        assert status == 204
    async with sessions(engine)() as session:
        assert list(await session.scalars(select(Draft))) == []  # emptied: deleted


async def test_the_daemon_stops_at_once_with_streams_open(nodes, engine):
    a, b = nodes
    code = await ticket_code(a, engine, "Printer on fire", "support@example.test", 1)
    async with agent(b, ALICE) as alice, live(alice) as inbox, live(alice, f"?ticket={code}"):
        assert await b.stop(wait_seconds=10) == 0  # aiohttp alone would wait 60 s
        assert await inbox.ended()
