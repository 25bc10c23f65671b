"""The scenarios by name, the databases each applies to, and the plan of a run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

from tests.faults import kills, outages
from tests.faults.bench import Pace
from tests.faults.report import Figures
from tests.faults.trial import Trial

Scenario = Callable[[Trial, Pace, Path], Awaitable[Figures]]
SCENARIOS: dict[str, Scenario] = {
    "kill9": kills.kill9,
    "worker_kill": kills.worker_kill,
    "sigterm": kills.sigterm,
    "two_nodes": kills.two_nodes,
    "stall": outages.stall,
    "full_disk": outages.full_disk,
    "smarthost_outage": outages.smarthost_outage,
    "database_outage": outages.database_outage,
    "soak": outages.soak,
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
