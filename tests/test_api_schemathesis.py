"""Schemathesis against a running daemon's /api/v1 OpenAPI document, every check on,
positive and negative data: the server accepts what the document describes and
refuses the rest with a documented error. Fixed seed, a bounded number of cases.

A longer run outside the suite, against a running daemon:
``schemathesis run http://127.0.0.1:8025/api/v1/openapi.json --checks all --mode all
-H "Authorization: Bearer <token>" --seed 13 --max-examples 500``
"""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine.events import FatalError, NonFatalError, ScenarioFinished

from tests.support import api_get, daemon_running, wait_until
from tests.test_pipeline import mail, send

TOKEN = "test-token"
SETTINGS = {
    "seed": 13,
    "max-time": 120,
    "headers": {"Authorization": f"Bearer {TOKEN}"},
    "generation": {"mode": "all", "max-examples": 25, "database": "none"},
    "checks": {"enabled": True},
}


@pytest.fixture
async def daemon(setup):
    setup.sections["api"] = {"tokens": [TOKEN]}
    setup.routes[0]["agents"] = ["alice@example.test"]
    setup.agents = [{"email": "alice@example.test", "name": "Alice"}]
    async with daemon_running(setup) as process:
        await asyncio.to_thread(send, setup.smtp_port, mail("Printer on fire"))

        async def listed():
            return (await api_get(setup, "/api/v1/tickets"))["tickets"]

        await wait_until(listed, "a ticket to look at")
        yield process


def run(url: str) -> tuple[int, list[str]]:
    """Run every phase and check; the number of cases and one line per problem."""
    config = SchemathesisConfig.from_dict(SETTINGS)
    schema = schemathesis.openapi.from_url(url, config=config)
    cases, problems = 0, []
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            cases += len(event.recorder.cases)
            problems += [
                f"{event.recorder.label}: {check.name}: {check.failure_info.failure.title}\n"
                f"{check.failure_info.failure.message}\n{check.failure_info.code_sample}"
                for checks in event.recorder.checks.values()
                for check in checks
                if check.status == Status.FAILURE
            ]
        elif isinstance(event, NonFatalError | FatalError):
            problems.append(f"error: {event.info.message}")
    return cases, problems


def test_the_api_keeps_to_its_document(daemon):
    cases, problems = run(f"http://127.0.0.1:{daemon.setup.web_port}/api/v1/openapi.json")
    assert not problems, "\n".join(sorted(set(problems)))
    assert cases > 100
