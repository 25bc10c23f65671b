"""Arbitrary text from a client never gets a 5xx: every API route and the portal,
sign-in and web form routes, driven with odd strings in path parameters, query
parameters, cookies, the Authorization and CSRF headers and bodies, against a real
daemon on a real port with a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from hypothesis import strategies as st

from mailgate.signing import Signer
from tests.support import api_get, daemon_running, wait_until
from tests.test_pipeline import mail, send
from tests.web import WebClient, give_password, raw_request

PASSWORD = "correct horse battery"
BOUNDARY = "fuzzboundary"
TOKEN = "test-token"


@dataclass(frozen=True)
class Known:
    """Valid values, so that some requests pass the first check and reach deeper."""

    code: str
    portal_key: str
    session_cookie: str
    csrf: str


@pytest.fixture
async def daemon(setup):
    setup.sections["api"] = {"tokens": [TOKEN]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice", "admin": True}]
    async with daemon_running(setup) as process:
        yield process


@pytest.fixture
async def known(daemon, engine) -> Known:
    await asyncio.to_thread(send, daemon.setup.smtp_port, mail("Printer on fire"))

    async def listed():
        return (await api_get(daemon.setup, "/api/v1/tickets"))["tickets"]

    [ticket] = await wait_until(listed, "the ticket")
    await give_password(engine, "alice@example.test", PASSWORD)
    client = WebClient(daemon.setup.web_port)
    try:
        await client.sign_in("alice@example.test", PASSWORD)
        csrf = await client.csrf("/reports")
        cookie = next(c.value for c in client.http.cookie_jar if c.key == "mailgate_session")
    finally:
        await client.close()
    key = Signer(b"test-secret-key").portal_token(ticket["code"])
    return Known(ticket["code"], key, cookie, csrf)


# Any code point, lone surrogates included (they reach the server as invalid UTF-8).
TEXT = st.text(st.characters(codec=None), max_size=30)
ODD_TEXT = st.one_of(
    TEXT,
    st.sampled_from(["²", "٣", "9999-12-31", "0001-01-01", "9" * 20, "-1", "\x00", "é", "ǅ"]),
    st.integers().map(str),
)
# Header values: mostly without control characters, which the HTTP parser refuses
# before any of our code sees them.
HEADER_TEXT = st.text(st.characters(codec=None, exclude_categories=["Cc"]), max_size=30) | TEXT.map(
    lambda text: text.replace("\r", "").replace("\n", "")
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=10,
)
API_BODY = st.fixed_dictionaries(
    {},
    optional={
        "status": JSON | st.sampled_from(["open", "solved"]),
        "priority": JSON,
        "assignee": JSON | st.just("alice@example.test"),
        "tags": st.lists(ODD_TEXT, max_size=5) | JSON,
        "kind": JSON | st.sampled_from(["agent", "note"]),
        "text": JSON,
        "agent": JSON | st.just("alice@example.test"),
        "name": JSON | st.just("refund"),
        "body": JSON,
        "queue": JSON | st.just("support"),
        "owner": JSON | st.just("alice@example.test"),
    },
)
FORM_FIELDS = ("email", "password", "next", "name", "subject", "message", "text", "csrf",
               "body", "scope")  # fmt: skip

LIST_PARAMS = ("status", "queue", "assignee", "customer", "q", "limit", "cursor")
# (method, path template, query parameter names, body kind)
ROUTES = [
    ("GET", "/api/v1/tickets", LIST_PARAMS, None),
    ("GET", "/api/v1/tickets/{code}", (), None),
    ("PATCH", "/api/v1/tickets/{code}", (), "json"),
    ("POST", "/api/v1/tickets/{code}/messages", (), "json"),
    ("POST", "/api/v1/canned-replies", (), "json"),
    ("PATCH", "/api/v1/canned-replies/{code}", (), "json"),
    ("GET", "/api/v1/tickets/{code}/canned-replies/{code}/rendered", ("agent",), None),
    ("GET", "/api/v1/openapi.json", (), None),
    ("GET", "/t/{code}", ("k", "sent"), None),
    ("POST", "/t/{code}", ("k",), "form"),
    ("GET", "/login", ("next",), None),
    ("POST", "/login", (), "form"),
    ("POST", "/login/link", (), "form"),
    ("GET", "/login/link/{code}", (), None),
    ("POST", "/login/link/{code}", (), "form"),
    ("POST", "/logout", (), "form"),
    ("GET", "/new", ("to",), None),
    ("POST", "/new", ("to",), "form"),
    ("GET", "/reports", ("from", "to", "days"), None),
    ("GET", "/tickets", ("status", "queue", "q", "page", "cursor"), None),
    ("GET", "/tickets/{code}", (), None),
    ("POST", "/tickets/{code}/update", (), "form"),
    ("POST", "/canned", (), "form"),
    ("GET", "/canned/{code}", (), None),
    ("POST", "/canned/{code}", (), "form"),
]  # fmt: skip


@st.composite
def requests(draw, known: Known):
    method, template, names, body_kind = draw(st.sampled_from(ROUTES))
    code = draw(st.just(known.code) | ODD_TEXT)
    target = template.format(code=quote(code, safe="", errors="surrogatepass"))
    query = {name: draw(ODD_TEXT) for name in names if draw(st.booleans())}
    if "k" in query and draw(st.booleans()):
        query["k"] = known.portal_key
    if query:
        target += "?" + urlencode(query, errors="surrogatepass")
    headers = _headers(draw, known)
    return method, target, headers, _body(draw, body_kind, known)


def _headers(draw, known: Known) -> list[tuple[str, str]]:
    session = draw(st.just(known.session_cookie) | HEADER_TEXT)
    seed_cookie = draw(HEADER_TEXT)
    token = draw(st.just(TOKEN) | HEADER_TEXT)
    scheme = draw(st.sampled_from(["Bearer", "bearer", "Basic", ""]))
    headers = [
        ("Cookie", f"mailgate_session={session}; mailgate_csrf={seed_cookie}"),
        ("Authorization", f"{scheme} {token}"),
        ("X-CSRF-Token", draw(st.just(known.csrf) | HEADER_TEXT)),
    ]
    return [header for header in headers if draw(st.booleans())]


def _body(draw, kind: str | None, known: Known) -> tuple[str, bytes] | None:
    if kind == "json":
        value = draw(API_BODY | JSON)
        raw = json.dumps(value).encode("utf-8", "surrogatepass")
        return "application/json", draw(st.just(raw) | st.binary(max_size=40))
    if kind == "form":
        fields = {name: draw(ODD_TEXT) for name in FORM_FIELDS if draw(st.booleans())}
        if draw(st.booleans()):
            fields["csrf"] = known.csrf
        encoded = urlencode(fields, errors="surrogatepass").encode()
        if draw(st.booleans()):
            return "application/x-www-form-urlencoded", draw(st.just(encoded) | st.binary())
        return f"multipart/form-data; boundary={BOUNDARY}", draw(_multipart(fields) | st.binary())
    return None


@st.composite
def _multipart(draw, fields: dict[str, str]) -> bytes:
    """A multipart form of ``fields`` and perhaps a file, or a mangled one."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    if draw(st.booleans()):
        name = draw(HEADER_TEXT)
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: {draw(HEADER_TEXT)}\r\n\r\n{draw(TEXT)}\r\n"
        )
    body = ("".join(parts) + f"--{BOUNDARY}--\r\n").encode("utf-8", "surrogatepass")
    cut = draw(st.integers(0, len(body)))
    return body if draw(st.booleans()) else body[:cut] + draw(st.binary(max_size=10))


@seed(13)
@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_request_gets_a_5xx(daemon, known, data):
    method, target, headers, body = data.draw(requests(known))
    if body is not None:
        headers = [*headers, ("Content-Type", body[0])]
    status, answer = raw_request(
        daemon.setup.web_port, method, target, headers, body[1] if body else b""
    )
    event(f"{method} {target.partition('?')[0].split('/')[1]} {status}")
    assert status < 500, (method, target, headers, body, answer[:2000])
