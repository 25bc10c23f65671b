"""What an admin should know about a config that is valid but likely not meant so.

``mailgate check-config`` prints these and the daemon logs them at start; neither
refuses the config.
"""

from __future__ import annotations

from mailgate.config import Settings, Web, parse_listen
from mailgate.trust import trust_warnings


def config_warnings(settings: Settings) -> list[str]:
    return [*trust_warnings(settings), *_link_warnings(settings.web), *_agent_warnings(settings)]


def _link_warnings(web: Web) -> list[str]:
    """Links in mail and pages are built on ``base_url``: left at its default, they
    point at the default listener, not the one ``listen`` moved to."""
    if not web.listen or "base_url" in web.model_fields_set:
        return []
    if parse_listen(web.listen) == parse_listen(Web().listen):
        return []
    return [
        f"web.listen is {web.listen!r} but web.base_url is not set: links in mail and on "
        f"pages point at {web.base_url}. Set base_url to the address people reach the "
        "web pages by, e.g. https://help.example.com or http://HOST:PORT."
    ]


def _agent_warnings(settings: Settings) -> list[str]:
    """A route's agent without an ``[[agents]]`` block gets tickets and their mail but
    cannot sign in to the web inbox."""
    known = {agent.email.lower() for agent in settings.agents}
    return [
        f"routes[{index}].agents: {email!r} has no [[agents]] block: it is assigned "
        "tickets and mailed about them but cannot sign in to the web inbox. Add one "
        f"(mailgate agent add {email} prints it)."
        for index, route in enumerate(settings.routes)
        for email in dict.fromkeys(route.agents)
        if email.lower() not in known
    ]
