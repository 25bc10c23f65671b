"""Who is asking, and may they: agent sessions, the agent/admin guards, CSRF tokens.

A signed-in browser holds the cookie ``mailgate_session`` = ``<token>.<mac>``
(signed, HttpOnly, SameSite=Lax, Secure on an https ``base_url``). Every page a
guard protects re-reads the config, so an agent removed from ``[[agents]]`` is out
at once. The ``auth`` middleware loads the session before any handler runs, so
``current_agent(request)`` is a plain lookup.

CSRF: every browser has a seed, the session token or else a random
``mailgate_csrf`` cookie; a form carries ``csrf`` = MAC(seed). The middleware
refuses (403) any unsafe request outside ``/api/`` without the right token, so a
handler never has to remember. Handlers read the form with ``await request.post()``
(the middleware already parsed it; aiohttp keeps it).
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.db.models import Ticket
from mailgate.localtime import zone_named
from mailgate.runtime import RuntimeConfig
from mailgate.web.badinput import posted_form
from mailgate.web.keys import CONTEXT, ENGINE, RUNTIME
from mailgate.web.sessions import session_email

SESSION_COOKIE = "mailgate_session"
SEED_COOKIE = "mailgate_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# No sessions or CSRF on these: static files, the bearer-token API, probes, and the
# customers' pages (portal, web form), whose forms carry tokens of their own
# (mailgate/web/forms.py) and stream their attachments under the mail size limit.
EXEMPT_PREFIXES = ("/static/", "/api/", "/healthz", "/metrics", "/t/", "/new")


@dataclass(frozen=True)
class AgentSession:
    """A signed-in agent as the config describes them right now."""

    email: str
    name: str
    admin: bool
    queues: frozenset[str]  # the queues of the routes that list this agent
    zone: ZoneInfo  # the agent's own time zone, else the team's

    def can_see(self, ticket: Ticket) -> bool:
        return self.admin or ticket.queue in self.queues or ticket.assignee == self.email

    def visible(self, query):
        """``query`` (over Ticket) narrowed to the tickets this agent may see."""
        if self.admin:
            return query
        return query.where(or_(Ticket.queue.in_(self.queues), Ticket.assignee == self.email))


AGENT = web.RequestKey("agent", AgentSession | None)
NEW_SEED = web.RequestKey("csrf_seed", str)


def agent_session(runtime: RuntimeConfig, email: str) -> AgentSession | None:
    """``email`` as an agent of the current config, or None if it is not one."""
    for agent in runtime.settings.agents:
        if agent.email.lower() == email.lower():
            queues = frozenset(
                route.queue
                for route in runtime.settings.routes
                if email.lower() in {a.lower() for a in route.agents}
            )
            zone = zone_named(agent.timezone) if agent.timezone else runtime.settings.tickets.zone
            return AgentSession(agent.email.lower(), agent.name, agent.admin, queues, zone)
    return None


def current_agent(request: web.Request) -> AgentSession | None:
    """The signed-in agent, or None (set by the ``auth`` middleware)."""
    return request.get(AGENT)


def display_zone(request: web.Request) -> ZoneInfo:
    """The zone this page shows times in: the signed-in agent's, else the team's."""
    agent = current_agent(request)
    return agent.zone if agent else request.app[RUNTIME].settings.tickets.zone


def signed_in_agent(request: web.Request) -> AgentSession:
    """The signed-in agent; a browser that is not signed in goes to the login page."""
    agent = current_agent(request)
    if agent is None:
        # After signing in, come back to the page; a form post cannot be repeated.
        back = request.path_qs if request.method == "GET" else "/"
        raise web.HTTPSeeOther(f"/login?next={quote(back, safe='/')}")
    return agent


def require_agent(handler):
    """Decorator: the handler runs only for a signed-in agent."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        signed_in_agent(request)
        return await handler(request)

    return guarded


def require_admin(handler):
    """Decorator: the handler runs only for a signed-in admin (others get 403)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not signed_in_agent(request).admin:
            raise web.HTTPForbidden(text="This page is for admins.")
        return await handler(request)

    return guarded


def session_token(request: web.Request) -> str | None:
    """The session token of the cookie, if its signature holds."""
    token, _, mac = request.cookies.get(SESSION_COOKIE, "").rpartition(".")
    if token and request.app[CONTEXT].signer.verify("session", token, mac):
        return token
    return None


def csrf_token(request: web.Request) -> str:
    """The token every form of this page must send back as ``csrf``."""
    seed = session_token(request) or request.cookies.get(SEED_COOKIE) or request.get(NEW_SEED)
    if not seed:
        seed = request[NEW_SEED] = secrets.token_urlsafe(24)
    return request.app[CONTEXT].signer.sign("csrf", seed)


def check_csrf(request: web.Request, form) -> None:
    """403 unless ``form`` (or the X-CSRF-Token header) carries this browser's token."""
    sent = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
    seed = session_token(request) or request.cookies.get(SEED_COOKIE)
    if not seed or not request.app[CONTEXT].signer.verify("csrf", seed, sent):
        raise web.HTTPForbidden(text="The form is missing its security token; reload the page.")


def set_cookie(request: web.Request, response: web.StreamResponse, name: str, value: str) -> None:
    """A cookie as mailgate sets them: HttpOnly, SameSite=Lax, Secure on https."""
    secure = request.app[RUNTIME].settings.web.base_url.startswith("https:")
    response.set_cookie(name, value, httponly=True, samesite="Lax", secure=secure, path="/")


@web.middleware
async def auth(request: web.Request, handler):
    """Load the session, refuse forged form posts, hand out a CSRF seed when needed."""
    if request.path.startswith(EXEMPT_PREFIXES):
        return await handler(request)
    request[AGENT] = await _load_agent(request)
    if request.method not in SAFE_METHODS:
        check_csrf(request, await posted_form(request))
    response = await handler(request)
    if NEW_SEED in request:
        set_cookie(request, response, SEED_COOKIE, request[NEW_SEED])
    return response


async def _load_agent(request: web.Request) -> AgentSession | None:
    token = session_token(request)
    if token is None:
        return None
    async with AsyncSession(request.app[ENGINE]) as session:
        email = await session_email(session, token)
    return agent_session(request.app[RUNTIME], email) if email else None
