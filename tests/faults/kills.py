"""The trials that end processes: kill -9 of a node, of the daemon or of one worker,
SIGTERM, and one of two nodes killed for good.

A kill comes at a random moment of the load (the trial's seeded chance), and waits a
little longer, if need be, for its target to hold claims: a kill then strands work
that must be taken over.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.faults.bench import Bench, Pace, bench
from tests.faults.node import ROLES, Node
from tests.faults.report import Figures
from tests.faults.trial import Trial

CLAIMS = {"pipeline": "journal", "delivery": "outbox"}  # what each worker claims
CLAIM_WAIT = 2.0  # seconds a kill may wait for its target to hold claims
WHOLE_NODE = ROLES  # a crashed machine: the daemon and both workers at once
KILL_TARGETS = (WHOLE_NODE, ("daemon",))
WORKER_TARGETS = (("pipeline",), ("delivery",))


async def kill9(trial: Trial, pace: Pace, directory: Path) -> Figures:
    """kill -9 of the whole node or of the daemon alone; restart; drain."""
    roles = KILL_TARGETS[trial.number % len(KILL_TARGETS)]
    async with bench(trial.database, directory) as running:
        return await _killed(running, trial, pace, roles, trial.rng.uniform(0.2, 0.8))


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
        loading = running.loading(pace)
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
        loading = running.loading(pace)
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


async def _killed(
    running: Bench, trial: Trial, pace: Pace, roles: tuple[str, ...], fraction: float
) -> Figures:
    """Load; at ``fraction`` of it (or up to ``CLAIM_WAIT`` later, once the
    killed workers hold claims) kill -9 ``roles``; start what died again; drain."""
    node = running.nodes[0]
    loading = running.loading(pace)
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
