"""``mailgate serve`` under systemd's notify protocol, against a datagram socket the
test reads as systemd would: READY at start, RELOADING/READY around a reload,
watchdog pings at half the interval, none while the worker processes are frozen,
STOPPING at the end; and journald's priority prefixes when stderr is the journal."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support import MailgateProcess, MailgateSetup, wait_until


class NotifySocket:
    """The datagram socket systemd listens on; ``states`` are the datagrams so far."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.states: list[str] = []

    def read(self) -> list[str]:
        while True:
            try:
                self.states.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.states

    def count(self, state: str) -> int:
        return sum(state in datagram.split("\n") for datagram in self.read())

    def close(self) -> None:
        self.sock.close()


@asynccontextmanager
async def under_systemd(setup: MailgateSetup, address: str, **environment: str):
    """The daemon started as systemd starts a Type=notify unit."""
    env = {**os.environ, "NOTIFY_SOCKET": address, **environment}
    process = MailgateProcess(setup)
    setup.write()
    with open(process.log_path, "ab") as log:  # noqa: ASYNC230 - the child writes to it
        process.process = await asyncio.create_subprocess_exec(
            *setup.command("serve"),
            cwd=setup.directory,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        yield process
    finally:
        if process.process.returncode is None:
            process.process.kill()
            await process.process.wait()


def counted(notify: NotifySocket, state: str, count: int):
    async def check() -> bool:
        return notify.count(state) >= count

    return check


async def children_of(pid: int) -> list[int]:
    found = await asyncio.create_subprocess_exec(
        "pgrep", "-P", str(pid), stdout=asyncio.subprocess.PIPE
    )
    return [int(child) for child in (await found.communicate())[0].split()]


async def test_ready_reload_watchdog_and_stopping_reach_systemd(setup, tmp_path: Path):
    notify = NotifySocket(str(tmp_path / "notify"))
    try:
        async with under_systemd(
            setup, str(tmp_path / "notify"), WATCHDOG_USEC="1000000"
        ) as daemon:
            await wait_until(counted(notify, "READY=1", 1), "READY=1")
            [ready] = [d for d in notify.read() if "READY=1" in d.split("\n")]
            assert ready.split("\n")[1].startswith("STATUS=accepting mail on 2 listener(s)")
            await wait_until(counted(notify, "WATCHDOG=1", 3), "three watchdog pings")

            daemon.signal(signal.SIGHUP)
            await wait_until(counted(notify, "READY=1", 2), "READY=1 after the reload")
            reloading = notify.states.index("RELOADING=1")
            assert "READY=1" in notify.states[reloading + 1 :]

            daemon.signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.process.wait(), 30) == 0
            assert "STOPPING=1\nSTATUS=stopping" in notify.read()
    finally:
        notify.close()


async def test_frozen_workers_stop_the_watchdog_pings_until_they_thaw(setup, tmp_path: Path):
    """A worker process stopped by SIGSTOP beats no more: after node_timeout_seconds
    the daemon stops feeding the watchdog (systemd would restart it); thawed, it feeds
    the watchdog again. The abstract-namespace form of NOTIFY_SOCKET is used."""
    setup.sections["cluster"] = {"node_timeout_seconds": 2.0}
    name = f"mailgate-test-{os.getpid()}-{tmp_path.name}"
    notify = NotifySocket("\0" + name)
    try:
        async with under_systemd(setup, "@" + name, WATCHDOG_USEC="400000") as daemon:
            await wait_until(counted(notify, "WATCHDOG=1", 2), "watchdog pings")
            workers = await children_of(daemon.process.pid)
            assert len(workers) == 2
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)
            try:
                await wait_until(
                    lambda: _logged(daemon, "not feeding the systemd watchdog"),
                    "the watchdog starved",
                    seconds=60,
                )
                assert f"worker process {workers[0]}: no heartbeat" in daemon.log()
                starved = notify.count("WATCHDOG=1")
                # The barrier: a reload the frozen workers cannot confirm takes
                # RELOAD_WAIT_SECONDS, dozens of ping intervals, and sends none.
                daemon.signal(signal.SIGHUP)
                await wait_until(
                    lambda: _logged(daemon, "did not confirm the reload"),
                    "the unconfirmed reload",
                    seconds=60,
                )
                assert notify.count("WATCHDOG=1") == starved
            finally:
                for pid in workers:
                    os.kill(pid, signal.SIGCONT)
            await wait_until(
                lambda: _logged(daemon, "feeding the systemd watchdog again"),
                "the watchdog fed again",
                seconds=60,
            )
            await wait_until(counted(notify, "WATCHDOG=1", starved + 2), "pings again")
            daemon.signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.process.wait(), 30) == 0
    finally:
        notify.close()


async def _logged(daemon: MailgateProcess, line: str) -> bool:
    return line in daemon.log()


async def test_log_lines_carry_journald_priorities_when_stderr_is_the_journal(setup, tmp_path):
    """With $JOURNAL_STREAM set, each line starts with its syslog priority and drops
    the timestamp (journald stamps it)."""
    notify = NotifySocket(str(tmp_path / "notify"))
    try:
        async with under_systemd(
            setup, str(tmp_path / "notify"), JOURNAL_STREAM="8:12345"
        ) as daemon:
            await wait_until(counted(notify, "READY=1", 1), "READY=1")
            setup.config_path.write_text("[smtp\nbroken")
            daemon.signal(signal.SIGHUP)
            await wait_until(lambda: _logged(daemon, "reload failed"), "the failed reload")
            daemon.signal(signal.SIGTERM)
            assert await asyncio.wait_for(daemon.process.wait(), 30) == 0
        lines = [line for line in daemon.log().splitlines() if "logger=" in line]
        ready = next(line for line in lines if "mailgate ready" in line)
        failed = next(line for line in lines if "reload failed" in line)
        assert ready.startswith("<6>level=info ") and failed.startswith("<3>level=error ")
        assert not any(line.startswith("ts=") for line in lines)
    finally:
        notify.close()
