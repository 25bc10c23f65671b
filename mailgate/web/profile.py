"""``/profile``: the signed-in agent's own settings, over their ``[[agents]]`` entry.

For now the signature under their replies. Saving it empty, or "Use the configured
signature", removes the agent's own one: the config's applies again.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from mailgate.actions.signatures import configured_signature, own_signature, set_signature
from mailgate.config import MAX_SIGNATURE
from mailgate.db.session import sessions
from mailgate.web.auth import AgentSession, require_agent, signed_in_agent
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.pages import see_other


@require_agent
async def profile(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    async with sessions(request.app[ENGINE])() as session:
        own = await own_signature(session, agent.email)
    return _page(request, agent, own, done=request.query.get("done", ""))


@require_agent
async def save_profile(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    form = await request.post()
    text = str(form.get("signature", "")).replace("\r\n", "\n").strip("\n")
    if len(text) > MAX_SIGNATURE:
        error = f"A signature has at most {MAX_SIGNATURE} characters."
        return _page(request, agent, text, error=error, status=422)
    keep = text if text.strip() and form.get("action") != "default" else None
    async with sessions(request.app[ENGINE]).begin() as session:
        await set_signature(session, agent.email, keep)
    return see_other("/profile?done=saved")


def _page(
    request: web.Request, agent: AgentSession, own: str | None, status: int = 200, **values
) -> web.Response:
    configured = configured_signature(request.app[RUNTIME], agent.email)
    context = {
        "agent": agent,
        "signature": configured if own is None else own,
        "own": own is not None,
        "configured": configured,
        "max_signature": MAX_SIGNATURE,
        **values,
    }
    return aiohttp_jinja2.render_template("profile.html", request, context, status=status)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/profile", profile)
    app.router.add_post("/profile", save_profile)
