"""The text of canned replies: their names, their placeholders, and ``#canned`` lines.

Placeholders are plain substitution, never a template language: a body is text with
``{{ customer.name }}``-style holes from a fixed list, checked when it is saved, so
rendering cannot fail and cannot run anything an agent typed. ``BODY_PATTERN`` is the
whole rule in one regular expression (the OpenAPI document states it too): a ``{{``
opens a known placeholder, and the body says something besides white space.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from mailgate.actions.values import SPACE, storable
from mailgate.db.models import Ticket

PLACEHOLDERS = (
    "customer.name",
    "customer.email",
    "ticket.code",
    "ticket.subject",
    "agent.name",
    "portal_url",
)
MAX_NAME = 64
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}$"
MAX_BODY = 20_000

_KNOWN = "|".join(re.escape(name) for name in PLACEHOLDERS)
_HOLE = rf"\{{\{{ *(?:{_KNOWN}) *\}}\}}"
_PIECE = rf"(?:[^{{\x00]|\{{[^{{\x00]|{_HOLE})"
_SAID = rf"(?:[^{{\x00{SPACE}]|\{{[^{{\x00]|{_HOLE})"
BODY_PATTERN = rf"^{_PIECE}*{_SAID}{_PIECE}*$"

_BODY = re.compile(BODY_PATTERN[1:-1])
_PLACEHOLDER = re.compile(r"\{\{ *([a-z_.]+) *\}\}")
_ANY_HOLE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_CANNED_LINE = re.compile(r"^[ \t]*#canned\b(.*)$", re.MULTILINE | re.IGNORECASE)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a canned reply (None: it can; names are kept in lower case)."""
    if not re.fullmatch(NAME_PATTERN, name):
        return (
            f"a name is one word of letters, digits, '.', '_' or '-', up to {MAX_NAME} "
            "characters, such as refund-policy"
        )
    return None


def body_problem(body: str) -> str | None:
    """Why ``body`` cannot be saved (None: it can): an unknown placeholder, first."""
    for hole in _ANY_HOLE.findall(body):
        if hole.strip() not in PLACEHOLDERS:
            known = ", ".join(f"{{{{ {name} }}}}" for name in PLACEHOLDERS)
            return f"unknown placeholder {{{{{hole}}}}} (known: {known})"
    if len(body) > MAX_BODY:
        return f"a canned reply has at most {MAX_BODY} characters"
    if _BODY.fullmatch(body) and storable(body):
        return None
    if not body.strip():
        return "the text is empty"
    if not storable(body):
        return "NUL characters and lone surrogates cannot be stored"
    return "a '{{' that opens no placeholder, or a '{' at the very end"


def values(ticket: Ticket, agent_name: str, portal_url: str) -> dict[str, str]:
    """What each placeholder stands for on ``ticket``; a customer with no name is
    called by their address, so "Dear {{ customer.name }}" never reads "Dear ,"."""
    return {
        "customer.name": ticket.customer_name or ticket.customer_email,
        "customer.email": ticket.customer_email,
        "ticket.code": ticket.code,
        "ticket.subject": ticket.subject,
        "agent.name": agent_name,
        "portal_url": portal_url,
    }


def render(body: str, known: Mapping[str, str]) -> str:
    """``body`` with its placeholders filled in (a checked body has no others)."""
    return _PLACEHOLDER.sub(lambda m: known.get(m.group(1), m.group(0)), body)


def has_canned_lines(text: str) -> bool:
    return _CANNED_LINE.search(text) is not None


def expand(text: str, rendered: Mapping[str, str], where: str) -> tuple[str, list[str]]:
    """``text`` with each ``#canned NAME`` line replaced by ``rendered[NAME]``, and one
    problem per line that names nothing there (``where`` says where it was looked for)."""
    problems: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group(1).strip().lower()
        line = match.group(0).strip()
        if not name:
            problems.append(f"{line}: #canned needs the name of a canned reply")
        elif name not in rendered:
            problems.append(f"{line}: there is no canned reply {name} ({where})")
        return rendered.get(name, match.group(0))

    return _CANNED_LINE.sub(replace, text), problems
