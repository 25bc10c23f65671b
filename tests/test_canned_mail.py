"""``#canned NAME`` in an agent's mail, through the running daemon: the reply goes in
place of the line, to the customer and into the ticket; an unknown name is explained
to the agent and nothing is sent. The Desk of test_agents.py; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from tests.test_agents import ALICE, CAROL, Desk
from tests.test_agents import daemon as daemon  # the agents' daemon, a fixture

REFUND = "Dear {{ customer.name }}, {{ ticket.code }} is refunded.\n{{ agent.name }}"


@pytest.fixture
async def desk(daemon, smarthost, engine) -> Desk:
    """A ticket opened by Carol in the support queue, Alice and Bob its agents."""
    return await Desk(daemon, smarthost, engine).open()


async def create(desk: Desk, **body) -> None:
    """A canned reply made through the API."""
    await asyncio.to_thread(_post, desk, body)


def _post(desk: Desk, body: dict) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{desk.daemon.setup.web_port}/api/v1/canned-replies",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer test-token", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201


async def test_a_canned_line_is_replaced_by_the_rendered_reply(desk):
    await create(desk, name="refund", body=REFUND, queue="support")
    await create(desk, name="bye", body="Bye from {{ agent.name }}'s own list", owner=ALICE)
    await desk.agent_mail("#status pending\n#canned REFUND\n\nAnything else?\n#canned bye\n")
    [relay] = (await desk.mail_to(CAROL, 2))[1:]
    text = relay.message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    expected = (
        f"Dear Carol Customer, {desk.code} is refunded.\nAlice\n\n"
        "Anything else?\nBye from Alice's own list\n"
    )
    assert text.startswith(expected) and "#canned" not in text
    shown = await desk.ticket()
    assert shown["status"] == "Pending"
    assert shown["messages"][-1]["text"] == expected.rstrip("\n")


async def test_an_unknown_canned_reply_is_explained_and_nothing_is_sent(desk):
    await create(desk, name="refund", body=REFUND, owner="bob@example.test")  # Bob's, not Alice's
    await desk.agent_mail("Hello Carol,\n#canned refund\n#canned\n")
    [error] = await desk.mail_to(ALICE, kind="error")
    text = error.message.get_content()
    assert "#canned refund: there is no canned reply refund (of yours or of the support" in text
    assert "#canned: #canned needs the name of a canned reply" in text
    shown = await desk.ticket()
    assert len(shown["messages"]) == 1
    assert not [kind for kind, _ in await desk.outbox() if kind == "agent_reply"]
