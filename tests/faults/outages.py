"""The trials that take something away for a while: the pipeline (SIGSTOP), disk
space, the smarthost, PostgreSQL (through a TCP proxy); and the soak, which takes
nothing away but time.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from pathlib import Path

from tests.faults.bench import UNHEALTHY_BOUND, Pace, bench
from tests.faults.disk import small_disk
from tests.faults.node import ROLES, Node
from tests.faults.report import Figures
from tests.faults.trial import Trial
from tests.faults.waiting import until
from tests.tcpproxy import TcpProxy

HEALTH_PROBE_SECONDS = 0.25
FILL_SECONDS = 30.0  # the small disk fills within this under the full-disk load
POSTGRESQL_PORT = 5432


async def stall(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """The pipeline worker stopped (SIGSTOP) while mail comes in: /healthz must say
    503 within stall_seconds; continued (SIGCONT), it drains."""
    async with bench(trial.database, directory) as running:
        node = running.nodes[0]
        figures = Figures(trial.scenario, trial.database, "SIGSTOP pipeline at 1.0s")
        seconds = pace.load_seconds + UNHEALTHY_BOUND
        loading = running.loading(pace, seconds)
        await asyncio.sleep(1.0)
        node.kill(("pipeline",), signal.SIGSTOP)
        try:
            await _watch_health(node, figures)
        finally:
            node.kill(("pipeline",), signal.SIGCONT)
        return await running.finish(figures, await loading, pace.drain_seconds)


async def full_disk(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """SQLite on an 8 MB tmpfs under load of 64 KB mail: once mail gets 4xx,
    /healthz must say 503 within stall_seconds; the disk then grows and it drains."""
    async with small_disk(directory / "db") as disk, bench(trial.database, directory) as running:
        node = running.nodes[0]
        figures = Figures(trial.scenario, trial.database, f"{disk.size} tmpfs full")
        load = running.load(pace, size=64 * 1024, rate=20.0)
        seconds = pace.load_seconds + FILL_SECONDS
        loading = asyncio.create_task(load.run(seconds, pace.settle_seconds))

        async def full() -> bool:
            return load.tally.first_deferral is not None

        try:
            if await until(full, FILL_SECONDS, interval=0.1) is None:
                figures.problems.append(f"the disk never filled: no 4xx in {FILL_SECONDS:g}s")
            else:
                await _watch_health(node, figures)
        finally:
            await disk.grow()
        return await running.finish(figures, await loading, pace.drain_seconds)


async def smarthost_outage(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """The smarthost down (its sink stopped) for minutes under load, then back."""
    seconds = pace.smarthost_outage_seconds
    async with bench(trial.database, directory) as running:
        figures = Figures(trial.scenario, trial.database, f"smarthost down {seconds:g}s")
        load_seconds = max(pace.load_seconds, seconds + 2.0)
        loading = running.loading(pace, load_seconds)
        await asyncio.sleep(1.0)
        figures.in_flight = running.sink.open
        await running.sink.stop()
        await asyncio.sleep(seconds)
        await running.sink.start()
        return await running.finish(figures, await loading, pace.drain_seconds)


async def database_outage(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """PostgreSQL out of reach for ``database_outage_seconds`` under load, through a
    TCP proxy: refused (connections closed) or black-holed (nothing passes)."""
    way = ("refused", "black-holed")[trial.number % 2]
    seconds = pace.database_outage_seconds
    proxy = TcpProxy("127.0.0.1", POSTGRESQL_PORT)
    await proxy.start()
    try:
        through = functools.partial(_through, proxy.port)
        async with bench(trial.database, directory, database_url=through) as running:
            figures = Figures(trial.scenario, trial.database, f"PostgreSQL {way} {seconds:g}s")
            loading = running.loading(pace, max(pace.load_seconds, seconds + 2.0))
            await asyncio.sleep(1.0)
            if way == "refused":
                proxy.refuse()
            else:
                proxy.blackhole()
            await asyncio.sleep(seconds)
            proxy.restore()
            return await running.finish(figures, await loading, pace.drain_seconds)
    finally:
        await proxy.stop()


def _through(port: int, url: str) -> str:
    """``url`` with the proxy on ``port`` in place of PostgreSQL."""
    return url.replace(f"127.0.0.1:{POSTGRESQL_PORT}", f"127.0.0.1:{port}")


async def soak(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """A steady load for ``soak_seconds``; the RSS of every process sampled."""
    async with bench(trial.database, directory) as running:
        harm = f"soak {pace.soak_seconds:g}s at {pace.soak_rate:g}/s from {pace.soak_clients}"
        figures = Figures(trial.scenario, trial.database, harm)
        load = running.load(pace, rate=pace.soak_rate, clients=pace.soak_clients)
        loading = asyncio.create_task(load.run(pace.soak_seconds, pace.settle_seconds))
        await asyncio.sleep(pace.soak_seconds / 5)  # warmed up: caches filled
        before = running.nodes[0].rss()
        await asyncio.sleep(pace.soak_seconds * 4 / 5)
        after = running.nodes[0].rss()
        figures.harm += " rss " + " ".join(
            f"{role} {before.get(role, 0):.0f}->{after.get(role, 0):.0f}" for role in ROLES
        )
        tally = await loading
        return await running.finish(figures, tally, pace.drain_seconds)


async def _watch_health(node: Node, figures: Figures) -> None:
    """Ask /healthz until it says 503 (with a reason) or the bound has passed."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    figures.unhealthy_bound = UNHEALTHY_BOUND
    while loop.time() - started <= UNHEALTHY_BOUND:
        status, body = await asyncio.to_thread(node.healthz)
        if status == 503:
            figures.unhealthy_after = loop.time() - started
            if not all(problem.get("reason") for problem in body.get("problems") or [{}]):
                figures.problems.append(f"/healthz 503 without a reason: {body}")
            return
        await asyncio.sleep(HEALTH_PROBE_SECONDS)
