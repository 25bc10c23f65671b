"""What one trial sets up and tears down: a database, a sink, nodes, the counting.

``bench()`` creates a fresh SQLite file or PostgreSQL database (and drops it
afterwards), starts the counting sink and the nodes on a config with short timeouts,
samples the nodes' memory, and on the way out stops every process it started. A
``Pace`` holds the sizes of a run: the short form for ``make test``, the long one for
``make faults``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import asyncpg

from mailgate.db.session import create_engine
from tests.faults.census import Census
from tests.faults.disk import Unavailable
from tests.faults.load import Load, Tally
from tests.faults.node import Node
from tests.faults.report import Figures
from tests.faults.sink import CountingSink
from tests.faults.waiting import until
from tests.support import PG_ADMIN_URL, MailgateSetup

NODE_TIMEOUT_SECONDS = 5.0  # [cluster] node_timeout_seconds of every trial
STALL_SECONDS = 5.0  # [health] stall_seconds of every trial
POLL_SECONDS = 5.0  # how often an idle worker looks for work it was not woken for
HEALTH_SLACK_SECONDS = 2.0  # /healthz is asked every 0.25 s and answers within 2
TAKEOVER_BOUND = NODE_TIMEOUT_SECONDS + POLL_SECONDS
UNHEALTHY_BOUND = STALL_SECONDS + HEALTH_SLACK_SECONDS


@dataclass(frozen=True)
class Pace:
    """The sizes of a run. A trial's load lasts ``load_seconds``; what has not got
    250 retries for ``settle_seconds`` more; the backlog must then drain within
    ``drain_seconds`` (claims stranded by a kill included)."""

    load_seconds: float = 4.0
    rate: float = 30.0  # messages offered per second
    clients: int = 10
    size: int = 2048
    settle_seconds: float = 20.0
    drain_seconds: float = TAKEOVER_BOUND + 15.0
    smarthost_outage_seconds: float = 6.0
    database_outage_seconds: float = 6.0
    soak_seconds: float = 10.0
    soak_rate: float = 20.0
    soak_clients: int = 10


SHORT = Pace()
LONG = replace(
    SHORT,
    load_seconds=10.0,
    rate=40.0,
    clients=20,
    settle_seconds=60.0,
    smarthost_outage_seconds=120.0,
    database_outage_seconds=30.0,
    soak_seconds=300.0,
    soak_rate=80.0,
    soak_clients=40,
)


def trial_config(setup: MailgateSetup, smarthost_port: int) -> None:
    """Short timeouts, quick redelivery, acknowledgements for every sender."""
    setup.sections["outbound"] = {
        "smarthost": f"127.0.0.1:{smarthost_port}",
        "retry_base_seconds": 1.0,
        "retry_cap_seconds": 4.0,
    }
    setup.sections["smtp"] |= {
        "max_sessions": 500,
        "max_sessions_per_client": 500,
        "max_sessions_per_network": 500,
    }
    setup.sections["tickets"] = {"ack_rate_limit": "1000000/1m"}
    setup.sections["health"] = {"stall_seconds": STALL_SECONDS}
    setup.sections["cluster"] = {"node_timeout_seconds": NODE_TIMEOUT_SECONDS}
    setup.sections["log"] = {"level": "warning"}


@dataclass
class Bench:
    """A trial's database, sink and nodes; ``tag`` marks this trial's messages."""

    database: str
    url: str
    sink: CountingSink
    nodes: list[Node]
    census: Census
    tag: str = field(default_factory=lambda: f"f{secrets.token_hex(4)}")
    peak_rss: dict[str, float] = field(default_factory=dict)

    def load(self, pace: Pace, **sizes) -> Load:
        ports = [node.setup.smtp_port for node in self.nodes]
        rate, clients = sizes.get("rate", pace.rate), sizes.get("clients", pace.clients)
        return Load(ports, self.tag, rate, clients, sizes.get("size", pace.size))

    def loading(self, pace: Pace, seconds: float | None = None) -> asyncio.Task[Tally]:
        """The trial's load, in the background: ``load_seconds`` (or ``seconds``) of it."""
        load = self.load(pace)
        return asyncio.create_task(load.run(seconds or pace.load_seconds, pace.settle_seconds))

    async def drained(self, seconds: float) -> bool:
        """Wait until nothing waits in the journal or the outbox; False after ``seconds``."""

        async def empty() -> bool:
            return not await self.census.waiting()

        return await until(empty, seconds) is not None

    async def takeover(self, seconds: float) -> tuple[int, float | None]:
        """Call at a kill: how many items are claimed now, and the seconds until all
        of them are done (None if not within ``seconds``)."""
        stranded = await self.census.claimed()

        async def done() -> bool:
            return not stranded & await self.census.claimed()

        return len(stranded), await until(done, seconds)

    async def claims_held(self, kinds: set[str], seconds: float) -> None:
        """Wait (at most ``seconds``) until some item of ``kinds`` (``journal``,
        ``outbox``) is claimed: a kill then strands work."""

        async def held() -> bool:
            return any(kind in kinds for kind, _ in await self.census.claimed())

        if kinds:
            await until(held, seconds, interval=0.02)

    async def finish(
        self,
        figures: Figures,
        tally: Tally,
        drain_seconds: float,
        takeover: asyncio.Task[tuple[int, float | None]] | None = None,
    ) -> Figures:
        """Let the backlog drain, then count; ``takeover`` is the watch started at a
        kill (it runs on while the backlog drains)."""
        if not await self.drained(drain_seconds):
            figures.problems.append(f"backlog not drained in {drain_seconds:g}s")
        if takeover is not None:
            figures.stranded, figures.takeover = await takeover
            figures.takeover_bound = TAKEOVER_BOUND
        figures.count(tally, await self.census.tickets(self.tag), self.sink.acks)
        figures.rss = dict(self.peak_rss)
        return figures

    async def sample_rss(self) -> None:
        """Keep the highest RSS of each process, once a second, until cancelled."""
        while True:
            for index, node in enumerate(self.nodes):
                prefix = f"{'ab'[index]}." if len(self.nodes) > 1 else ""
                for role, size in node.rss().items():
                    key = prefix + role
                    self.peak_rss[key] = max(size, self.peak_rss.get(key, 0.0))
            await asyncio.sleep(1.0)


@asynccontextmanager
async def bench(
    database: str,
    directory: Path,
    nodes: int = 1,
    database_url: Callable[[str], str] = lambda url: url,
) -> AsyncIterator[Bench]:
    """A fresh ``database`` ("sqlite"|"postgresql"), a sink and ``nodes`` running
    daemons with their directories under ``directory``. The daemons reach the
    database at ``database_url(url)`` (a proxy, a file on a small disk); the counting
    goes to it directly."""
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database(database, directory))
        sink = CountingSink()
        await sink.start()
        stack.push_async_callback(sink.stop)
        engine = create_engine(url)
        stack.push_async_callback(engine.dispose)
        running = Bench(database, url, sink, [], Census(engine))
        for index in range(nodes):
            setup = MailgateSetup(_made(directory / f"node{index}"), database_url(url))
            trial_config(setup, sink.port)
            node = Node(setup)
            running.nodes.append(node)
            stack.push_async_callback(node.reap)
            await node.start()
        sampler = asyncio.create_task(running.sample_rss())
        stack.callback(sampler.cancel)
        yield running


@asynccontextmanager
async def fresh_database(database: str, directory: Path) -> AsyncIterator[str]:
    """The URL of a new, empty database; a PostgreSQL one is dropped afterwards."""
    if database == "sqlite":
        yield f"sqlite+aiosqlite:///{_made(directory / 'db')}/mailgate.db"
        return
    name = f"mailgate_faults_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        raise Unavailable(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {error}") from error
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _made(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
