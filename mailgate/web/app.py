"""The aiohttp application: built by ``init_app`` from what the daemon hands it."""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate import __version__
from mailgate.db.session import ping
from mailgate.runtime import RuntimeConfig
from mailgate.web import api
from mailgate.web.keys import ENGINE, RUNTIME

HEALTH_TIMEOUT_SECONDS = 3.0


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 (still JSON) when it does not."""
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            await ping(request.app[ENGINE])
    except Exception as exc:  # any failure to reach the database is "unavailable"
        body = {"status": "unavailable", "database": f"error: {exc or type(exc).__name__}"}
        return web.json_response({**body, "version": __version__}, status=503)
    return web.json_response({"status": "ok", "database": "ok", "version": __version__})


def init_app(engine: AsyncEngine, runtime: RuntimeConfig) -> web.Application:
    app = web.Application(middlewares=[api.api_errors])
    app[ENGINE] = engine
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", healthz)
    api.add_routes(app)
    return app
