"""Sign-in limits by client network: a stranger cannot lock an agent out.

Clients connect from different loopback addresses (all of 127.0.0.0/8 is local), so
the daemon sees them on different /24 networks: 127.0.2.x is the attacker's.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from mailgate.db.models import OutboxItem
from mailgate.db.session import sessions
from mailgate.web.login_limits import client_network
from tests.support import daemon_running, wait_until
from tests.web import WebClient, give_password, with_agents

PASSWORD = "correct horse battery"
ALICE = "alice@example.test"
ATTACKER = "127.0.2.1"


@pytest.fixture
async def daemon(setup):
    setup.sections["web"] |= {
        "login_rate_limit": "10/15m",
        "login_ip_rate_limit": "30/15m",
        "login_account_rate_limit": "25/1h",
    }
    with_agents(setup)
    async with daemon_running(setup) as process:
        yield process


@pytest.fixture
async def connect_from(daemon):
    """``connect_from(address)``: a web client whose connections come from ``address``."""
    clients: list[WebClient] = []

    def connect(source: str) -> WebClient:
        clients.append(WebClient(daemon.setup.web_port, source))
        return clients[-1]

    yield connect
    for client in clients:
        await client.close()


async def guess(client: WebClient, email: str, times: int) -> None:
    for _ in range(times):
        status, _, _ = await client.post("/login", {"email": email, "password": "not it at all"})
        assert status == 401


async def try_password(client: WebClient, email: str) -> tuple[int, str]:
    status, body, _ = await client.post("/login", {"email": email, "password": PASSWORD})
    return status, body


async def sign_in_by_link(client: WebClient, engine, email: str) -> None:
    """Ask for a link, take it from the outbox, and use it: a session cookie."""
    status, body, _ = await client.post("/login/link", {"email": email})
    assert status == 200 and "a sign-in link is on its way" in body

    async def mailed():
        async with sessions(engine)() as session:
            rows = await session.scalars(select(OutboxItem))
            return [row for row in rows if row.kind == "login_link" and row.recipients == [email]]

    [mail] = await wait_until(mailed, "the sign-in link")
    path = re.search(rb"http://127\.0\.0\.1:\d+(/login/link/\S+)", mail.raw).group(1).decode()
    status, _, response = await client.post(path, {}, csrf_from=path)
    assert status == 303 and "mailgate_session=" in response.headers["Set-Cookie"]


async def test_wrong_passwords_from_one_network_lock_only_that_network(
    daemon, engine, connect_from
):
    await give_password(engine, ALICE, PASSWORD)
    await guess(connect_from(ATTACKER), ALICE, 10)
    for neighbour in (ATTACKER, "127.0.2.77"):  # the whole /24 is held back
        status, body = await try_password(connect_from(neighbour), ALICE)
        assert status == 429 and "Too many sign-in attempts" in body
    await connect_from("127.0.3.1").sign_in(ALICE, PASSWORD)


async def test_one_network_spraying_many_addresses_is_stopped(daemon, engine, connect_from):
    await give_password(engine, "budi@example.test", PASSWORD)
    attacker = connect_from(ATTACKER)
    for email in (ALICE, "budi@example.test", "root@example.test"):
        await guess(attacker, email, 10)
    status, _ = await try_password(attacker, "nia@example.test")
    assert status == 429  # the network's 30 attempts are used up
    await connect_from("127.0.3.1").sign_in("budi@example.test", PASSWORD)


async def test_a_sign_in_link_works_while_passwords_are_throttled(daemon, engine, connect_from):
    await give_password(engine, ALICE, PASSWORD)
    office = connect_from(ATTACKER)  # the agent shares the attacker's network
    await guess(office, ALICE, 10)
    assert (await try_password(office, ALICE))[0] == 429
    await sign_in_by_link(office, engine, ALICE)
    status, body, _ = await office.get("/login")
    assert status == 200 and f"You are signed in as Alice ({ALICE})" in body


async def test_the_account_ceiling_stops_passwords_from_everywhere_but_not_links(
    daemon, engine, connect_from
):
    await give_password(engine, ALICE, PASSWORD)
    for network, times in (("127.0.2.1", 10), ("127.0.4.1", 10), ("127.0.5.1", 5)):
        await guess(connect_from(network), ALICE, times)
    agent = connect_from("127.0.3.1")
    status, body = await try_password(agent, ALICE)
    assert status == 429 and "Too many sign-in attempts" in body
    await sign_in_by_link(agent, engine, ALICE)


@pytest.mark.parametrize(
    ("remote", "network"),
    [
        ("192.0.2.77", "192.0.2.0/24"),
        ("::ffff:192.0.2.77", "192.0.2.0/24"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("", "local"),
        (None, "local"),
    ],
)
def test_client_networks_are_a_slash_24_or_a_slash_64(remote, network):
    assert client_network(remote) == network
