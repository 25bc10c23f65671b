"""Server-rendered pages: Jinja2 set-up, static files and the security headers.

Pages extend ``templates/web/base.html``. An admin's ``[templates] directory`` may
override any of them (``web/<name>.html``), like the mail templates.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp_jinja2
import jinja2
from aiohttp import web

from mailgate.resources import OverridableLoader, builtin_templates
from mailgate.web.auth import csrf_token, current_agent, display_zone
from mailgate.web.formats import FILTERS
from mailgate.web.names import agent_name

# No inline script or style anywhere, no remote content, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Portal links carry their token in the query string: never leak it onward.
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@web.middleware
async def security_headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    for name, value in SECURITY_HEADERS.items():
        # A handler may set a stricter policy (downloads), or allow remote images
        # for the one message an agent asked to see with its remote content.
        response.headers.setdefault(name, value)
    return response


def setup_pages(app: web.Application, admin_directory: Callable[[], str] = str) -> None:
    """Jinja2 for pages (autoescaped, strict) and ``/static`` for the stylesheet;
    ``admin_directory`` gives the current ``[templates] directory`` (pages in its ``web``)."""

    def overrides() -> str:
        directory = admin_directory()
        return f"{directory}/web" if directory else ""

    builtin = builtin_templates("web")
    env = aiohttp_jinja2.setup(
        app,
        loader=OverridableLoader(overrides, builtin),
        autoescape=jinja2.select_autoescape(default=True),
        context_processors=[aiohttp_jinja2.request_processor, _zone_processor],
    )
    # Every page may ask who is signed in and put the CSRF token in its forms.
    env.globals.update(current_agent=current_agent, csrf_token=csrf_token)
    env.filters.update(FILTERS, agent_name=agent_name)
    app.router.add_static("/static", builtin / "static", name="static")


async def _zone_processor(request: web.Request) -> dict:
    """Every page shows its times in ``zone`` (the ``when`` filter)."""
    return {"zone": display_zone(request)}


def see_other(location: str) -> web.Response:
    """A 303 to ``location``: after a form post, the browser GETs the result."""
    return web.Response(status=303, headers={"Location": location})
