"""Time limits on what a web client sends: the request head, then its body.

Without them a client holds a connection for as long as it likes by never finishing
what it sends. The head: aiohttp closes a connection that has not delivered a complete
request head within its keep-alive timeout of connecting or of the previous response,
so ``[web] header_timeout_seconds`` is that timeout (an idle keep-alive connection
goes after as long). The body: ``body_deadline`` answers 408 when a body is not
complete within ``[web] body_timeout_seconds`` of its head, and aiohttp then closes
the connection (after its lingering time, for a client still sending).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from mailgate.config import Web
from mailgate.web.keys import RUNTIME

log = logging.getLogger(__name__)


def server_options(config: Web) -> dict[str, float]:
    """Options for aiohttp's request handler (``web.AppRunner`` keyword arguments)."""
    return {"keepalive_timeout": config.header_timeout_seconds}


@web.middleware
async def body_deadline(request: web.Request, handler):
    if request.content.is_eof():  # no body, or all of it is in already
        return await handler(request)
    loop = asyncio.get_running_loop()
    seconds = request.app[RUNTIME].settings.web.body_timeout_seconds
    try:
        async with asyncio.timeout(None) as deadline:
            check = loop.call_later(seconds, _expire_if_unfinished, request, deadline)
            try:
                return await handler(request)
            finally:
                check.cancel()
    except TimeoutError:
        if not deadline.expired():
            raise
    log.info("request body not complete in time", extra={"fields": {"path": request.path}})
    raise web.HTTPRequestTimeout()  # aiohttp closes a connection with a body unread


def _expire_if_unfinished(request: web.Request, deadline: asyncio.Timeout) -> None:
    """A handler that already has the whole body may take its time."""
    if not request.content.is_eof():
        deadline.reschedule(asyncio.get_running_loop().time())
