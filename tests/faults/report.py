"""A trial's figures, the rules they must keep, its one-line report and the summary.

The rules are issue 12's "Done when": no message that got ``250`` lost, no ticket
doubled, every ticket acknowledged once the backlog drained, acknowledgements doubled
only for messages in flight at a kill (at most the smarthost connections open at that
instant), a dead node's claims taken over within ``node_timeout_seconds`` plus one
poll, a stall or a full disk seen by ``/healthz`` within ``stall_seconds``; and,
since nothing may stall, every message offered accepted once the harm is over (the
clients retry a ``4xx`` for ``settle_seconds`` after the load).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from tests.faults.load import Tally, message_id_of


@dataclass
class Figures:
    """What one trial measured; ``None`` where the trial does not measure it."""

    scenario: str
    database: str
    harm: str  # what was done, e.g. "kill -9 daemon+pipeline+delivery at 2.4s"
    sent: int = 0
    accepted: int = 0
    deferred: int = 0
    rejected: int = 0
    unsettled: int = 0  # offered, but neither 250 nor 5xx by the end of the retries
    tickets: int = 0
    missing: int = 0
    duplicate_tickets: int = 0
    acks_missing: int = 0
    acks_duplicated: int = 0
    in_flight: int = 0  # smarthost connections open at the kills, summed
    stranded: int = 0  # items claimed at the kill
    takeover: float | None = None  # seconds from the kill to its claims all done
    takeover_bound: float | None = None
    unhealthy_after: float | None = None  # seconds until /healthz said 503
    unhealthy_bound: float | None = None
    rss: dict[str, float] = field(default_factory=dict)  # role -> highest MB seen
    problems: list[str] = field(default_factory=list)  # other broken rules, in words

    def count(self, tally: Tally, tickets: Counter[str], acks: Counter[str]) -> None:
        """Fill in the counts from the clients' tally, the tickets and the sink."""
        self.sent, self.accepted = len(tally.offered), len(tally.accepted)
        self.deferred, self.rejected = tally.deferred, len(tally.rejected)
        self.unsettled = self.sent - self.accepted - self.rejected
        self.tickets = sum(tickets.values())
        self.missing = sum(1 for marker in tally.accepted if not tickets[marker])
        self.duplicate_tickets = sum(number - 1 for number in tickets.values() if number > 1)
        answered = [acks[message_id_of(marker)] for marker in tickets]
        self.acks_missing = sum(1 for number in answered if not number)
        self.acks_duplicated = sum(number - 1 for number in answered if number > 1)

    def broken(self) -> list[str]:
        """The rules this trial broke, in words; empty when it kept them all."""
        broken = list(self.problems)
        if self.unsettled:
            broken.append(f"{self.unsettled} messages never accepted: intake did not recover")
        if self.missing:
            broken.append(f"{self.missing} messages answered 250 have no ticket")
        if self.duplicate_tickets:
            broken.append(f"{self.duplicate_tickets} duplicate tickets")
        if self.acks_missing:
            broken.append(f"{self.acks_missing} tickets not acknowledged")
        if self.acks_duplicated > self.in_flight:
            broken.append(
                f"{self.acks_duplicated} duplicate acknowledgements,"
                f" {self.in_flight} in flight at the kill"
            )
        if self.takeover_bound is not None and not _within(self.takeover, self.takeover_bound):
            broken.append(f"claims not taken over within {self.takeover_bound:g}s")
        if self.unhealthy_bound is not None and not _within(
            self.unhealthy_after, self.unhealthy_bound
        ):
            broken.append(f"/healthz not 503 within {self.unhealthy_bound:g}s")
        return broken

    def _takeover(self) -> str:
        if self.takeover_bound is None:
            return "-"
        return f"{_seconds(self.takeover, self.takeover_bound)}({self.stranded} claimed)"

    def line(self) -> str:
        rss = " ".join(f"{role}={size:.0f}" for role, size in sorted(self.rss.items()))
        verdict = "OK" if not self.broken() else "FAIL: " + "; ".join(self.broken())
        return (
            f"{self.scenario}/{self.database} [{self.harm}] sent={self.sent}"
            f" 250={self.accepted} 4xx={self.deferred} 5xx={self.rejected}"
            f" unsettled={self.unsettled}"
            f" tickets={self.tickets} missing={self.missing} dup_tickets={self.duplicate_tickets}"
            f" acks_missing={self.acks_missing}"
            f" acks_dup={self.acks_duplicated}(in flight {self.in_flight})"
            f" takeover={self._takeover()}"
            f" healthz_503={_seconds(self.unhealthy_after, self.unhealthy_bound)}"
            f" rss_mb[{rss}] {verdict}"
        )


COLUMNS = (
    ("scenario", 16),
    ("db", 10),
    ("sent", 6),
    ("250", 6),
    ("tickets", 7),
    ("missing", 7),
    ("dup_tkt", 7),
    ("ack_miss", 8),
    ("ack_dup", 7),
    ("takeover", 9),
    ("503 after", 9),
    ("result", 6),
)


def summary(trials: list[Figures]) -> str:
    """A table of every trial, and how many kept the rules."""
    header = " ".join(name.rjust(width) for name, width in COLUMNS)
    rows = [header, "-" * len(header)]
    for figures in trials:
        cells = (
            figures.scenario,
            figures.database,
            figures.sent,
            figures.accepted,
            figures.tickets,
            figures.missing,
            figures.duplicate_tickets,
            figures.acks_missing,
            f"{figures.acks_duplicated}/{figures.in_flight}",
            _seconds(figures.takeover, figures.takeover_bound),
            _seconds(figures.unhealthy_after, figures.unhealthy_bound),
            "FAIL" if figures.broken() else "ok",
        )
        widths = (width for _, width in COLUMNS)
        rows.append(" ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True)))
    failed = sum(1 for figures in trials if figures.broken())
    rows.append(f"{len(trials)} trials, {len(trials) - failed} kept every rule, {failed} did not")
    return "\n".join(rows)


def _within(seconds: float | None, bound: float) -> bool:
    return seconds is not None and seconds <= bound


def _seconds(seconds: float | None, bound: float | None) -> str:
    if bound is None:
        return "-"
    return f"{seconds:.1f}s" if seconds is not None else f">{bound:g}s"
