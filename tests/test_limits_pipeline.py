"""Limits and assignment stay exact when two pipelines share one database.

Each test runs two ``PipelineWorker`` instances on engines of their own, as two nodes
(or a node's pipeline process beside another's) do: on PostgreSQL two connection
pools, on SQLite two connections to one file, which lock against each other as two
processes' would. Both drain one journal at once, a few entries per batch, so their
batches overlap; what the customers and agents get must be exactly what one pipeline
taking the mail one at a time would give.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from sqlalchemy import select

from mailgate.config import Agent, LoadedConfig, Route, Settings, Tickets
from mailgate.db.migrate import upgrade
from mailgate.db.models import OutboxItem, Ticket
from mailgate.db.nodes import NodeHeartbeat
from mailgate.db.session import create_engine
from mailgate.pipeline.journal import Arrival, insert_entries
from mailgate.pipeline.worker import PipelineWorker
from mailgate.runtime import RuntimeConfig
from mailgate.work import pipeline_deps
from tests.test_pipeline import mail

SUPPORT = "support@example.test"
AGENTS = ["alice@example.test", "bob@example.test", "chandra@example.test"]
BATCH = 4


@pytest.fixture
async def engines(database_url):
    """Two engines on the test's database: one per pipeline."""
    pair = [create_engine(database_url), create_engine(database_url)]
    await upgrade(pair[0])
    yield pair
    for engine in pair:
        await engine.dispose()


async def two_pipelines(engines, senders: list[str], route: Route, tickets: Tickets) -> None:
    """Journal one new mail from each of ``senders``, in order, and let two pipelines
    drain the journal side by side."""
    settings = Settings(routes=[route], agents=[Agent(email=a) for a in AGENTS], tickets=tickets)
    runtime = RuntimeConfig(LoadedConfig(settings, None))
    arrivals = [
        Arrival("smtp", sender, (SUPPORT,), mail(f"Question {n}", sender=sender))
        for n, sender in enumerate(senders)
    ]
    await insert_entries(engines[0], arrivals)
    nodes = [NodeHeartbeat(engine, "pipeline", 30.0) for engine in engines]
    for node in nodes:  # two live nodes: neither takes the other's claims
        await node.join()
    workers = [
        PipelineWorker(engine, pipeline_deps(runtime), node.id, batch_size=BATCH)
        for engine, node in zip(engines, nodes, strict=True)
    ]

    async def drain(worker: PipelineWorker) -> None:
        while await worker.process_pending():
            pass

    await asyncio.gather(*(drain(worker) for worker in workers))


async def rows(engine, query) -> list:
    async with engine.connect() as connection:
        return list((await connection.execute(query)).all())


async def test_each_sender_gets_exactly_the_acknowledgement_limit(engines):
    """8 senders write 6 new mails each, shuffled: each gets 3 acknowledgements
    (3 per 10 minutes), and the one agent exactly 20 notifications (20 per hour)."""
    senders = [f"sender{n}@client.test" for n in range(8)] * 6
    random.Random(12).shuffle(senders)
    route = Route(address=SUPPORT, agents=AGENTS[:1])
    await two_pipelines(engines, senders, route, Tickets(notify_rate_limit="20/1h"))

    assert len(await rows(engines[0], select(Ticket.id))) == len(senders)
    outgoing = await rows(engines[0], select(OutboxItem.kind, OutboxItem.recipients))
    acks = Counter(to[0] for kind, to in outgoing if kind == "acknowledgement")
    assert acks == dict.fromkeys(set(senders), 3)
    notified = Counter(to[0] for kind, to in outgoing if kind != "acknowledgement")
    assert notified == {AGENTS[0]: 20}


async def test_round_robin_takes_strict_turns_across_pipelines(engines):
    senders = [f"c{n}@client.test" for n in range(36)]
    route = Route(address=SUPPORT, assign="round_robin", agents=AGENTS)
    await two_pipelines(engines, senders, route, Tickets(notify_rate_limit="1000/1h"))

    assigned = await rows(engines[0], select(Ticket.assignee).order_by(Ticket.id))
    assert [row.assignee for row in assigned] == AGENTS * 12


async def test_least_open_always_picks_an_agent_with_the_fewest_open(engines):
    senders = [f"c{n}@client.test" for n in range(36)]
    route = Route(address=SUPPORT, assign="least_open", agents=AGENTS)
    await two_pipelines(engines, senders, route, Tickets(notify_rate_limit="1000/1h"))

    assigned = await rows(engines[0], select(Ticket.assignee).order_by(Ticket.id))
    open_counts = dict.fromkeys(AGENTS, 0)
    for (assignee,) in assigned:
        fewest = min(open_counts.values())
        assert open_counts[assignee] == fewest, (assignee, open_counts)
        open_counts[assignee] += 1
    assert open_counts == dict.fromkeys(AGENTS, 12)
