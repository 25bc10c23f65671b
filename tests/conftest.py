"""Shared fixtures: real databases (SQLite and PostgreSQL) and a real mailgate daemon.

Every database-facing test runs twice, through the ``database_url`` fixture: once on
a fresh SQLite file and once on a fresh PostgreSQL database at 127.0.0.1:5432. With
``CI=true`` a missing peer fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from mailgate.db.session import create_engine
from tests.support import PG_ADMIN_URL, MailgateProcess, MailgateSetup, need
from tests.web import WebClient

pytest_plugins = ["tests.browser"]  # the browser and page fixtures


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/mailgate.db"
        return
    asyncpg = pytest.importorskip("asyncpg")
    name = f"mailgate_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        need(False, f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def setup(tmp_path, database_url) -> MailgateSetup:
    """A config for a daemon on free loopback ports, in its own directory."""
    return MailgateSetup(tmp_path, database_url)


@pytest.fixture
async def mailgate(setup):
    """A running ``mailgate serve``; stopped (SIGTERM) when the test ends."""
    process = MailgateProcess(setup)
    await process.start()
    yield process
    await process.stop()


@pytest.fixture
async def engine(database_url):
    """An engine of the test's own, to look into the database the daemon writes."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def corpus():
    """Raw bytes of a file in tests/data."""
    directory = Path(__file__).parent / "data"
    return lambda name: (directory / name).read_bytes()


@pytest.fixture
async def smarthost():
    """A real SMTP sink on loopback that records what mailgate delivers."""
    from tests.smarthost import Smarthost

    sink = Smarthost()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def client(daemon):
    """A web client keeping its cookies, on the web port of the module's ``daemon``."""
    web = WebClient(daemon.setup.web_port)
    yield web
    await web.close()
