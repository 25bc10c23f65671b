"""Helpers for tests: peer checks, free ports, configs, a daemon in a subprocess, mail."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack, asynccontextmanager
from email.utils import make_msgid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailgate.db.models import JournalEntry
from mailgate.outbox.compose import Outgoing
from mailgate.outbox.wire import Head, text_entity

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def need(available: bool, reason: str) -> None:
    """Skip without a peer; in CI a missing peer is a failure, never a skip."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"required peer missing in CI: {reason}")
    pytest.skip(reason)


# Ports this test process handed out. A port is free again once its probe socket
# closes, and the kernel readily hands it to the next probe; a server that binds later
# (a smarthost started after the daemon's ports were chosen) would then collide.
_HANDED_OUT: set[int] = set()


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports that were free a moment ago, none handed out before
    in this process. The probe sockets stay bound until all are chosen."""
    with ExitStack() as stack:
        chosen: list[int] = []
        while len(chosen) < count:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                chosen.append(port)
        return chosen


def free_port() -> int:
    return free_ports(1)[0]


def toml_value(value) -> str:
    if isinstance(value, dict):  # an inline table
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


class MailgateSetup:
    """A working directory with a config for a daemon on free loopback ports.

    ``sections`` maps a section name to extra keys; ``routes`` replaces the default
    routes (support@ and billing@example.test). ``write()`` renders the TOML file.
    """

    def __init__(self, directory: Path, database_url: str) -> None:
        self.directory = directory
        self.database_url = database_url
        self.smtp_port, self.lmtp_port, self.web_port = free_ports(3)
        self.sections: dict[str, dict] = {
            "database": {"url": database_url, "write_timeout_seconds": 3.0},
            "smtp": {
                "listen": [f"127.0.0.1:{self.smtp_port}"],
                "lmtp_listen": [f"127.0.0.1:{self.lmtp_port}"],
                "hostname": "mx.mailgate.test",
                "shutdown_grace_seconds": 10.0,
            },
            "web": {
                "listen": f"127.0.0.1:{self.web_port}",
                "base_url": f"http://127.0.0.1:{self.web_port}",
                "secret_key": "test-secret-key",
            },
            "log": {"level": "info"},
        }
        self.routes = [
            {"address": "support@example.test", "queue": "support", "agents": []},
            {
                "address": "billing@example.test",
                "queue": "billing",
                "priority": "high",
                "tags": ["billing"],
                "locale": "id",
            },
        ]
        self.agents: list[dict] = []
        self.imap: list[dict] = []  # [[imap]] mailboxes (issue 5)
        self.calendars: list[dict] = []  # [[calendars]], "hours" as a dict
        self.sla: list[dict] = []  # [[sla]] policies
        self.statuses: list[dict] = []  # [[tickets.statuses]]; empty: the default set
        self.webhooks: list[dict] = []  # [[webhooks]] receivers

    @property
    def config_path(self) -> Path:
        return self.directory / "mailgate.toml"

    def render(self) -> str:
        lines = []
        for name, keys in self.sections.items():
            lines.append(f"[{name}]")
            lines += [f"{key} = {toml_value(value)}" for key, value in keys.items()]
            lines.append("")
        tables = {
            "routes": self.routes,
            "agents": self.agents,
            "imap": self.imap,
            "calendars": self.calendars,
            "sla": self.sla,
            "tickets.statuses": self.statuses,
            "webhooks": self.webhooks,
        }
        for table, items in tables.items():
            for item in items:
                lines.append(f"[[{table}]]")
                lines += [f"{key} = {toml_value(value)}" for key, value in item.items()]
                lines.append("")
        return "\n".join(lines)

    def write(self) -> Path:
        self.config_path.write_text(self.render())
        return self.config_path

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mailgate", "--config", str(self.config_path), *args]


class MailgateProcess:
    """``mailgate serve`` in a subprocess, for tests that talk to it over sockets."""

    def __init__(self, setup: MailgateSetup) -> None:
        self.setup = setup
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = setup.directory / "mailgate.log"

    async def start(self, wait_seconds: float = 30.0) -> None:
        self.setup.write()
        log = open(self.log_path, "ab")  # noqa: SIM115, ASYNC230 - the child writes to it
        self.process = await asyncio.create_subprocess_exec(
            *self.setup.command("serve"),
            cwd=self.setup.directory,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while not await asyncio.to_thread(self.healthy):
            if self.process.returncode is not None:
                raise RuntimeError(f"mailgate exited at start:\n{self.log()}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"mailgate did not become healthy:\n{self.log()}")
            await asyncio.sleep(0.1)

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.setup.web_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def stop(self, wait_seconds: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (kills it if it hangs)."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), wait_seconds)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise RuntimeError(f"mailgate ignored SIGTERM:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@asynccontextmanager
async def daemon_running(setup: MailgateSetup):
    """``mailgate serve`` on ``setup``; it must exit 0 on SIGTERM when the block ends."""
    process = MailgateProcess(setup)
    await process.start()
    yield process
    assert await process.stop() == 0


async def journal_entries(engine: AsyncEngine) -> list[JournalEntry]:
    async with AsyncSession(engine) as session:
        result = await session.scalars(select(JournalEntry).order_by(JournalEntry.id))
        return list(result)


async def wait_until(check, what: str, seconds: float = 30.0, interval: float = 0.05):
    """Poll the async ``check`` until it returns something truthy; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        await asyncio.sleep(interval)


def _api_request(setup: MailgateSetup, path: str, token: str | None) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{setup.web_port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


async def api_call(
    setup: MailgateSetup, path: str, token: str | None = "test-token", **params
) -> tuple[int, dict]:
    """GET ``path`` with query ``params``; the status and the decoded JSON body."""
    query = urllib.parse.urlencode(params)
    return await asyncio.to_thread(_api_request, setup, f"{path}?{query}" if query else path, token)


async def api_get(setup: MailgateSetup, path: str, **params) -> dict:
    status, body = await api_call(setup, path, **params)
    assert status == 200, body
    return body


def outgoing(
    kind: str,
    sender: str,
    recipients: Sequence[str],
    subject: str,
    text: str,
    auto: str | None = None,
) -> Outgoing:
    """A plain mail from ``sender`` to ``recipients``, written as the composer writes."""
    message_id = make_msgid(domain=sender.rpartition("@")[2])
    head = Head()
    head.mailboxes("From", [(sender, "Support Team")])
    head.mailboxes("To", [(address, "") for address in recipients])
    head.text("Subject", subject)
    head.field("Message-ID", message_id)
    if auto:
        head.field("Auto-Submitted", auto)
    raw = head.wire(text_entity(text))
    return Outgoing(kind, sender, tuple(recipients), message_id, subject, raw)


class DatabaseLock:
    """Holds an exclusive lock on the journal from another connection."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    async def __aenter__(self):
        if self.url.startswith("sqlite"):
            self.sqlite = sqlite3.connect(self.url.split("///", 1)[1], isolation_level=None)
            self.sqlite.execute("BEGIN EXCLUSIVE")
        else:
            self.pg = await asyncpg.connect(self.url.replace("+asyncpg", ""))
            self.transaction = self.pg.transaction()
            await self.transaction.start()
            await self.pg.execute("LOCK TABLE journal_entries IN ACCESS EXCLUSIVE MODE")
        return self

    async def __aexit__(self, *exc) -> None:
        if self.url.startswith("sqlite"):
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
        else:
            await self.transaction.rollback()
            await self.pg.close()
