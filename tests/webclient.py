"""Plain-HTTP helpers for the page tests: fetch a page, post a form as a browser would."""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiohttp

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Page:
    status: int
    url: str
    text: str

    @property
    def csrf(self) -> str:
        found = CSRF.search(self.text)
        assert found, "the page has no CSRF field"
        return found.group(1)


async def get(url: str) -> Page:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return Page(response.status, str(response.url), await response.text())


async def post_form(url: str, fields: dict[str, str], files=()) -> Page:
    """POST ``fields`` and ``files`` ((name, filename, content type, bytes)) as
    multipart/form-data; redirects are followed like a browser does."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for name, filename, content_type, data in files:
        form.add_field(name, data, filename=filename, content_type=content_type)
    async with aiohttp.ClientSession() as session, session.post(url, data=form) as response:
        return Page(response.status, str(response.url), await response.text())
