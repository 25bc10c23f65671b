"""The worker processes' composition root: ``mailgate work --role pipeline|delivery``.

The delivery process sends webhook events too: whatever queues mail or an event
wakes it, and the webhook worker beats as a node of its own (role ``webhooks``).

Apart from ``app.py`` so that a worker process imports what its worker needs and not
the daemon's listeners and web (70 MB at rest instead of 92). The daemon uses the
helpers here too: the pipeline's dependencies, node ids, applying a config.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta

from mailgate.config import ConfigError, LoadedConfig, config_from_text, server_secret
from mailgate.db.nodes import NodeHeartbeat
from mailgate.db.session import engine_for
from mailgate.outbox.compose import Composer
from mailgate.outbox.templates import MailTemplates
from mailgate.outbox.transport import transport_for
from mailgate.outbox.worker import DeliveryWorker
from mailgate.pipeline.worker import PipelineDeps, PipelineWorker
from mailgate.runtime import RuntimeConfig
from mailgate.signing import Signer
from mailgate.webhooks.worker import WebhookWorker
from mailgate.workers import DELIVERY, ROLES, ParentLink

log = logging.getLogger(__name__)

WORKER_GRACE_SECONDS = 10.0


async def run_workers(runtime: RuntimeConfig, role: str, wake_fd: int) -> None:
    """``mailgate work``: the pipeline or the delivery worker, woken by the daemon over
    ``wake_fd`` (see ``workers.py``); SIGTERM, or the daemon gone, ends it."""
    engine = engine_for(runtime.settings.database)
    try:
        link = await ParentLink.open(wake_fd)
        async with AsyncExitStack() as stack:
            node = await stack.enter_async_context(heartbeat(engine, runtime, role))
            workers = [_worker(role, runtime, engine, link, node.id)]
            node.watch(workers[0].loop.state)
            if role == "delivery":  # webhooks go out beside the mail, as a node of their own
                hooks = await stack.enter_async_context(heartbeat(engine, runtime, "webhooks"))
                workers.append(_webhook_worker(runtime, engine, hooks.id))
                hooks.watch(workers[1].loop.state)
            await _serve(workers, role, runtime, link)
    finally:
        await engine.dispose()


async def _serve(workers: list, role: str, runtime: RuntimeConfig, link: ParentLink) -> None:
    """Run ``workers`` until SIGTERM or the daemon is gone; a wake-up wakes them all."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # the daemon decides
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # the daemon sends its config
    reload = functools.partial(apply_config_text, runtime)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(worker.run()) for worker in workers]
        wakes = {ROLES[role]: lambda: [worker.wake() for worker in workers]}
        listener = group.create_task(link.listen(wakes, reload, stopped.set))
        await stopped.wait()
        listener.cancel()
        await asyncio.gather(
            *(_finish(w, t, WORKER_GRACE_SECONDS) for w, t in zip(workers, tasks, strict=True))
        )


@asynccontextmanager
async def heartbeat(engine, runtime: RuntimeConfig, role: str) -> AsyncIterator[NodeHeartbeat]:
    """This process as a node of the cluster, beating while the block runs; it signs
    off at the end, so what it still claims is free at once."""
    node = NodeHeartbeat(engine, role, runtime.settings.cluster.node_timeout_seconds)
    await node.join()
    beating = asyncio.create_task(node.run(), name="heartbeat")
    try:
        yield node
    finally:
        beating.cancel()
        await node.leave()


def _worker(role: str, runtime: RuntimeConfig, engine, link: ParentLink, node: str):
    """The pipeline worker (which has the daemon wake delivery for the mail it
    queues), or the delivery worker."""
    deps = pipeline_deps(runtime)
    if role == "pipeline":
        return PipelineWorker(engine, deps, node, lambda: link.wake_parent(DELIVERY))
    outbound = runtime.settings.outbound
    return DeliveryWorker(
        engine,
        transport_for(outbound),
        node,
        node_timeout=runtime.settings.cluster.node_timeout_seconds,
        backoff_base=outbound.retry_base_seconds,
        backoff_cap=outbound.retry_cap_seconds,
        give_up_after=timedelta(hours=outbound.give_up_after_hours),
        return_path=return_paths(runtime, deps.signer),
    )


def _webhook_worker(runtime: RuntimeConfig, engine, node: str) -> WebhookWorker:
    """Woken with delivery: whatever queues mail or an event wakes delivery."""
    timeout = runtime.settings.cluster.node_timeout_seconds
    return WebhookWorker(engine, runtime, node, node_timeout=timeout)


def apply_config_text(runtime: RuntimeConfig, text: str) -> None:
    """The worker process: work from the daemon's config ``text``."""
    try:
        loaded = config_from_text(text, runtime.loaded.path)
    except ConfigError as exc:  # the daemon checked it; a secret file may have changed
        log.error("reload failed, keeping the running config: %s", exc)
        return
    apply_config(runtime, loaded)


def apply_config(runtime: RuntimeConfig, loaded: LoadedConfig) -> None:
    stale = runtime.apply(loaded)
    log.info("config reloaded from %s", runtime.loaded.source)
    if stale:
        log.warning("changes to [%s] need a restart", "], [".join(stale))


async def _finish(worker, task: asyncio.Task, grace: float) -> None:
    """Let the worker end its current pass (no transaction cut in half), then cancel."""
    worker.stop()
    await asyncio.wait([task], timeout=grace)
    task.cancel()


def return_paths(runtime: RuntimeConfig, signer: Signer) -> Callable[[str, int], str]:
    """The envelope sender of an outbox item: its signed bounce address. The return
    path domain is read at each use, so a reload (SIGHUP) changes it."""

    def return_path(sender: str, outbox_id: int) -> str:
        domain = runtime.settings.outbound.return_path_domain
        return signer.bounce_address(sender, outbox_id, domain)

    return return_path


def pipeline_deps(runtime: RuntimeConfig) -> PipelineDeps:
    """The signer and composer the pipeline and the web share."""
    settings = runtime.settings
    signer = Signer(server_secret(settings))
    templates = MailTemplates(lambda: runtime.settings.templates.directory, settings.tickets.zone)
    composer = Composer(templates, signer, settings.web.base_url)
    return PipelineDeps(runtime, signer, composer)
