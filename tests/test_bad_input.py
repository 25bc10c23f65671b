"""Odd input from a client gets the documented 4xx, never a 500: non-ASCII secrets,
numbers ``int`` cannot read or the database cannot hold, deep JSON, NUL characters,
out-of-range report dates. A real daemon over HTTP; SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
from urllib.parse import quote

import pytest

from mailgate.signing import Signer
from tests.support import api_get, daemon_running, wait_until
from tests.test_pipeline import mail, send, settled
from tests.web import WebClient, give_password, raw_request

PASSWORD = "correct horse battery"
AUTH = ("Authorization", "Bearer test-token")


@pytest.fixture
async def daemon(setup):
    setup.sections["api"] = {"tokens": ["test-token"]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    async with daemon_running(setup) as process:
        yield process


@pytest.fixture
async def code(daemon) -> str:
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire"))

    async def listed():
        return (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]

    [ticket] = await wait_until(listed, "the ticket")
    return ticket["code"]


def call(daemon, method: str, target: str, headers=(), body: bytes = b"") -> tuple[int, bytes]:
    return raw_request(daemon.setup.web_port, method, target, list(headers), body)


def error_of(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])["error"]


async def test_non_ascii_bearer_tokens_are_unknown_tokens(daemon):
    for token in ("tëst-token", "test-token\u00a0x", "\u2603"):
        status, answer = call(
            daemon, "GET", "/api/v1/tickets", [("Authorization", f"Bearer {token}")]
        )
        assert status == 401 and error_of(answer)["code"] == "unauthorized", token


async def test_odd_limits_cursors_and_bodies_are_400(daemon, code):
    old_style = base64.urlsafe_b64encode("id:²".encode()).decode()
    huge = "f" * 16
    for query in ("limit=²", "limit=٣", "limit=" + "9" * 25, f"cursor={old_style}",
                  f"cursor={huge}", "cursor=é", "cursor=", "q=a\x00b", "status=\x00"):  # fmt: skip
        name, _, value = query.partition("=")
        status, answer = call(daemon, "GET", f"/api/v1/tickets?{name}={quote(value)}", [AUTH])
        assert status == 400 and error_of(answer)["code"] == "bad_request", query
    status, _ = call(daemon, "GET", "/api/v1/tickets/TCK%00", [AUTH])
    assert status == 400
    deep = b"[" * 100_000 + b"]" * 100_000
    json_type = ("Content-Type", "application/json")
    for method, path in (
        ("PATCH", f"/api/v1/tickets/{code}"),
        ("POST", f"/api/v1/tickets/{code}/messages"),
    ):
        status, answer = call(daemon, method, path, [AUTH, json_type], deep)
        assert status == 400 and "nested" in error_of(answer)["message"], method


async def test_what_cannot_be_stored_or_is_null_is_422(daemon, code):
    json_type = ("Content-Type", "application/json")
    patch = f"/api/v1/tickets/{code}"
    bodies = [
        (patch, {"status": None}),
        (patch, {"priority": None}),
        (patch, {"tags": None}),
        (patch, {"tags": ["a\u0000b"]}),
        (patch, {"tags": ["x" * 65]}),
        (f"{patch}/messages", {"kind": "note", "text": "a\u0000b", "agent": "alice@example.test"}),
        (f"{patch}/messages", {"kind": "note", "text": "\ud800", "agent": "alice@example.test"}),
        (f"{patch}/messages", {"kind": "note", "text": "hi", "agent": ""}),
    ]
    for path, body in bodies:
        method = "POST" if path.endswith("messages") else "PATCH"
        raw = json.dumps(body).encode()
        status, answer = call(daemon, method, path, [AUTH, json_type], raw)
        assert status == 422 and error_of(answer)["code"] == "unprocessable", body
    shown = await api_get(daemon.setup, patch)
    assert shown["status"] == "New" and shown["tags"] == [] and len(shown["messages"]) == 1


async def test_a_wrong_method_names_the_allowed_ones(daemon, code):
    status, answer = call(daemon, "DELETE", f"/api/v1/tickets/{code}", [AUTH])
    head = answer.partition(b"\r\n\r\n")[0].decode().lower()
    assert status == 405 and "allow: " in head and "patch" in head.partition("allow: ")[2]


async def test_non_ascii_portal_key_session_cookie_and_csrf_token(daemon, code, engine):
    key = Signer(b"test-secret-key").portal_token(code)
    for wrong in ("é" * len(key), key[:-1] + "é", "\u2603"):
        status, answer = call(daemon, "GET", f"/t/{code}?k={quote(wrong)}")
        assert status == 404 and b"Not found" in answer, wrong
    cookie = ("Cookie", "mailgate_session=tëst.ñåç; mailgate_csrf=sëed")
    status, answer = call(daemon, "GET", "/tickets", [cookie])
    assert status == 303  # not signed in: off to the login page
    await give_password(engine, "alice@example.test", PASSWORD)
    client = WebClient(daemon.setup.web_port)
    try:
        await client.sign_in("alice@example.test", PASSWORD)
        forged = {"status": "Open"}
        async with client.http.post(
            f"{client.base}/tickets/{code}/update",
            data=forged,
            headers={"X-CSRF-Token": "tökén".encode().decode("latin-1")},
            allow_redirects=False,
        ) as response:
            assert response.status == 403
    finally:
        await client.close()


async def test_forms_that_are_not_text_get_the_styled_400_page(daemon, code):
    key = Signer(b"test-secret-key").portal_token(code)
    form_type = ("Content-Type", "application/x-www-form-urlencoded")
    multipart = ("Content-Type", "multipart/form-data; boundary=xyz")
    for path, headers, body in (
        ("/login", [form_type], b"email=\xff\xfe"),
        ("/new", [form_type], b"name=\x80"),
        (f"/t/{code}?k={key}", [form_type], b"text=%00"),
        ("/new", [multipart], b"no boundary here"),
        (f"/t/{code}?k={key}", [multipart], b"--xyz\r\nbroken header\r\n\r\n"),
    ):
        status, answer = call(daemon, "POST", path, headers, body)
        assert status == 400 and b"<h1>Bad request</h1>" in answer, (path, body, answer[:300])
    status, answer = call(daemon, "GET", "/login?next=%00")
    assert status == 400 and b"NUL" in answer


async def test_report_periods_out_of_range_are_a_styled_400(daemon, engine):
    await give_password(engine, "alice@example.test", PASSWORD)
    client = WebClient(daemon.setup.web_port)
    try:
        await client.sign_in("alice@example.test", PASSWORD)
        for query in ("to=9999-12-31", "from=0001-01-01", "days=" + "9" * 20, "days=²", "from=x"):
            status, page, _ = await client.get(f"/reports?{query}")
            assert status == 400 and "<h1>Bad request</h1>" in page, query
            assert "report period" in page
        status, _, _ = await client.get("/reports?from=2026-01-01&to=2026-03-31")
        assert status == 200
    finally:
        await client.close()


def send_utf8(port: int, raw: bytes, recipient: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail("carol@client.test", [recipient], raw, mail_options=["SMTPUTF8"])


async def test_a_non_ascii_signature_in_a_reply_address_is_just_unsigned(daemon, code, engine):
    forged = f"support+{code.lower()}.{'é' * 16}@example.test"
    raw = mail("Another question", to=forged)
    await asyncio.to_thread(send_utf8, daemon.setup.smtp_port, raw, forged)
    entries = await settled(engine, 2)
    assert [entry.state for entry in entries] == ["done", "done"], entries[-1].error
    tickets = (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]
    assert sorted(t["subject"] for t in tickets) == ["Another question", "Printer on fire"]
