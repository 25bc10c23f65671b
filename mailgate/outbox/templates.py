"""Mail templates: Jinja2 files ``<locale>/<kind>.txt`` whose first line is the Subject.

An admin's directory (``[templates] directory``) is searched first, so a single file
can be overridden; the built-in templates ship in ``templates/mail``. The directory is
read from the current settings, and an override added later is found (``resources``).
The ``when`` filter shows a time in the team's zone (``[tickets] timezone``) with its
abbreviation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import jinja2

from mailgate.localtime import format_local
from mailgate.resources import OverridableLoader, builtin_templates

FALLBACK_LOCALE = "en"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    body: str


class MailTemplates:
    def __init__(
        self, admin_directory: Callable[[], str] = str, zone: ZoneInfo | None = None
    ) -> None:
        """``admin_directory`` gives the admin's directory of the moment ("" for none)."""
        self._env = jinja2.Environment(
            loader=OverridableLoader(admin_directory, builtin_templates("mail")),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,  # plain-text mail; the web escapes on display
        )
        shown_in = zone or ZoneInfo("UTC")
        self._env.filters["when"] = lambda moment: _when(moment, shown_in)

    def render(self, kind: str, locale: str, **values: object) -> RenderedMail:
        template = self._env.select_template(
            [f"{locale}/{kind}.txt", f"{FALLBACK_LOCALE}/{kind}.txt"]
        )
        head, _, body = template.render(**values).partition("\n\n")
        subject = head.removeprefix("Subject:").strip() if head.startswith("Subject:") else ""
        if not subject:
            raise ValueError(f"template {template.name} must start with a 'Subject:' line")
        return RenderedMail(" ".join(subject.split()), body.lstrip("\n"))


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    return format_local(moment, zone) if moment else "-"
