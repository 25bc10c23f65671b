"""The fault suite's short form (see tests/faults): every scenario on both databases,
a few trials each, against the real daemon. Each trial's line is printed; a trial
fails on any rule of issue 12's "Done when" it breaks.

    .venv/bin/pytest -q -s tests/test_faults.py
"""

from __future__ import annotations

import pytest

from tests.faults.bench import SHORT
from tests.faults.disk import Unavailable
from tests.faults.scenarios import DATABASES, SCENARIOS, plan
from tests.support import need

# kill9: the whole node, the daemon alone; database_outage: refused, black-holed
SHORT_TRIALS = {"kill9": 2, "worker_kill": 2, "database_outage": 2}
SHORT_FORM = plan(DATABASES, list(SCENARIOS), SHORT_TRIALS, seed=12)


@pytest.mark.parametrize("trial", SHORT_FORM, ids=lambda t: f"{t.scenario}-{t.database}-{t.number}")
async def test_fault_trial_keeps_every_rule(trial, tmp_path):
    try:
        figures = await SCENARIOS[trial.scenario](trial, SHORT, tmp_path)
    except Unavailable as reason:
        need(False, str(reason))
    print(figures.line())
    assert figures.broken() == [], figures.line()
