"""The pipeline worker and the delivery worker, each in a process of its own.

Taking mail in (SMTP, LMTP, IMAP, the web), turning it into tickets (pipeline) and
sending what that queues (delivery) each want a CPU core under load, and one Python
process has the use of one. ``mailgate serve`` therefore runs each worker in a child
process, ``mailgate work --role pipeline|delivery``, restarts one should it die, and
wakes it over a socket pair when there is new work: ``p`` for journal entries, ``d``
for outgoing mail and webhook events (the delivery child sends both). The pipeline
child says ``d`` to the daemon when it has queued either, and the daemon passes that
on to the delivery child.

A child works from the daemon's config, never from the file: it gets the text on
its stdin when it starts, and on SIGHUP the daemon, having read and checked the file,
sends ``r``, the text's length (4 bytes) and the text. The child answers ``r`` once
it works from it, and only then does the daemon: mail for a route that a reload adds
is never processed by a worker that does not know the route yet. An edited or broken
file therefore changes nothing until SIGHUP, in all processes alike. Otherwise they
share only the database, exactly as nodes do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime

log = logging.getLogger(__name__)

PIPELINE, DELIVERY, RELOAD = b"p", b"d", b"r"
ROLES = {"pipeline": PIPELINE, "delivery": DELIVERY}  # a child's role: what wakes it
RELOAD_WAIT_SECONDS = 10.0
RESTART_PAUSE_SECONDS = (1.0, 30.0)  # first and longest pause before a restart


def work_command(config_path: str | None, role: str, wake_fd: int) -> list[str]:
    """The command line of a child: the same config as ours, found the same way."""
    config = ["--config", config_path] if config_path else []
    command = ["work", "--role", role, "--wake-fd", str(wake_fd)]
    return [sys.executable, "-m", "mailgate", *config, *command]


class Workers:
    """The daemon's worker processes: the pipeline's and delivery's."""

    def __init__(self, config_path: str | None, config_text: str) -> None:
        self.delivery = WorkerProcess("delivery", config_path, config_text)
        self.pipeline = WorkerProcess("pipeline", config_path, config_text, self._relay)

    def started(self) -> dict[int, datetime]:
        """The worker processes running now: pid -> when each started."""
        running = [w.running for w in (self.pipeline, self.delivery)]
        return dict(child for child in running if child is not None)

    def wake_pipeline(self) -> None:
        self.pipeline.wake()

    def wake_delivery(self) -> None:
        self.delivery.wake()

    def _relay(self, code: bytes) -> None:
        if code == DELIVERY:  # the pipeline queued mail
            self.delivery.wake()

    async def reload(self, config_text: str) -> bool:
        """Have both children work from ``config_text``; True once both say they do."""
        confirmed = await asyncio.gather(
            self.pipeline.reload(config_text), self.delivery.reload(config_text)
        )
        return all(confirmed)

    def stopping(self) -> None:
        self.pipeline.stopping()
        self.delivery.stopping()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.pipeline.run(), name="pipeline process")
            group.create_task(self.delivery.run(), name="delivery process")

    async def stop(self, grace: float) -> None:
        """Both at once, within ``grace`` (mail queued meanwhile goes after a start)."""
        await asyncio.gather(self.pipeline.stop(grace), self.delivery.stop(grace))


class WorkerProcess:
    """The parent's side of one child: runs ``mailgate work --role ROLE`` until
    ``stop()``, and wakes it; ``on_wake`` gets the wake-ups the child sends."""

    def __init__(
        self,
        role: str,
        config_path: str | None,
        config_text: str,
        on_wake: Callable[[bytes], None] = lambda code: None,
    ) -> None:
        self.role = role
        self._config_path = config_path
        self._config_text = config_text
        self._on_wake = on_wake
        self._socket: socket.socket | None = None
        self._sending_config = False
        self._process: asyncio.subprocess.Process | None = None
        self._started_at = datetime.now(UTC)
        self._stopping = asyncio.Event()
        self._reloaded = asyncio.Event()

    @property
    def running(self) -> tuple[int, datetime] | None:
        """The child's pid and start, while it runs."""
        process = self._process
        if process is None or process.returncode is not None:
            return None
        return process.pid, self._started_at

    def wake(self) -> None:
        self._send(ROLES[self.role])

    async def reload(self, config_text: str) -> bool:
        """Have the child work from ``config_text``; True once it says it does. (A
        child started from now on starts from it.)"""
        self._config_text = config_text
        sock = self._socket
        if sock is None:
            return False
        self._reloaded.clear()
        data = config_text.encode()
        self._sending_config = True  # no wake-up byte in the middle of the text
        try:
            async with asyncio.timeout(RELOAD_WAIT_SECONDS):
                loop = asyncio.get_running_loop()
                await loop.sock_sendall(sock, RELOAD + len(data).to_bytes(4, "big") + data)
                self._sending_config = False
                self.wake()  # in case one was held back meanwhile
                await self._reloaded.wait()
        except (TimeoutError, OSError):
            return False
        finally:
            self._sending_config = False
        return True

    def stopping(self) -> None:
        """The daemon is stopping: a child that exits now is not started again."""
        self._stopping.set()

    async def run(self) -> None:
        """Start the child and start it again whenever it exits, until ``stop()``."""
        pause = RESTART_PAUSE_SECONDS[0]
        while not self._stopping.is_set():
            code = await self._run_once()
            if self._stopping.is_set():
                return
            log.error(
                "%s worker process exited with status %s; restarting in %gs", self.role, code, pause
            )
            with suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._stopping.wait()
            pause = min(pause * 2, RESTART_PAUSE_SECONDS[1])

    async def stop(self, grace: float) -> None:
        """Let the child finish its current passes (SIGTERM), then end it."""
        self.stopping()
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            async with asyncio.timeout(grace):
                await process.wait()
        except TimeoutError:
            log.error("%s worker process did not stop in %gs; killing it", self.role, grace)
            process.kill()
            await process.wait()

    async def _run_once(self) -> int:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        environment = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        self._started_at = datetime.now(UTC)
        try:
            self._process = await asyncio.create_subprocess_exec(
                *work_command(self._config_path, self.role, theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env=environment,
                stdin=asyncio.subprocess.PIPE,
            )
        finally:
            theirs.close()
        if self._stopping.is_set():  # stop() came while the child was being started
            self._process.terminate()
        with suppress(OSError):  # a child that died at once is restarted below
            self._process.stdin.write(self._config_text.encode())
            await self._process.stdin.drain()
        self._process.stdin.close()
        self._socket = ours
        answers = asyncio.create_task(self._read_answers(ours))
        try:
            return await self._process.wait()
        finally:
            self._socket = None
            answers.cancel()
            ours.close()

    async def _read_answers(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while data := await loop.sock_recv(sock, 64):
            if RELOAD in data:
                self._reloaded.set()
            for code in set(data) - set(RELOAD):
                self._on_wake(bytes([code]))

    def _send(self, what: bytes) -> None:
        # A full buffer already holds a wake-up; a dead child is being restarted.
        if self._socket is not None and not self._sending_config:
            with suppress(OSError):
                self._socket.send(what)


class ParentLink:
    """A child's side of the socket: wake-ups and configs in; answers, and wake-ups
    for another child, out."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, fd: int) -> ParentLink:
        return cls(*await asyncio.open_connection(sock=socket.socket(fileno=fd)))

    def wake_parent(self, code: bytes) -> None:
        """Tell the daemon there is work of kind ``code`` (it wakes that child)."""
        if not self._writer.is_closing():
            self._writer.write(code)

    async def listen(
        self,
        wakes: Mapping[bytes, Callable[[], None]],
        reload: Callable[[str], None],
        on_parent_gone: Callable[[], None],
    ) -> None:
        """Call ``wakes[code]`` per code received, in order, and ``reload(text)`` for a
        config, answered once done; ``on_parent_gone`` when the socket closes (the
        parent exited: stop too)."""
        reader, writer = self._reader, self._writer
        try:
            while code := await reader.read(1):
                if code != RELOAD:
                    wakes.get(code, lambda: None)()
                    continue
                size = int.from_bytes(await reader.readexactly(4), "big")
                reload((await reader.readexactly(size)).decode())
                writer.write(RELOAD)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the parent is gone mid-message
        finally:
            writer.close()
        on_parent_gone()
