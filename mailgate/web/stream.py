"""``GET /live``: the server-sent event stream behind an agent's open page.

``?ticket=CODE`` follows one ticket (its changes and who else is on it), else every
ticket the agent may see (the inbox and the board). A browser that reconnects sends
``Last-Event-ID`` (the page's first connection ``?since=``, the cursor it was drawn
at) and first gets what it missed, read from the database; if that is too much it is
told to reload. Events name tickets and who is there, nothing the page does not show.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.web.auth import agent_session, require_agent, signed_in_agent
from mailgate.web.changes import BATCH, Cursor, changes_since
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.live import LIVE, Event, LiveHub, Stream, ticket_event
from mailgate.web.pages import SECURITY_HEADERS
from mailgate.web.ticket_view import find_ticket

KEEPALIVE_SECONDS = 15.0  # a comment this often keeps proxies from closing the stream
CHECK_SECONDS = 1.0  # how soon a closed page stops counting as viewing
RETRY_MILLISECONDS = 2000
RESYNC = Event("resync", {})


@require_agent
async def live(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    ticket_id = None
    if code := request.query.get("ticket", ""):
        async with AsyncSession(request.app[ENGINE]) as session:
            ticket_id = (await find_ticket(session, agent, code)).id
    sent = request.headers.get("Last-Event-ID", "") or request.query.get("since", "")
    hub = request.app[LIVE]
    stream = hub.open(
        Stream(agent, ticket_id, Cursor.parse(sent), connected=lambda: not _gone(request))
    )
    response = web.StreamResponse(
        headers={
            **SECURITY_HEADERS,
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # a reverse proxy passes each event on at once
        }
    )
    try:
        await hub.ready()
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MILLISECONDS}\n\n".encode())
        if await _catch_up(request, stream, response):
            await _pump(request, stream, response)
    except ConnectionError:  # the browser went away
        pass
    finally:
        await hub.close(stream)
    return response


async def _catch_up(request: web.Request, stream: Stream, response: web.StreamResponse) -> bool:
    """Send what happened since the stream's cursor; False when it must reload."""
    if stream.since is None:
        return True
    async with request.app[ENGINE].connect() as connection:
        changes = await changes_since(connection, stream.since)
    if len(changes) >= BATCH:
        await response.write(RESYNC.encode())
        return False
    cursor = stream.since.after(changes)
    for change in changes:
        stream.sent.add(change.key)
        if stream.wants(change):
            await response.write(ticket_event(change, cursor).encode())
    return True


async def _pump(request: web.Request, stream: Stream, response: web.StreamResponse) -> None:
    """Hand on the hub's events until the server stops, the browser goes away or the
    agent is removed from the config."""
    runtime = request.app[RUNTIME]
    quiet = 0.0
    while not _gone(request):
        try:
            event = await asyncio.wait_for(stream.queue.get(), CHECK_SECONDS)
        except TimeoutError:
            quiet += CHECK_SECONDS
            if quiet >= KEEPALIVE_SECONDS:
                if agent_session(runtime, stream.agent.email) is None:
                    return
                await response.write(b": keepalive\n\n")
                quiet = 0.0
            continue
        if event is None:
            return
        if stream.overflowed:
            await response.write(RESYNC.encode())
            return
        if event.key is None or event.key not in stream.sent:
            await response.write(event.encode())


def _gone(request: web.Request) -> bool:
    """The browser closed the connection (aiohttp does not cancel the handler)."""
    transport = request.transport
    return transport is None or transport.is_closing()


def live_updates(app: web.Application) -> None:
    """The hub on ``app[LIVE]``: its loop runs with the app, its streams end first."""
    hub = app[LIVE]

    async def running(app: web.Application):
        task = asyncio.create_task(hub.run(), name="live")
        yield
        hub.shutdown()
        await task

    async def stopping(app: web.Application) -> None:
        hub.shutdown()

    app.cleanup_ctx.append(running)
    app.on_shutdown.append(stopping)


def add_routes(app: web.Application) -> None:
    app[LIVE] = LiveHub(app[ENGINE], app[RUNTIME])
    live_updates(app)
    app.router.add_get("/live", live)
