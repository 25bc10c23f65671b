"""The write side of the JSON API: replies, notes and ticket changes through the actions,
every error as JSON with its status, and answers that match the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import aiohttp
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import OutboxItem, Ticket
from mailgate.web.openapi import document
from tests.support import api_get, daemon_running
from tests.test_pipeline import mail, send, sent_to

SPEC = "urn:mailgate-api"


@pytest.fixture
async def daemon(setup, smarthost):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [
        {"email": "alice@example.test", "name": "Alice"},
        {"email": "budi@example.test", "name": "Budi"},
    ]
    async with daemon_running(setup) as process:
        yield process


@pytest.fixture
async def code(daemon, smarthost) -> str:
    """A ticket from Carol, acknowledged and notified (two mails at the sink)."""
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire"))
    await smarthost.wait_for(2)
    [ticket] = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    return ticket["code"]


async def call(daemon, method: str, path: str, body, token="test-token") -> tuple[int, dict]:
    """``body`` is sent as JSON, or as is when it is bytes."""
    url = f"http://127.0.0.1:{daemon.setup.web_port}{path}"
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers) as response,
    ):
        assert response.content_type == "application/json"
        return response.status, await response.json()


def conforms(instance: dict, schema: str) -> None:
    """Validate ``instance`` against a component schema of the OpenAPI document."""
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    registry = Registry().with_resource(SPEC, resource)
    ref = {"$ref": f"{SPEC}#/components/schemas/{schema}"}
    Draft202012Validator(ref, registry=registry).validate(instance)


async def test_an_agent_reply_reaches_the_customer(daemon, smarthost, code):
    body = {"kind": "agent", "text": "Unplug it, please.", "agent": "alice@example.test"}
    status, message = await call(daemon, "POST", f"/api/v1/tickets/{code}/messages", body)
    assert status == 201, message
    conforms(message, "Message")
    assert message["kind"] == "agent" and message["text"] == "Unplug it, please."
    await smarthost.wait_for(3)
    [_, reply] = sent_to(smarthost, "carol@client.test")
    assert f"[{code}]" in reply.message["Subject"]
    assert "support@example.test" in reply.message["From"]
    assert "Unplug it, please." in reply.message.get_body(("plain",)).get_content()
    shown = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
    conforms(shown, "TicketDetail")
    assert [m["kind"] for m in shown["messages"]] == ["customer", "agent"]
    conforms(await api_get(daemon.setup, "/api/v1/tickets"), "TicketList")


async def test_a_note_is_never_sent_to_the_customer(daemon, engine, code):
    body = {"kind": "note", "text": "Internal: known firmware bug.", "agent": "alice@example.test"}
    status, message = await call(daemon, "POST", f"/api/v1/tickets/{code}/messages", body)
    assert status == 201 and message["kind"] == "note"
    async with AsyncSession(engine) as session:
        outgoing = list(await session.scalars(select(OutboxItem)))
    to_customer = [item for item in outgoing if "carol@client.test" in item.recipients]
    assert [item.kind for item in to_customer] == ["acknowledgement"]


async def test_patch_changes_each_field(daemon, code):
    path = f"/api/v1/tickets/{code}"
    status, ticket = await call(daemon, "PATCH", path, {"status": "pending"})
    assert status == 200, ticket
    conforms(ticket, "TicketChanged")
    assert ticket["status"] == "Pending" and ticket["changes"]
    _, ticket = await call(daemon, "PATCH", path, {"priority": "urgent"})
    assert ticket["priority"] == "urgent"
    _, ticket = await call(daemon, "PATCH", path, {"assignee": "budi@example.test"})
    assert ticket["assignee"] == "budi@example.test"
    _, ticket = await call(daemon, "PATCH", path, {"assignee": None})
    assert ticket["assignee"] is None
    _, ticket = await call(daemon, "PATCH", path, {"tags": ["vip", "printer"]})
    assert ticket["tags"] == ["printer", "vip"]
    _, ticket = await call(daemon, "PATCH", path, {"tags": ["vip"], "priority": "low"})
    assert ticket["tags"] == ["vip"] and ticket["priority"] == "low"
    shown = await api_get(daemon.setup, path)
    assert (shown["status"], shown["priority"], shown["assignee"], shown["tags"]) == (
        "Pending",
        "low",
        None,
        ["vip"],
    )


async def test_errors_are_json_with_the_right_status(daemon, engine, code):
    messages = f"/api/v1/tickets/{code}/messages"
    ticket = f"/api/v1/tickets/{code}"
    reply = {"kind": "agent", "text": "Hi", "agent": "alice@example.test"}
    cases = [
        ("POST", messages, b"{not json", 400),
        ("PATCH", ticket, b"[1, 2]", 400),
        ("PATCH", ticket, {"status": "Sleeping"}, 422),
        ("PATCH", ticket, {"priority": "asap"}, 422),
        ("PATCH", ticket, {"assignee": "nobody@example.test"}, 422),
        ("PATCH", ticket, {"tags": ["two words"]}, 422),
        ("PATCH", ticket, {"tags": [f"t{n}" for n in range(51)]}, 422),
        ("PATCH", ticket, {"tags": ["x" * 65]}, 422),
        ("PATCH", ticket, {"status": None}, 422),
        ("PATCH", ticket, {"status": 3}, 422),
        ("PATCH", ticket, {"colour": "red"}, 422),
        ("PATCH", ticket, {}, 422),
        ("POST", messages, {**reply, "agent": "mallory@client.test"}, 422),
        ("POST", messages, {**reply, "kind": "system"}, 422),
        ("POST", messages, {**reply, "text": ""}, 422),
        ("POST", messages, {"kind": "agent"}, 422),
        ("POST", "/api/v1/tickets/TCK-20260101-XXXX/messages", reply, 404),
        ("PATCH", "/api/v1/tickets/TCK-20260101-XXXX", {"status": "Open"}, 404),
        ("POST", f"{ticket}/not-spam", b"", 409),  # it is in the inbox already
    ]
    for method, path, body, expected in cases:
        status, answer = await call(daemon, method, path, body)
        assert status == expected, (method, path, body, answer)
        conforms(answer, "Error")
    status, answer = await call(daemon, "PATCH", ticket, {"status": "Open"}, token=None)
    assert status == 401 and answer["error"]["code"] == "unauthorized"
    shown = await api_get(daemon.setup, ticket)
    assert shown["status"] == "New" and len(shown["messages"]) == 1  # nothing changed


async def test_a_merged_ticket_is_a_conflict(daemon, smarthost, engine, code):
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Also the scanner"))
    await smarthost.wait_for(4)
    async with AsyncSession(engine) as session, session.begin():
        survivor, merged = await session.scalars(select(Ticket).order_by(Ticket.id.desc()))
        assert merged.code == code
        survivor_code = survivor.code
        await session.execute(
            update(Ticket).where(Ticket.id == merged.id).values(merged_into_id=survivor.id)
        )
    status, answer = await call(daemon, "PATCH", f"/api/v1/tickets/{code}", {"priority": "high"})
    assert status == 409 and survivor_code in answer["error"]["message"]
    body = {"kind": "note", "text": "x", "agent": "alice@example.test"}
    status, _ = await call(daemon, "POST", f"/api/v1/tickets/{code}/messages", body)
    assert status == 409


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
# Real values too, so the examples reach the actions and not only the validation.
VALUES = JSON | st.sampled_from(["Open", "solved", "urgent", "alice@example.test", "budi", "vip"])
TAGS = st.lists(st.sampled_from(["vip", "printer", "two words", "", "x" * 70]), max_size=3)
PATCH_BODIES = st.fixed_dictionaries(
    {}, optional={"status": VALUES, "priority": VALUES, "assignee": VALUES, "tags": TAGS | JSON}
)
POST_FIELDS = {
    "kind": st.sampled_from(["agent", "note", "system"]) | JSON,
    "text": st.text(max_size=30) | JSON,
    "agent": st.sampled_from(["alice@example.test", "Budi", "x@y.test"]) | JSON,
}
POST_BODIES = st.fixed_dictionaries({}, optional=POST_FIELDS) | st.fixed_dictionaries(POST_FIELDS)


def raw_call(port: int, method: str, path: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,
        headers={"Authorization": "Bearer test-token", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    operation=st.sampled_from(["PATCH", "POST"]),
    body=st.one_of(PATCH_BODIES, POST_BODIES, JSON).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=40),
    which=st.sampled_from(["ticket", "unknown"]),
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_write_api_never_answers_5xx(daemon, code, operation, body, which):
    """Arbitrary bodies, well-formed or not: a JSON answer below 500, always."""
    target = code if which == "ticket" else "TCK-20260101-XXXX"
    path = f"/api/v1/tickets/{target}" + ("/messages" if operation == "POST" else "")
    status, answer = raw_call(daemon.setup.web_port, operation, path, body)
    event(f"{operation} {status}")  # --hypothesis-show-statistics shows the spread
    assert status < 500, (operation, body, answer)
    conforms(
        answer, "Error" if status >= 400 else ("Message" if status == 201 else "TicketChanged")
    )
