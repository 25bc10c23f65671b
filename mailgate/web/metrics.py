"""``GET /metrics``: Prometheus text from a registry of the app's own (never the global one).

A collector turns a fresh database snapshot (``ops.take_snapshot``) and the daemon's
live status into metric families at each scrape; the counters are totals over the
stored rows, so they agree across nodes and survive restarts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from mailgate import __version__
from mailgate.health import Health, assess
from mailgate.web.context import DaemonStatus, own_problems
from mailgate.web.keys import CONTEXT
from mailgate.web.ops import Snapshot, take_snapshot


class MailgateCollector:
    """Metric families from the last snapshot taken and the live daemon status."""

    def __init__(self, status: DaemonStatus) -> None:
        self.status = status
        self.snapshot: Snapshot | None = None
        self.health: Health | None = None

    def collect(self) -> Iterator[Metric]:
        if self.snapshot is not None:
            yield from _stored(self.snapshot)
        if self.health is not None:
            yield from _health(self.health)
        yield from _live(self.status)


def _stored(snap: Snapshot) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "mailgate_messages_received", "Messages stored in the journal", labels=["source"]
    )
    for source, count in sorted(snap.received.items()):
        received.add_metric([source], count)
    yield received
    yield CounterMetricFamily("mailgate_tickets_created", "Tickets opened", value=snap.tickets)
    yield CounterMetricFamily(
        "mailgate_acks_sent", "Acknowledgements delivered or captured", value=snap.acks_sent
    )
    failures = CounterMetricFamily(
        "mailgate_delivery_failures", "Failed delivery attempts", labels=["reason"]
    )
    for reason in ("temporary", "permanent", "suppressed"):
        failures.add_metric([reason], snap.delivery_failures.get(reason, 0))
    yield failures
    yield CounterMetricFamily(
        "mailgate_pipeline_failures",
        "Pipeline passes that failed (database outages included)",
        value=snap.loop_failures.get("pipeline", 0),
    )
    spam = CounterMetricFamily(
        "mailgate_spam_checks",
        "Spam checks of stored customer mail: spam, ham, or failed (went on unscored)",
        labels=["result"],
    )
    for result in ("spam", "ham", "failed"):
        spam.add_metric([result], snap.spam_checks.get(result, 0))
    yield spam
    yield _by_state("mailgate_journal_entries", "Journal entries by state", snap.journal)
    yield _by_state("mailgate_outbox_messages", "Outgoing mail by state", snap.outbox)
    yield GaugeMetricFamily(
        "mailgate_quarantine_size", "Quarantined journal entries", value=snap.quarantined
    )
    yield GaugeMetricFamily(
        "mailgate_outbox_backlog", "Outgoing mail not yet delivered", value=snap.outbox_backlog
    )
    latency = snap.latency
    yield HistogramMetricFamily(
        "mailgate_pipeline_latency_seconds",
        "From arrival in the journal to the end of processing",
        buckets=[*((f"{b:g}", n) for b, n in latency.buckets), ("+Inf", latency.count)],
        sum_value=latency.total_seconds,
    )


def _health(health: Health) -> Iterator[Metric]:
    yield GaugeMetricFamily("mailgate_healthy", "1 when /healthz answers 200", value=int(health.ok))
    oldest = GaugeMetricFamily(
        "mailgate_oldest_waiting_seconds",
        "How long the oldest message waiting in a queue has waited (0: none waits)",
        labels=["queue"],
    )
    for queue, seconds in sorted(health.oldest_waiting.items()):
        oldest.add_metric([queue], seconds or 0.0)
    yield oldest


def _by_state(name: str, documentation: str, counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["state"])
    for state, count in sorted(counts.items()):
        family.add_metric([state], count)
    return family


def _live(status: DaemonStatus) -> Iterator[Metric]:
    info = GaugeMetricFamily("mailgate_build_info", "Version", labels=["version"])
    info.add_metric([__version__], 1)
    yield info
    yield GaugeMetricFamily(
        "mailgate_start_time_seconds", "Start of the daemon, Unix time", value=status.started_at
    )
    connected = GaugeMetricFamily("mailgate_imap_connected", "1 when connected", labels=["mailbox"])
    backlog = GaugeMetricFamily("mailgate_imap_backlog", "Messages to fetch", labels=["mailbox"])
    for intake in status.imap:
        connected.add_metric([intake.status.name], int(intake.status.connected))
        backlog.add_metric([intake.status.name], intake.status.backlog)
    yield connected
    yield backlog


@dataclass
class Metrics:
    """The app's registry and its collector; one scrape at a time fills the snapshot."""

    collector: MailgateCollector
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=False)
    )
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.registry.register(self.collector)


METRICS = web.AppKey("metrics", Metrics)


async def metrics(request: web.Request) -> web.Response:
    state = request.app[METRICS]
    context = request.app[CONTEXT]
    async with state.lock:
        state.collector.snapshot = await take_snapshot(context.engine)
        state.collector.health = await assess(
            context.engine, context.runtime.settings, own_problems(context)
        )
        body = generate_latest(state.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application) -> None:
    app[METRICS] = Metrics(MailgateCollector(app[CONTEXT].status))
    app.router.add_get("/metrics", metrics)
