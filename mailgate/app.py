"""The daemon's composition root: builds the engine, listeners, workers and web app,
runs them (the worker processes have theirs in ``work.py``).

Only the CLI imports this module. Everything with a lifetime is created here and
torn down here, in reverse order: stop accepting, finish the sessions in flight,
flush the journal, close the database.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from mailgate.actions import ActionContext
from mailgate.config import (
    ConfigError,
    imap_path,
    parse_listen,
)
from mailgate.config_warnings import config_warnings
from mailgate.db.migrate import upgrade
from mailgate.db.session import engine_for
from mailgate.demo import announce_sign_in
from mailgate.health import node_rows, stuck_workers
from mailgate.intake.imap import ImapIntake
from mailgate.intake.sessions import SessionRegistry
from mailgate.intake.smtp import start_listener
from mailgate.pipeline.journal import Journal
from mailgate.pipeline.reprocess import reprocess as reprocess_entries
from mailgate.pipeline.worker import PipelineWorker
from mailgate.prune import Pruner
from mailgate.runtime import RuntimeConfig
from mailgate.sla.timer import SlaTimer
from mailgate.systemd import Notifier
from mailgate.trust import is_trusted
from mailgate.web.app import init_app
from mailgate.web.context import DaemonStatus, WebContext
from mailgate.web.timeouts import server_options
from mailgate.work import WORKER_GRACE_SECONDS, apply_config, heartbeat, pipeline_deps
from mailgate.workers import Workers

log = logging.getLogger(__name__)

HEALTH_CHECK_SECONDS = 10.0  # the watchdog's look at the workers' heartbeats


class StartupError(Exception):
    """The daemon could not start (a port is taken, the database is unreachable...)."""


class Daemon:
    def __init__(self, runtime: RuntimeConfig, notifier: Notifier | None = None) -> None:
        self.runtime = runtime
        self.notifier = notifier or Notifier()
        self._stop = asyncio.Event()
        self.status = DaemonStatus()  # read by the status page and the metrics
        # The pipeline and delivery, each in a process that works from our config.
        self.workers = Workers(runtime.config_path, runtime.loaded.text)
        self._reloading: asyncio.Future | None = None

    def request_stop(self) -> None:
        self._stop.set()
        self.workers.stopping()

    def reload(self) -> None:
        self._reloading = asyncio.ensure_future(self._reload())

    async def _reload(self) -> None:
        """The worker process first: mail for a route this reload adds is accepted
        only once the pipeline knows the route."""
        self.notifier.notify("RELOADING=1")
        try:
            loaded = self.runtime.load()
        except ConfigError as exc:
            log.error("reload failed, keeping the running config: %s", exc)
        else:
            if not await self.workers.reload(loaded.text):
                log.warning("a worker process did not confirm the reload")
            apply_config(self.runtime, loaded)
        self.notifier.notify("READY=1")

    async def run(self) -> None:
        settings = self.runtime.settings
        engine = engine_for(settings.database)
        async with AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            if settings.database.auto_migrate:
                await _guard("database upgrade", upgrade(engine))
            node = await stack.enter_async_context(heartbeat(engine, self.runtime, "daemon"))
            self.status.node = node
            deps = pipeline_deps(self.runtime)
            workers = self.workers
            timeout = settings.database.write_timeout_seconds
            journal = Journal(engine, timeout, workers.wake_pipeline)
            stack.push_async_callback(journal.close)
            # The admin's "reprocess" runs here, in a pipeline of the web's own.
            again = PipelineWorker(engine, deps, node.id, workers.wake_delivery)
            actions = ActionContext(self.runtime, deps.composer)
            sla = SlaTimer(engine, actions, workers.wake_delivery)
            web_context = WebContext(
                engine,
                self.runtime,
                deps.signer,
                deps.composer,
                journal,
                workers.wake_delivery,
                self.status,
                functools.partial(reprocess_entries, again, engine),
                wake_sla=sla.wake,
            )
            web_runner = await self._start_web(web_context)
            stack.push_async_callback(web_runner.cleanup)
            registry = SessionRegistry(settings.smtp)
            servers = await self._start_listeners(journal, registry)
            self.status.imap = self._imap_intakes(journal, node.id)
            self._install_signals()
            self.notifier.ready(f"accepting mail on {len(servers)} listener(s)")
            if self.runtime.loaded.path is None:  # the embedded default: the demo
                await announce_sign_in(engine, settings)
            log.info("mailgate ready (config: %s)", self.runtime.loaded.source)
            for warning in config_warnings(settings):
                log.warning("%s", warning)
            async with asyncio.TaskGroup() as group:
                group.create_task(workers.run(), name="workers")
                stuck = functools.partial(self._stuck_workers, engine)
                others = [group.create_task(self.notifier.watchdog(stuck), name="watchdog")]
                # Expired rate events, sessions and login links: every node prunes.
                others.append(group.create_task(Pruner(engine, self.runtime).run(), name="prune"))
                # SLA state, warnings and breaches: every node too, claiming per ticket.
                others.append(group.create_task(sla.run(), name="sla"))
                others += [  # IMAP intake: one task per [[imap]] mailbox
                    group.create_task(intake.run(), name=f"imap:{intake.config.name}")
                    for intake in self.status.imap
                ]
                await self._stop.wait()
                log.info("stopping: no new connections, finishing sessions in flight")
                self.notifier.stopping()
                for server in servers:
                    server.close()
                await registry.drain(settings.smtp.shutdown_grace_seconds)
                for task in others:
                    task.cancel()
                await workers.stop(WORKER_GRACE_SECONDS + 5)
        log.info("mailgate stopped")

    async def _stuck_workers(self, engine: AsyncEngine) -> list[str]:
        """What keeps our worker processes from working; nothing when the database
        cannot tell (a restart would not bring it back)."""
        try:
            async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                rows = await node_rows(engine)
        except Exception:  # the database is away: not the workers' fault
            return []
        return stuck_workers(rows, self.runtime.settings, self.workers.started())

    def _imap_intakes(self, journal: Journal, node: str) -> list[ImapIntake]:
        """One intake per ``[[imap]]`` mailbox; each commits its batches to ``journal``."""
        settings = self.runtime.settings
        limit = settings.smtp.max_message_bytes
        return [
            ImapIntake(box, journal, node, limit, trusted=self._trusts(imap_path(box.name)))
            for box in settings.imap
        ]

    def _trusts(self, path: str) -> Callable[[], bool]:
        """Whether ``path`` is trusted, asked of the settings in force (reloads count)."""
        return lambda: is_trusted(self.runtime.settings, path)

    async def _start_listeners(self, journal: Journal, registry: SessionRegistry) -> list:
        smtp = self.runtime.settings.smtp
        wanted = [(a, "smtp") for a in smtp.listen] + [(a, "lmtp") for a in smtp.lmtp_listen]
        servers = []
        for address, protocol in wanted:
            listening = start_listener(address, protocol, self.runtime, journal, registry)
            servers.append(await _guard(f"{protocol} listener on {address}", listening))
            self.status.listeners.append(f"{protocol} {address}")
        return servers

    async def _start_web(self, context: WebContext) -> web.AppRunner:
        config = self.runtime.settings.web
        runner = web.AppRunner(init_app(context), handle_signals=False, **server_options(config))
        await runner.setup()
        address = config.listen
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


async def reprocess(
    runtime: RuntimeConfig, entry_ids: list[int] | None, progress: Callable[[int, int], None]
) -> Counter[str]:
    """``mailgate reprocess``: quarantined entries through a pipeline of its own."""
    engine = engine_for(runtime.settings.database)
    try:
        async with heartbeat(engine, runtime, "reprocess") as node:
            pipeline = PipelineWorker(engine, pipeline_deps(runtime), node.id)
            return await reprocess_entries(pipeline, engine, entry_ids, progress)
    finally:
        await engine.dispose()


async def _guard(what: str, awaitable):
    """Await a start-up step; turn its failure into a StartupError naming the step."""
    try:
        return await awaitable
    except OSError as exc:
        raise StartupError(f"{what}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise StartupError(f"{what}: {exc}") from exc
