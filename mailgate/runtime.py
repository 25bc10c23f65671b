"""The settings a running daemon works from, swapped as a whole on SIGHUP."""

from __future__ import annotations

from mailgate.addresses import RouteTable
from mailgate.clock import Clock
from mailgate.config import LoadedConfig, Settings, load_config

# Changing these needs a restart: sockets and the engine are built once.
RESTART_ONLY = ("database", "smtp", "web", "imap")


class RuntimeConfig:
    """Holds the current settings and the route table derived from them.

    Components keep a reference to this object and read ``settings``/``routes`` each
    time they need them, so a reload takes effect without dropping connections.
    """

    def __init__(
        self, loaded: LoadedConfig, explicit_path: str | None = None, clock: Clock | None = None
    ) -> None:
        self._explicit = explicit_path
        self.clock = clock or Clock()  # SLA time (see clock.py)
        self.loaded = loaded
        self.routes = _route_table(loaded.settings)

    @property
    def config_path(self) -> str | None:
        """The config file named on the command line, if one was."""
        return self._explicit

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    def agent_emails(self) -> set[str]:
        return {agent.email.lower() for agent in self.settings.agents}

    def load(self) -> LoadedConfig:
        """Read the config file again (raises ConfigError); ``apply`` puts it in force."""
        return load_config(self._explicit)

    def apply(self, loaded: LoadedConfig) -> list[str]:
        """Work from ``loaded`` from now on; returns the sections that changed but need
        a restart to take effect."""
        stale = [
            name
            for name in RESTART_ONLY
            if getattr(loaded.settings, name) != getattr(self.settings, name)
        ]
        self.loaded = loaded
        self.routes = _route_table(loaded.settings)
        return stale


def _route_table(settings: Settings) -> RouteTable:
    return RouteTable(settings.routes, settings.outbound.return_path_domain)
