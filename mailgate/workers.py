"""The pipeline and delivery workers in a process of their own.

Taking mail in (SMTP, LMTP, IMAP, the web) and processing it (pipeline, delivery)
each want a CPU core, and one Python process has the use of one. ``mailgate serve``
therefore runs the workers in a child process, ``mailgate work``, restarts it should
it die, and wakes it over a socket pair when there is new work: ``p`` for journal
entries, ``d`` for outgoing mail.

The child works from the daemon's config, never from the file: it gets the text on
its stdin when it starts, and on SIGHUP the daemon, having read and checked the file,
sends ``r``, the text's length (4 bytes) and the text. The child answers ``r`` once
it works from it, and only then does the daemon: mail for a route that a reload adds
is never processed by a worker that does not know the route yet. An edited or broken
file therefore changes nothing until SIGHUP, in both processes alike. Otherwise they
share only the database, exactly as two nodes do.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress

log = logging.getLogger(__name__)

PIPELINE, DELIVERY, RELOAD = b"p", b"d", b"r"
RELOAD_WAIT_SECONDS = 10.0
RESTART_PAUSE_SECONDS = (1.0, 30.0)  # first and longest pause before a restart


def work_command(config_path: str | None, wake_fd: int) -> list[str]:
    """The command line of the child: the same config as ours, found the same way."""
    config = ["--config", config_path] if config_path else []
    return [sys.executable, "-m", "mailgate", *config, "work", "--wake-fd", str(wake_fd)]


class WorkerProcess:
    """The parent's side: runs ``mailgate work`` until ``stop()``, and wakes it."""

    def __init__(self, config_path: str | None, config_text: str) -> None:
        self._config_path = config_path
        self._config_text = config_text
        self._socket: socket.socket | None = None
        self._sending_config = False
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._reloaded = asyncio.Event()

    def wake_pipeline(self) -> None:
        self._send(PIPELINE)

    def wake_delivery(self) -> None:
        self._send(DELIVERY)

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
                self._send(PIPELINE + DELIVERY)  # in case one was held back meanwhile
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
            log.error("worker process exited with status %s; restarting in %gs", code, pause)
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
            log.error("worker process did not stop in %gs; killing it", grace)
            process.kill()
            await process.wait()

    async def _run_once(self) -> int:
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        environment = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        try:
            self._process = await asyncio.create_subprocess_exec(
                *work_command(self._config_path, theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env=environment,
                stdin=asyncio.subprocess.PIPE,
            )
        finally:
            theirs.close()
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

    def _send(self, what: bytes) -> None:
        # A full buffer already holds a wake-up; a dead child is being restarted.
        if self._socket is not None and not self._sending_config:
            with suppress(OSError):
                self._socket.send(what)


async def listen_for_wakes(
    fd: int,
    wakes: Mapping[bytes, Callable[[], None]],
    reload: Callable[[str], None],
    on_parent_gone: Callable[[], None],
) -> None:
    """The child's side: call ``wakes[code]`` per code received, in order, and
    ``reload(text)`` for a config, answered once done; ``on_parent_gone`` when the
    socket closes (the parent exited: stop too)."""
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=fd))
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
