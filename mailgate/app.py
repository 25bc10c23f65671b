"""The composition root: builds the engine, listeners, workers and web app, runs them.

Only the CLI imports this module. Everything with a lifetime is created here and
torn down here, in reverse order: stop accepting, finish the sessions in flight,
flush the journal, close the database.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack

from aiohttp import web

from mailgate.config import ConfigError, parse_listen
from mailgate.db.migrate import upgrade
from mailgate.db.session import engine_for
from mailgate.intake.smtp import SessionRegistry, start_listener
from mailgate.pipeline.journal import Journal
from mailgate.runtime import RuntimeConfig
from mailgate.systemd import Notifier
from mailgate.web.app import init_app

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The daemon could not start (a port is taken, the database is unreachable...)."""


class Daemon:
    def __init__(self, runtime: RuntimeConfig, notifier: Notifier | None = None) -> None:
        self.runtime = runtime
        self.notifier = notifier or Notifier()
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        self.notifier.notify("RELOADING=1")
        try:
            stale = self.runtime.reload()
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
        else:
            log.info("config reloaded from %s", self.runtime.loaded.source)
            if stale:
                log.warning("changes to [%s] need a restart", "], [".join(stale))
        self.notifier.notify("READY=1")

    async def run(self) -> None:
        settings = self.runtime.settings
        engine = engine_for(settings.database)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            if settings.database.auto_migrate:
                await _guard("database upgrade", upgrade(engine))
            journal = Journal(engine, settings.database.write_timeout_seconds)
            stack.push_async_callback(journal.close)
            web_runner = await self._start_web(engine)
            stack.push_async_callback(web_runner.cleanup)
            registry = SessionRegistry(
                settings.smtp.max_sessions, settings.smtp.max_sessions_per_client
            )
            servers = await self._start_listeners(journal, registry)
            self._install_signals()
            self.notifier.ready(f"accepting mail on {len(servers)} listener(s)")
            log.info("mailgate ready (config: %s)", self.runtime.loaded.source)
            async with asyncio.TaskGroup() as group:
                background = [group.create_task(self.notifier.watchdog(), name="watchdog")]
                await self._stop.wait()
                log.info("stopping: no new connections, finishing sessions in flight")
                self.notifier.stopping()
                for server in servers:
                    server.close()
                await registry.drain(settings.smtp.shutdown_grace_seconds)
                for task in background:
                    task.cancel()
        log.info("mailgate stopped")

    async def _start_listeners(self, journal: Journal, registry: SessionRegistry) -> list:
        smtp = self.runtime.settings.smtp
        wanted = [(a, "smtp") for a in smtp.listen] + [(a, "lmtp") for a in smtp.lmtp_listen]
        servers = []
        for address, protocol in wanted:
            listening = start_listener(address, protocol, self.runtime, journal, registry)
            servers.append(await _guard(f"{protocol} listener on {address}", listening))
        return servers

    async def _start_web(self, engine) -> web.AppRunner:
        runner = web.AppRunner(init_app(engine), handle_signals=False)
        await runner.setup()
        address = self.runtime.settings.web.listen
        if address:
            host, port = parse_listen(address)
            await _guard(f"web on {address}", web.TCPSite(runner, host, port).start())
            log.info("web listening on %s", address)
        return runner

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)


async def _guard(what: str, awaitable):
    """Await a start-up step; turn its failure into a StartupError naming the step."""
    try:
        return await awaitable
    except OSError as exc:
        raise StartupError(f"{what}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise StartupError(f"{what}: {exc}") from exc
