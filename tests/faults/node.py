"""One node: ``mailgate serve`` and the two worker processes it forks, seen from /proc.

The workers are found as the daemon's children (``/proc/PID/task/PID/children``) and
told apart by their ``--role``. ``kill`` sends a signal to any of the three;
``reap`` makes sure none of them outlives the trial, whatever happened to it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path

from tests.faults.waiting import until
from tests.support import MailgateProcess, MailgateSetup

ROLES = ("daemon", "pipeline", "delivery")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def children(pid: int) -> list[int]:
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in listed.split()]


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB; None once it is gone."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError):
        return None
    return pages * PAGE_KB / 1024


class Node:
    """A daemon on ``setup``; ``pids`` maps each live role to its process id."""

    def __init__(self, setup: MailgateSetup) -> None:
        self.setup = setup
        self.process = MailgateProcess(setup)
        self._seen: set[int] = set()  # every pid of ours, for reap()

    async def start(self) -> None:
        self.process = MailgateProcess(self.setup)
        await self.process.start()
        await self.workers_up()

    def pids(self) -> dict[str, int]:
        daemon = self.process.process
        if daemon is None or daemon.returncode is not None:
            return {}
        found = {"daemon": daemon.pid}
        for child in children(daemon.pid):
            argv = command_line(child)
            if "--role" in argv:
                found[argv[argv.index("--role") + 1]] = child
        self._seen |= set(found.values())
        return found

    async def workers_up(self, seconds: float = 30.0) -> None:
        """Wait until the daemon runs both workers (it restarts a dead one after a pause)."""

        async def up() -> bool:
            return len(self.pids()) == len(ROLES)

        if await until(up, seconds, interval=0.1) is None:
            raise RuntimeError(f"the workers did not start in {seconds:g}s:\n{self.process.log()}")

    def kill(self, roles: tuple[str, ...], signum: int = signal.SIGKILL) -> None:
        """Signal each of ``roles`` at once (the pids are read before the first signal)."""
        pids = self.pids()
        for role in roles:
            os.kill(pids[role], signum)

    async def wait_exit(self, seconds: float = 30.0) -> int:
        """The daemon's exit status once it has exited."""
        daemon = self.process.process
        assert daemon is not None
        return await asyncio.wait_for(daemon.wait(), seconds)

    def rss(self) -> dict[str, float]:
        sizes = {role: rss_mb(pid) for role, pid in self.pids().items()}
        return {role: size for role, size in sizes.items() if size is not None}

    def healthz(self) -> tuple[int, dict]:
        url = f"http://127.0.0.1:{self.setup.web_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, _json_or_text(error.read())
        except OSError as error:
            return 0, {"error": str(error)}

    async def reap(self) -> None:
        """Stop the daemon if it runs (SIGTERM), then SIGKILL whatever of ours is left."""
        self.pids()
        if self.process.process is not None and self.process.process.returncode is None:
            with suppress(RuntimeError):  # it ignored SIGTERM and was killed: the log says so
                await self.process.stop()
        config = str(self.setup.config_path)
        for pid in self._seen:
            if config in command_line(pid):  # still ours, not a recycled pid
                for signum in (signal.SIGCONT, signal.SIGKILL):
                    with suppress(ProcessLookupError):
                        os.kill(pid, signum)


def _json_or_text(data: bytes) -> dict:
    try:
        return json.loads(data)
    except ValueError:
        return {"body": data.decode(errors="replace")}
