"""Server-rendered pages: Jinja2 set-up, static files and the security headers.

Pages extend ``templates/web/base.html``. An admin's ``[templates] directory`` may
override any of them (``web/<name>.html``), like the mail templates.
"""

from __future__ import annotations

import aiohttp_jinja2
import jinja2
from aiohttp import web

from mailgate.resources import builtin_templates

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
    response.headers.update(SECURITY_HEADERS)
    return response


def setup_pages(app: web.Application, admin_directory: str = "") -> None:
    """Jinja2 for pages (autoescaped, strict) and ``/static`` for the stylesheet."""
    builtin = builtin_templates("web")
    search = [f"{admin_directory}/web"] if admin_directory else []
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader([*search, str(builtin)]),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.router.add_static("/static", builtin / "static", name="static")
