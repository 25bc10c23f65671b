"""Satisfaction ratings and who the reports credit, through a running daemon.

The solved mail is caught by the smarthost sink, its Good/Bad links are followed
over plain HTTP, and the rating is read back from the ticket page, the JSON API and
the report page. Opening a link records nothing; the form's POST does.
"""

from __future__ import annotations

import html
import re

import pytest

from mailgate.signing import Signer
from tests.support import MailgateProcess, api_get, wait_until
from tests.test_api_write import conforms
from tests.test_pipeline import mail
from tests.test_web_agent import PASSWORD, deliver
from tests.web import WebClient, give_password, with_agents

RATING_LINK = re.compile(r"(Good|Bad|Baik|Buruk): +http://127\.0\.0\.1:\d+(/t/\S+)")
SIGNER = Signer(b"test-secret-key")  # the daemon's [web] secret_key in tests
SECTION = re.compile(r'<section class="card[^"]*">\s*<h2>(.*?)</h2>(.*?)</section>', re.S)


@pytest.fixture
async def daemon(setup, smarthost, engine):
    setup.sections["outbound"] = {"smarthost": f"127.0.0.1:{smarthost.port}"}
    setup.sections["api"] = {"tokens": ["test-token"]}
    with_agents(setup)
    process = MailgateProcess(setup)
    await process.start()
    for agent in ("alice", "budi", "root"):
        await give_password(engine, f"{agent}@example.test", PASSWORD)
    yield process
    assert await process.stop() == 0


@pytest.fixture
async def web(daemon):
    """web("alice") -> a client signed in as that agent; web(None) -> a customer's."""
    clients = []

    async def client(name: str | None) -> WebClient:
        made = WebClient(daemon.setup.web_port)
        clients.append(made)
        if name:
            await made.sign_in(f"{name}@example.test", PASSWORD)
        return made

    yield client
    for made in clients:
        await made.close()


async def solved_mail_links(smarthost, code: str) -> dict[str, str]:
    """The rating links of ``code``'s solved mail, by their label."""

    async def solved():
        for received in smarthost.messages:
            subject = received.message["Subject"]
            if f"[{code}]" in subject and ("Solved" in subject or "Selesai" in subject):
                return received
        return None

    text = (await wait_until(solved, f"the solved mail of {code}")).message.get_content()
    return dict(RATING_LINK.findall(text))


def sections(page: str) -> dict[str, str]:
    """The report page's cards: heading -> content."""
    return {html.unescape(title): body for title, body in SECTION.findall(page)}


async def rate(customer: WebClient, link: str, score: str, comment: str):
    return await customer.post(link, {"score": score, "comment": comment}, csrf_from=link)


async def satisfaction(daemon, code: str):
    """The ticket's ``satisfaction`` in the API, which documents what it answers."""
    ticket = await api_get(daemon.setup, f"/api/v1/tickets/{code}")
    conforms(ticket, "TicketDetail")
    return ticket["satisfaction"]


async def test_rating_from_the_solved_mail_shows_everywhere_until_closed(
    daemon, engine, smarthost, web
):
    [code] = await deliver(daemon, engine, (mail("Screen flickers"), "support@example.test"))
    page = f"/tickets/{code}"
    alice, budi, root = await web("alice"), await web("budi"), await web("root")
    status, _, _ = await alice.post(f"{page}/reply", {"text": "Try a new cable."}, page)
    assert status == 303
    status, _, _ = await alice.post(f"{page}/update", {"assignee": "budi@example.test"}, page)
    assert status == 303
    status, _, _ = await budi.post(f"{page}/update", {"status": "Solved"}, page)
    assert status == 303
    links = await solved_mail_links(smarthost, code)

    customer = await web(None)
    status, form, _ = await customer.get(links["Good"])
    assert status == 200 and "How did we do?" in form
    assert 'value="good" checked' in form and '<textarea id="comment"' in form
    assert await satisfaction(daemon, code) is None  # opening the link records nothing

    status, _, response = await rate(customer, links["Good"], "good", "Fast and friendly")
    assert status == 303 and "saved=1" in response.headers["Location"]
    _, thanks, _ = await customer.get(response.headers["Location"])
    assert "Your rating was saved" in thanks and "Fast and friendly" in thanks
    rating = await satisfaction(daemon, code)
    assert rating["score"] == "good" and rating["comment"] == "Fast and friendly"
    assert rating["at"].endswith("+00:00")
    _, ticket_page, _ = await budi.get(page)
    assert 'badge good">Good</span>' in ticket_page and "<q>Fast and friendly</q>" in ticket_page

    _, report, _ = await root.get("/reports", params={"days": "7"})
    cards = sections(report)
    assert "support (1): 100%" in cards["Good ratings by queue"]
    assert "Budi (1): 100%" in cards["Good ratings by agent (who solved it)"]
    assert "Fast and friendly" in report and f'href="/tickets/{code}"' in report
    # Alice answered first, Budi solved it: each is credited with their own part,
    # shown by name.
    assert "Alice (1): " in cards["Median first response by agent"]
    assert "Budi" not in cards["Median first response by agent"]
    assert "Budi (1): " in cards["Median resolution time by agent"]
    assert "Alice" not in cards["Median resolution time by agent"]

    status, _, _ = await rate(customer, links["Bad"], "bad", "On second thought: it flickers")
    assert status == 303
    assert (await satisfaction(daemon, code))["score"] == "bad"
    _, ticket_page, _ = await budi.get(page)
    assert "rated the ticket good" in ticket_page and "rated the ticket bad" in ticket_page
    _, report, _ = await root.get("/reports", params={"days": "7"})
    assert "support (1): 0%" in sections(report)["Good ratings by queue"]

    status, _, _ = await budi.post(f"{page}/update", {"status": "Closed"}, page)
    assert status == 303
    status, closed, _ = await customer.get(links["Good"])
    assert status == 200 and "can no longer be changed" in closed and "<textarea" not in closed
    late = {"csrf": SIGNER.sign("rating-form", code), "score": "good", "comment": "late"}
    status, refused, _ = await customer.post(links["Good"], late, csrf_from=None)
    assert status == 409 and "can no longer be changed" in refused
    assert (await satisfaction(daemon, code))["score"] == "bad"


async def test_links_speak_indonesian_and_refuse_forgeries_clearly(daemon, engine, smarthost, web):
    [code] = await deliver(daemon, engine, (mail("Salah PPN"), "billing@example.test"))
    page = f"/tickets/{code}"
    budi = await web("budi")
    status, _, _ = await budi.post(f"{page}/update", {"status": "Solved"}, page)
    assert status == 303
    links = await solved_mail_links(smarthost, code)
    assert set(links) == {"Baik", "Buruk"}
    customer = await web(None)
    status, form, _ = await customer.get(links["Buruk"])
    assert status == 200 and "Bagaimana layanan kami?" in form and 'value="bad" checked' in form

    good, bad = links["Baik"], links["Buruk"]
    good_mac = good.partition("?s=")[2]
    for path in (
        good[:-4] + ("aaaa" if not good.endswith("aaaa") else "bbbb"),  # forged
        f"/t/{code}/rate/bad?s={good_mac}",  # the Good signature on the Bad link
        f"/t/{code}/rate/meh?s={good_mac}",  # no such score
        f"/t/{code}/rate/good?s=%C3%A9%C3%A9",  # non-ASCII: "éé"
        f"/t/{code}/rate/good?s=%FF%FE",  # not even UTF-8
        f"/t/{code}/rate/good",  # no signature
        f"/t/{code}?k=%C3%A9",  # the portal compares its tokens the same way
    ):
        status, body, _ = await customer.get(path)
        assert status == 404 and "There is no such page" in body, path
        status, _, _ = await customer.post(path, {"score": "good", "csrf": "x"}, csrf_from=None)
        assert status == 404, path

    forged = {"csrf": "forged", "score": "bad", "comment": "Tidak membantu"}
    status, page_again, _ = await customer.post(bad, forged, csrf_from=None)
    assert (
        status == 400 and "kedaluwarsa" in page_again and "Tidak membantu</textarea>" in page_again
    )
    status, page_again, _ = await customer.post(bad, {"score": "meh"}, csrf_from=bad)
    assert status == 400 and "Mohon pilih Baik atau Buruk" in page_again
    assert await satisfaction(daemon, code) is None
