"""Requests a page cannot use: refused with a styled 400 page, never a 500; and the
styled pages of the other refusals (403, 404).

Each handler still checks its own input; this module holds what every page shares:
a form that is not text, a URL with a NUL character (no text column stores one,
and PostgreSQL refuses it in a query), and the page a 400 is shown on.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from mailgate.web.i18n import texts

NUL = "\x00"
# What reading a broken form raises: undecodable bytes (UnicodeDecodeError), a
# multipart body without its boundary, a part with a malformed header.
UNREADABLE = (ValueError, HttpProcessingError)


FORM_UNREADABLE = "The form could not be read: it is not a well-formed form of UTF-8 text."


def bad_request(reason: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=reason)


async def posted_form(request: web.Request) -> MultiDictProxy:
    """The posted form (aiohttp keeps it for later calls); 400 unless its fields are
    text without NUL characters."""
    try:
        form = await request.post()
    except UNREADABLE:
        raise bad_request(FORM_UNREADABLE) from None
    if any(NUL in key or (isinstance(value, str) and NUL in value) for key, value in form.items()):
        raise bad_request("The form contains a NUL character.")
    return form


@web.middleware
async def refuse_nul(request: web.Request, handler):
    """400 for a path or query string carrying a NUL character."""
    if NUL in request.path or any(NUL in k or NUL in v for k, v in request.query.items()):
        raise bad_request("The address contains a NUL character.")
    return await handler(request)


# Paths whose errors are for programs, not people: JSON or plain text stays.
MACHINE_PREFIXES = ("/api/", "/healthz", "/metrics")
ERROR_TITLES = {403: "Not allowed", 404: "Not found"}


@web.middleware
async def error_pages(request: web.Request, handler):
    """A 400, 403 or 404 raised for a page is shown on a styled page with its reason
    and the way back; a page that made its own (the portal's 404) keeps it."""
    try:
        return await handler(request)
    except (web.HTTPBadRequest, web.HTTPForbidden, web.HTTPNotFound) as exc:
        if request.path.startswith(MACHINE_PREFIXES) or exc.content_type == "text/html":
            raise
        return _error_page(request, exc)


def _error_page(request: web.Request, exc: web.HTTPException) -> web.Response:
    default = exc.text is None or exc.text.startswith(f"{exc.status}:")
    # The page may be refused before aiohttp_jinja2's context middleware ran.
    values = {
        "t": texts("en"),
        "lang": "en",
        "reason": "" if default else exc.text,
        "request": request,
        "status": exc.status,
        "title": ERROR_TITLES.get(exc.status, ""),
    }
    name = "bad_request.html" if exc.status == 400 else "error.html"
    return aiohttp_jinja2.render_template(name, request, values, status=exc.status)
