"""Sign-in rate limits: whether a password may be tried, or a link asked for, now.

A password attempt counts under three keys, and is refused if any is full:

- the address from one client network (``[web] login_rate_limit``): the lock an
  attacker can fill is the one on their own network, so a stranger guessing from
  elsewhere does not lock the agent out where the agent is;
- the client network, whatever the address (``login_ip_rate_limit``): one password
  sprayed over many addresses;
- the address from everywhere (``login_account_rate_limit``): a generous ceiling,
  because without it an attacker holding many networks gets
  ``login_rate_limit`` guesses per network against one account. Whoever fills it
  blocks only passwords: the agent can still sign in with a mailed link.

Asking for a sign-in link counts under keys of its own (the address, and the client
network), so throttled passwords never stop a link. A link goes to the agent's own
mailbox, so a stranger asking for many gains nothing: they fill the agent's inbox
with links that work, and only for the agent.

A client network is a /24 or a /64 (``mailgate.networks``). mailgate has no notion of
a trusted proxy, so the client is the peer of the connection: behind a reverse proxy
every client shares the proxy's network.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from mailgate.config import Web, parse_rate
from mailgate.db.session import sessions
from mailgate.networks import ip_of, network_of
from mailgate.outbox.ratelimit import Limit, take
from mailgate.web.keys import CONTEXT

# Longer than any mail address can be; keeps keys within the rate_events column.
_MAX_EMAIL_IN_KEY = 320


def client_network(remote: str | None) -> str:
    """The network ``remote`` belongs to (``networks.network_of``); something that is
    not an IP address (a unix socket) counts as is."""
    address = ip_of(remote or "")
    return network_of(address) if address else remote or "local"


def password_limits(settings: Web, email: str, network: str) -> list[Limit]:
    email = email[:_MAX_EMAIL_IN_KEY]
    return [
        (f"login:{email}:{network}", parse_rate(settings.login_rate_limit)),
        (f"login-net:{network}", parse_rate(settings.login_ip_rate_limit)),
        (f"login-account:{email}", parse_rate(settings.login_account_rate_limit)),
    ]


def link_limits(settings: Web, email: str, network: str) -> list[Limit]:
    return [
        (f"link:{email[:_MAX_EMAIL_IN_KEY]}", parse_rate(settings.login_rate_limit)),
        (f"link-net:{network}", parse_rate(settings.login_ip_rate_limit)),
    ]


async def throttled(request: web.Request, limits_for, email: str) -> bool:
    """Count this attempt under ``limits_for(settings, email, network)``; True if
    one of them is already full (and then nothing is counted)."""
    context = request.app[CONTEXT]
    limits = limits_for(context.runtime.settings.web, email, client_network(request.remote))
    async with sessions(context.engine).begin() as session:
        return await take(session, limits, datetime.now(UTC)) is not None
