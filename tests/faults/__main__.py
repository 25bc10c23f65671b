"""The command line: ``python -m tests.faults --trials N --database sqlite|postgresql|both
[--scenario NAME ...] [--long] [--seed S]``.

``--trials`` is the number of kill -9 trials per database; ``worker_kill`` runs two
(the pipeline's, delivery's), ``database_outage`` two (refused, black-holed), every
other scenario one. Each trial prints its line as
it ends, the run a summary table; the exit status is 1 if any trial broke a rule. The
daemons' logs are kept (the path is printed) when one did.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.faults.bench import LONG, SHORT, Pace
from tests.faults.disk import Unavailable
from tests.faults.report import Figures, summary
from tests.faults.scenarios import DATABASES, SCENARIOS, plan
from tests.faults.trial import Trial
from tests.support import IN_CI


def trials(args: argparse.Namespace) -> list[Trial]:
    databases = DATABASES if args.database == "both" else (args.database,)
    counts = {"kill9": args.trials, "worker_kill": 2, "database_outage": 2}
    return plan(databases, args.scenario or list(SCENARIOS), counts, args.seed)


async def run_one(trial: Trial, pace: Pace, directory: Path) -> Figures | None:
    """The trial's figures; a trial that could not run at all is a failed one."""
    try:
        return await SCENARIOS[trial.scenario](trial, pace, directory)
    except Unavailable as reason:
        if not IN_CI:  # with CI=true a missing peer fails the trial
            print(f"{trial.scenario}/{trial.database} skipped: {reason}", flush=True)
            return None
        return _did_not_run(trial, str(reason))
    except Exception as error:
        traceback.print_exc()
        return _did_not_run(trial, f"{type(error).__name__}: {error}")


def _did_not_run(trial: Trial, why: str) -> Figures:
    figures = Figures(trial.scenario, trial.database, "did not run")
    figures.problems.append(why)
    return figures


async def run(args: argparse.Namespace, directory: Path) -> list[Figures]:
    pace = LONG if args.long else SHORT
    done: list[Figures] = []
    for index, trial in enumerate(trials(args)):
        started = time.monotonic()
        figures = await run_one(trial, pace, directory / f"{index:03d}-{trial.scenario}")
        if figures is not None:
            print(f"{figures.line()} ({time.monotonic() - started:.0f}s)", flush=True)
            done.append(figures)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__)
    parser.add_argument("--trials", type=int, default=3, help="kill -9 trials per database")
    parser.add_argument("--database", choices=(*DATABASES, "both"), default="both")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--long", action="store_true", help="minutes-long outages and soak")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"seed {args.seed}", flush=True)
    directory = Path(tempfile.mkdtemp(prefix="mailgate-faults-"))
    done = asyncio.run(run(args, directory))
    print(summary(done))
    if any(figures.broken() for figures in done):
        print(f"daemon logs kept in {directory}")
        return 1
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
