"""One trial of a run: which scenario, on which database, its number, its chance."""

from __future__ import annotations

import random
from dataclasses import dataclass


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
