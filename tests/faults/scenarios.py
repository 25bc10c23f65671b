"""The trials. Each runs one kind of harm against a running bench under load and
returns its figures; ``SCENARIOS`` names them for the command line.

A kill comes at a random moment of the load (``random.Random`` of the run's seed), so
it lands in intake, in a pipeline batch or in a delivery session as chance has it.
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.faults.bench import (
    UNHEALTHY_BOUND,
    Bench,
    Pace,
    bench,
)
from tests.faults.disk import small_disk
from tests.faults.load import Tally
from tests.faults.node import ROLES, Node
from tests.faults.report import Figures
from tests.faults.waiting import until
from tests.tcpproxy import TcpProxy

HEALTH_PROBE_SECONDS = 0.25
FILL_SECONDS = 30.0  # the small disk fills within this under the full-disk load
CLAIMS = {"pipeline": "journal", "delivery": "outbox"}  # what each worker claims
POSTGRESQL_PORT = 5432
CLAIM_WAIT = 2.0  # seconds a kill may wait for its target to hold claims
WHOLE_NODE = ROLES  # a crashed machine: the daemon and both workers at once
KILL_TARGETS = (WHOLE_NODE, ("daemon",))
WORKER_TARGETS = (("pipeline",), ("delivery",))


@dataclass(frozen=True)
class Trial:
    """One trial to run: its scenario, database, number within the run, and seed."""

    scenario: str
    database: str
    number: int
    seed: int

    @property
    def rng(self) -> random.Random:
        return random.Random(f"{self.seed}-{self.scenario}-{self.database}-{self.number}")


async def kill9(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """kill -9 of the whole node or of the daemon alone; restart; drain."""
    rng = trial.rng
    roles = KILL_TARGETS[trial.number % len(KILL_TARGETS)]
    async with bench(trial.database, directory) as running:
        return await _killed(running, trial, pace, roles, rng.uniform(0.2, 0.8))


async def worker_kill(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """kill -9 of one worker alone (the daemon starts it again)."""
    roles = WORKER_TARGETS[trial.number % len(WORKER_TARGETS)]
    async with bench(trial.database, directory) as running:
        return await _killed(running, trial, pace, roles, trial.rng.uniform(0.2, 0.8))


async def sigterm(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """SIGTERM under load: the daemon must exit 0; started again, it drains."""
    async with bench(trial.database, directory) as running:
        node = running.nodes[0]
        at = trial.rng.uniform(0.2, 0.8) * pace.load_seconds
        figures = Figures(trial.scenario, trial.database, f"SIGTERM at {at:.1f}s")
        loading = _loading(running, pace)
        await asyncio.sleep(at)
        figures.in_flight = running.sink.open
        node.kill(("daemon",), signal.SIGTERM)
        status = await node.wait_exit(node.setup.sections["smtp"]["shutdown_grace_seconds"] + 20)
        if status != 0:
            figures.problems.append(f"daemon exited {status} on SIGTERM")
        watch = asyncio.create_task(running.takeover(pace.drain_seconds))
        await node.start()
        return await running.finish(figures, await loading, pace.drain_seconds, watch)


async def two_nodes(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """Two daemons on one database, both under load; one killed -9 for good: the
    survivor must take over its claims."""
    async with bench(trial.database, directory, nodes=2) as running:
        loading = _loading(running, pace)
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(trial.rng.uniform(0.2, 0.8) * pace.load_seconds)
        await running.claims_held(set(CLAIMS.values()), CLAIM_WAIT)
        at = asyncio.get_running_loop().time() - started
        figures = Figures(trial.scenario, trial.database, f"kill -9 node a at {at:.1f}s")
        figures.in_flight = running.sink.open
        running.nodes[0].kill(WHOLE_NODE)
        watch = asyncio.create_task(running.takeover(pace.drain_seconds))
        await running.nodes[0].wait_exit()
        return await running.finish(figures, await loading, pace.drain_seconds, watch)


async def stall(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """The pipeline worker stopped (SIGSTOP) while mail comes in: /healthz must say
    503 within stall_seconds; continued (SIGCONT), it drains."""
    async with bench(trial.database, directory) as running:
        node = running.nodes[0]
        figures = Figures(trial.scenario, trial.database, "SIGSTOP pipeline at 1.0s")
        seconds = pace.load_seconds + UNHEALTHY_BOUND
        loading = _loading(running, pace, seconds)
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
        loading = _loading(running, pace, load_seconds)
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
            loading = _loading(running, pace, max(pace.load_seconds, seconds + 2.0))
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


async def _killed(
    running: Bench, trial: Trial, pace: Pace, roles: tuple[str, ...], fraction: float
) -> Figures:
    """Load; at ``fraction`` of it (or up to ``CLAIM_WAIT_SECONDS`` later, once the
    killed workers hold claims) kill -9 ``roles``; start what died again; drain."""
    node = running.nodes[0]
    loading = _loading(running, pace)
    started = asyncio.get_running_loop().time()
    await asyncio.sleep(fraction * pace.load_seconds)
    await running.claims_held({CLAIMS[role] for role in roles if role in CLAIMS}, CLAIM_WAIT)
    at = asyncio.get_running_loop().time() - started
    figures = Figures(trial.scenario, trial.database, f"kill -9 {'+'.join(roles)} at {at:.1f}s")
    figures.in_flight = running.sink.open
    node.kill(roles)
    watch = asyncio.create_task(running.takeover(pace.drain_seconds))
    figures.harm += f", up again in {await _back_up(node, roles):.1f}s"
    return await running.finish(figures, await loading, pace.drain_seconds, watch)


def _loading(running: Bench, pace: Pace, seconds: float | None = None) -> asyncio.Task[Tally]:
    """The trial's load, in the background: ``load_seconds`` (or ``seconds``) of it."""
    load = running.load(pace)
    return asyncio.create_task(load.run(seconds or pace.load_seconds, pace.settle_seconds))


async def _back_up(node: Node, roles: tuple[str, ...]) -> float:
    """Seconds until the node runs whole again: a dead daemon is started again (its
    workers end when it goes), a dead worker by the daemon."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    if "daemon" in roles:
        await node.wait_exit()
        await node.start()
    else:
        await node.workers_up()
    return loop.time() - started


async def _watch_health(node: Node, figures: Figures) -> None:
    """Ask /healthz until it says 503 (with a reason) or the bound has passed."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    figures.unhealthy_bound = UNHEALTHY_BOUND
    while loop.time() - started <= UNHEALTHY_BOUND:
        status, body = await asyncio.to_thread(node.healthz)
        if status == 503:
            figures.unhealthy_after = loop.time() - started
            if not body.get("reason"):
                figures.problems.append(f"/healthz 503 without a reason: {body}")
            return
        await asyncio.sleep(HEALTH_PROBE_SECONDS)


Scenario = Callable[[Trial, Pace, Path], Awaitable[Figures]]
SCENARIOS: dict[str, Scenario] = {
    "kill9": kill9,
    "worker_kill": worker_kill,
    "sigterm": sigterm,
    "two_nodes": two_nodes,
    "stall": stall,
    "full_disk": full_disk,
    "smarthost_outage": smarthost_outage,
    "database_outage": database_outage,
    "soak": soak,
}
DATABASES = ("sqlite", "postgresql")
ONLY_ON = {
    "two_nodes": ("postgresql",),
    "database_outage": ("postgresql",),
    "full_disk": ("sqlite",),
}


def plan(
    databases: Sequence[str], scenarios: Sequence[str], counts: Mapping[str, int], seed: int
) -> list[Trial]:
    """The trials of a run: ``counts[scenario]`` of each (else one) on each database
    it applies to, database by database."""
    return [
        Trial(scenario, database, number, seed)
        for database in databases
        for scenario in scenarios
        if database in ONLY_ON.get(scenario, DATABASES)
        for number in range(counts.get(scenario, 1))
    ]
