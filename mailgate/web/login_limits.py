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

A client network is the /24 of an IPv4 address and the /64 of an IPv6 one (one
household, office or cloud customer usually holds one). mailgate has no notion of a
trusted proxy, so the client is the peer of the connection: behind a reverse proxy
every client shares the proxy's network.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from aiohttp import web

from mailgate.config import Web, parse_rate
from mailgate.db.session import sessions
from mailgate.outbox.ratelimit import Limit, take
from mailgate.web.keys import CONTEXT

# Longer than any mail address can be; keeps keys within the rate_events column.
_MAX_EMAIL_IN_KEY = 320


def client_network(remote: str | None) -> str:
    """The network the client ``remote`` belongs to: ``"192.0.2.0/24"``,
    ``"2001:db8:1:2::/64"``; an address that is not an IP (a unix socket) as is."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "local"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network((address, prefix), strict=False))


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
