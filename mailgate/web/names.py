"""Agents by name: a page shows an agent as their ``[[agents]] name``, and falls back
to the address (an agent without a name, or one no longer in the config)."""

from __future__ import annotations

from collections.abc import Callable

import jinja2

from mailgate.config import Settings
from mailgate.web.keys import RUNTIME


def namer(settings: Settings) -> Callable[[str], str]:
    """A function from an address (any case) to the agent's name; anything that is
    not a named agent's address comes back unchanged."""
    names = {agent.email.lower(): agent.name for agent in settings.agents if agent.name}
    return lambda value: names.get(value.lower(), value) if isinstance(value, str) else value


@jinja2.pass_context
def agent_name(context: jinja2.runtime.Context, address: str | None) -> str | None:
    """The Jinja2 filter: ``{{ ticket.assignee | agent_name }}``."""
    request = context.get("request")
    if not address or request is None:
        return address
    return namer(request.app[RUNTIME].settings)(address)
