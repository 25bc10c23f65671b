"""The read-only JSON API: bearer tokens, shapes, filters, cursor pagination, JSON errors."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import (
    api_call,
    api_get,
    daemon_running,
    journal_entries,
    wait_until,
)
from tests.test_pipeline import mail, send


@pytest.fixture
async def daemon(setup):
    setup.sections["api"] = {"tokens": ["test-token", "second-token"]}
    async with daemon_running(setup) as process:
        yield process


async def fill(daemon, engine, count: int) -> None:
    for number in range(count):
        sender = f"Customer {number} <c{number}@client.test>"
        raw = mail(f"Question {number}", body=f"text number {number}", sender=sender)
        recipients = ["billing@example.test"] if number % 3 == 0 else ["support@example.test"]
        await asyncio.to_thread(send, daemon.setup.smtp_port, raw, recipients)

    async def processed():
        entries = await journal_entries(engine)
        return len(entries) == count and all(e.state == "done" for e in entries)

    await wait_until(processed, f"{count} tickets")


async def test_requires_a_known_bearer_token(daemon):
    for token in (None, "wrong"):
        status, body = await api_call(daemon.setup, "/api/v1/tickets", token=token)
        assert status == 401
        assert body["error"]["code"] == "unauthorized"
    status, _ = await api_call(daemon.setup, "/api/v1/tickets", token="second-token")
    assert status == 200


async def test_errors_are_json(daemon):
    status, body = await api_call(daemon.setup, "/api/v1/tickets/TCK-20260101-XXXX")
    assert status == 404 and body["error"]["code"] == "not_found"
    for bad in ({"limit": "0"}, {"limit": "501"}, {"limit": "ten"}, {"cursor": "garbage!"}):
        status, body = await api_call(daemon.setup, "/api/v1/tickets", **bad)
        assert status == 400 and body["error"]["message"], bad
    status, body = await api_call(daemon.setup, "/api/v1/nothing-here")
    assert status == 404 and "error" in body


async def test_list_shape_filters_and_pagination(daemon, engine):
    await fill(daemon, engine, 7)
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await api_get(daemon.setup, "/api/v1/tickets", **params)
        assert len(page["tickets"]) <= 3
        seen += page["tickets"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 7 and len({t["code"] for t in seen}) == 7
    first = seen[-1]
    assert set(first) >= {
        "code",
        "subject",
        "status",
        "priority",
        "queue",
        "assignee",
        "customer",
        "tags",
        "created_at",
        "updated_at",
        "message_count",
    }
    assert first["subject"] == "Question 0" and first["message_count"] == 1
    billing = await api_get(daemon.setup, "/api/v1/tickets", queue="billing")
    assert sorted(t["subject"] for t in billing["tickets"]) == [
        "Question 0",
        "Question 3",
        "Question 6",
    ]
    found = await api_get(daemon.setup, "/api/v1/tickets", q="number 5")
    assert [t["subject"] for t in found["tickets"]] == ["Question 5"]
    mine = await api_get(daemon.setup, "/api/v1/tickets", customer="C2@client.test")
    assert [t["subject"] for t in mine["tickets"]] == ["Question 2"]
    new = await api_get(daemon.setup, "/api/v1/tickets", status="new", assignee="none")
    assert len(new["tickets"]) == 7


async def test_ticket_detail_has_messages(daemon, engine):
    await fill(daemon, engine, 1)
    [listed] = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    shown = await api_get(daemon.setup, f"/api/v1/tickets/{listed['code'].lower()}")
    [message] = shown["messages"]
    assert message["kind"] == "customer"
    assert message["from"] == "c0@client.test"
    assert message["to"] == ["support@example.test"]
    assert message["text"].strip() == "text number 0"
    assert message["message_id"].startswith("<") and message["attachments"] == []


async def test_priority_and_tag_filters(daemon, engine):
    await fill(daemon, engine, 4)  # 0 and 3 to billing: priority high, tag billing
    for params in ({"priority": "high"}, {"priority": "HIGH"}, {"tag": "billing"}):
        listed = await api_get(daemon.setup, "/api/v1/tickets", **params)
        assert sorted(t["subject"] for t in listed["tickets"]) == ["Question 0", "Question 3"]
    normal = await api_get(daemon.setup, "/api/v1/tickets", priority="normal", tag="")
    assert sorted(t["subject"] for t in normal["tickets"]) == ["Question 1", "Question 2"]
    both = await api_get(daemon.setup, "/api/v1/tickets", priority="normal", tag="billing")
    assert both["tickets"] == []
    unknown_tag = await api_get(daemon.setup, "/api/v1/tickets", tag="vip")
    assert unknown_tag["tickets"] == []
    everything = await api_get(daemon.setup, "/api/v1/tickets", status="", priority="")
    assert len(everything["tickets"]) == 4


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "bogus"}, "status: unknown status 'bogus'; one of New, Open, Pending, "),
        ({"priority": "extreme"}, "priority: unknown priority 'extreme'; one of low, "),
        ({"tag": "two words"}, "tags: 'two words' is not a tag"),
    ],
)
async def test_an_unknown_filter_value_is_422_as_patch_answers_it(daemon, params, message):
    status, body = await api_call(daemon.setup, "/api/v1/tickets", **params)
    assert status == 422, body
    assert body["error"]["code"] == "unprocessable"
    assert body["error"]["message"].startswith(message), body
