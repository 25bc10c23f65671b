"""Signing in and out: a password, or a one-time link sent to the agent's mailbox.

Both are rate-limited per address and per client address (``[web]
login_rate_limit``, ``login_ip_rate_limit``), counted in the database so every node
agrees. A login link is confirmed with a button, not by opening it: mail scanners
that fetch every link must not use it up.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp_jinja2
from aiohttp import web

from mailgate.accounts import password_matches
from mailgate.config import Route, parse_rate
from mailgate.db.session import sessions
from mailgate.outbox.queue import enqueue_outgoing
from mailgate.outbox.ratelimit import take
from mailgate.runtime import RuntimeConfig
from mailgate.web.auth import (
    SESSION_COOKIE,
    agent_session,
    session_token,
    set_cookie,
)
from mailgate.web.keys import CONTEXT, PASSWORDS
from mailgate.web.pages import see_other
from mailgate.web.redirects import local_path
from mailgate.web.sessions import (
    end_session,
    issue_login_token,
    login_token_usable,
    redeem_login_token,
    start_session,
)


async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in forms; a signed-in agent sees who they are and may sign out."""
    return _login_page(request, request.query.get("next", "/"))


def _login_page(request, next_path, status=200, **values) -> web.StreamResponse:
    values.setdefault("email", "")
    return aiohttp_jinja2.render_template(
        "login.html", request, {"next": local_path(next_path), **values}, status=status
    )


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()
    next_path = str(form.get("next", "/"))
    if await _throttled(request, email):
        return _login_page(request, next_path, 429, email=email, error="too_many")
    context = request.app[CONTEXT]
    async with sessions(context.engine)() as session:
        ok = await password_matches(
            session, request.app[PASSWORDS], email, str(form.get("password", ""))
        )
    if not ok or agent_session(context.runtime, email) is None:
        return _login_page(request, next_path, 401, email=email, error="wrong")
    return await _signed_in(request, email, next_path)


async def _signed_in(request: web.Request, email: str, next_path: str) -> web.StreamResponse:
    context = request.app[CONTEXT]
    async with sessions(context.engine).begin() as session:
        token = await start_session(session, email, context.runtime.settings.web.session_hours)
    response = see_other(local_path(next_path))
    set_cookie(
        request, response, SESSION_COOKIE, f"{token}.{context.signer.sign('session', token)}"
    )
    return response


async def _throttled(request: web.Request, email: str) -> bool:
    """Count this attempt; True if the address or the client is over its limit."""
    limits = request.app[CONTEXT].runtime.settings.web
    keys = [
        (f"login:{email}", parse_rate(limits.login_rate_limit)),
        (f"login-ip:{request.remote}", parse_rate(limits.login_ip_rate_limit)),
    ]
    async with sessions(request.app[CONTEXT].engine).begin() as session:
        return await take(session, keys, datetime.now(UTC)) is not None


async def request_link(request: web.Request) -> web.StreamResponse:
    """Mail a login link to an agent's address; the answer never says who is an agent."""
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()
    next_path = str(form.get("next", "/"))
    if await _throttled(request, email):
        return _login_page(request, next_path, 429, email=email, error="too_many")
    context = request.app[CONTEXT]
    agent = agent_session(context.runtime, email)
    route = _sending_route(context.runtime, email)
    if agent is not None and route is not None:
        async with sessions(context.engine).begin() as session:
            token = await issue_login_token(session, email)
            mail = context.composer.login_link(route, email, agent.name, f"/login/link/{token}")
            enqueue_outgoing(session, mail, ticket=None)
        context.wake_delivery()
    return _login_page(request, next_path, email=email, link_sent=True)


def _sending_route(runtime: RuntimeConfig, email: str) -> Route | None:
    """The route a login link comes from: the agent's first route, else the first one."""
    routes = runtime.settings.routes
    mine = [route for route in routes if email in {a.lower() for a in route.agents}]
    return (mine or routes or [None])[0]


async def link_form(request: web.Request) -> web.StreamResponse:
    token = request.match_info["token"]
    async with sessions(request.app[CONTEXT].engine)() as session:
        usable = await login_token_usable(session, token)
    return aiohttp_jinja2.render_template(
        "login_link.html",
        request,
        {"token": token, "usable": usable},
        status=200 if usable else 410,
    )


async def use_link(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    async with sessions(context.engine).begin() as session:
        email = await redeem_login_token(session, request.match_info["token"])
    if email is None or agent_session(context.runtime, email) is None:
        return aiohttp_jinja2.render_template(
            "login_link.html", request, {"usable": False}, status=410
        )
    return await _signed_in(request, email, "/")


async def logout(request: web.Request) -> web.StreamResponse:
    token = session_token(request)
    if token is not None:
        async with sessions(request.app[CONTEXT].engine).begin() as session:
            await end_session(session, token)
    response = see_other("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/login/link", request_link)
    app.router.add_get("/login/link/{token}", link_form)
    app.router.add_post("/login/link/{token}", use_link)
    app.router.add_post("/logout", logout)
