"""The machine's Postfix as a real MTA in front of mailgate, for tests.

There is one Postfix per machine (its queue is /var/spool/postfix, it listens on
127.0.0.1:25), so tests take turns with it. ``running_postfix`` backs up main.cf and
master.cf, applies a test's transports, starts Postfix with its log in the test's
directory, and afterwards stops it, deletes every queued message and puts the original
files back. The backups sit next to the originals while a test runs, so a run that was
killed is repaired by the next one.

``MailSink`` is the far end for mail Postfix sends out (bounces to our test senders):
an aiosmtpd server in a thread of its own that keeps what it receives.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import smtplib
import stat
import subprocess
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.support import free_port, need, wait_until

CONFIG_DIR = Path("/etc/postfix")
CONFIG_FILES = ("main.cf", "master.cf")
BACKUP_SUFFIX = ".mailgate-tests"
SMTP_PORT = 25

# PEERS.md: loopback only, IPv4, no TLS; example.test is relayed by transport_maps.
BASE_SETTINGS = {
    "inet_interfaces": "loopback-only",
    "inet_protocols": "ipv4",
    "myhostname": "mx.mailgate.test",
    "relay_domains": "example.test",
    "smtp_tls_security_level": "none",
    "lmtp_tls_security_level": "none",
    "smtpd_tls_security_level": "none",
}


class PostfixError(Exception):
    """A Postfix command failed; the message holds its output."""


async def run(*argv: str) -> str:
    """Run a Postfix command line; its standard output, or PostfixError."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        raise PostfixError(f"{' '.join(argv)} exited {process.returncode}: {err.decode()}")
    return out.decode()


async def is_running() -> bool:
    process = await asyncio.create_subprocess_exec(
        "postfix", "status", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return await process.wait() == 0


def transport_map(transports: dict[str, str]) -> str:
    """``{"example.test": "mailgate:"}`` -> ``inline:{ example.test=mailgate: }``."""
    return "inline:{ " + ", ".join(f"{d}={t}" for d, t in transports.items()) + " }"


class Postfix:
    """The running Postfix of one test: its queue, its log, a way to send it mail."""

    def __init__(self, directory: Path) -> None:
        self.log_path = directory / "postfix.log"

    async def configure(self, settings: dict[str, str]) -> None:
        await run("postconf", "-e", *(f"{key} = {value}" for key, value in settings.items()))

    async def add_service(self, name: str, entry: str) -> None:
        """A master.cf entry, e.g. ``mailgate unix - n n - - pipe flags=... argv=...``."""
        await run("postconf", "-Me", f"{name}/unix={entry}")

    async def start(self) -> None:
        await run("postfix", "start")  # checks the configuration first
        await wait_until(self._listening, "Postfix to listen on 127.0.0.1:25", 30)

    async def _listening(self) -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", SMTP_PORT)
        except OSError:
            return False
        writer.close()
        await writer.wait_closed()
        return True

    async def stop(self) -> None:
        if await is_running():
            await run("postfix", "stop")  # waits (up to 5 s) for the master to exit

    async def flush(self) -> None:
        """``postqueue -f``: forget dead destinations and retry all deferred mail now."""
        await run("postqueue", "-f")

    async def purge(self) -> None:
        await run("postsuper", "-d", "ALL")

    async def queue(self) -> list[dict]:
        """The queue as ``postqueue -j`` shows it, one dict per message."""
        out = await run("postqueue", "-j")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    async def settled(self) -> bool:
        """Nothing in flight: each message was delivered, bounced or deferred.

        Only for mail that is already queued: ``postqueue -f`` moves deferred mail
        back a moment after it returns.
        """
        return all(message["queue_name"] == "deferred" for message in await self.queue())

    async def assert_empty(self) -> None:
        queue = await self.queue()
        assert queue == [], f"still queued: {queue}\nPostfix log:\n{await self.log()}"

    async def log(self) -> str:
        if not self.log_path.exists():
            return ""
        return await asyncio.to_thread(self.log_path.read_text, errors="replace")

    async def log_lines(self, *needles: str) -> list[str]:
        """The log lines that contain every one of ``needles``."""
        return [line for line in (await self.log()).splitlines() if all(n in line for n in needles)]

    async def wait(self, check, what: str, seconds: float = 60.0):
        """``wait_until`` that shows Postfix's log when it times out: the reason is there."""
        try:
            return await wait_until(check, what, seconds)
        except AssertionError as exc:
            queue = await self.queue()
            raise AssertionError(
                f"{exc}\nqueue: {queue}\nPostfix log:\n{await self.log()}"
            ) from None

    async def send(self, sender: str, recipients: list[str], raw: bytes) -> str:
        """Submit over SMTP to 127.0.0.1:25; Postfix's queue id of the message."""
        return await asyncio.to_thread(smtp_submit, sender, recipients, raw)


def smtp_submit(sender: str, recipients: list[str], raw: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30) as client:
        client.ehlo("client.test")
        client.mail(sender)
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            assert code == 250, f"Postfix refused {recipient}: {code} {reply!r}"
        code, reply = client.data(raw)
        assert code == 250, f"Postfix refused the message: {code} {reply!r}"
        return reply.decode().rsplit(" ", 1)[-1]  # "2.0.0 Ok: queued as 4Xb1..."


def _backup(name: str) -> Path:
    return CONFIG_DIR / f"{name}{BACKUP_SUFFIX}"


async def _recover_from_killed_run() -> None:
    """Backups left behind mean a run died mid-test: stop its Postfix, restore files."""
    if not any(_backup(name).exists() for name in CONFIG_FILES):
        return
    _restore_config()
    if await is_running():
        await run("postfix", "stop")
    await run("postsuper", "-d", "ALL")


def _restore_config() -> None:
    for name in CONFIG_FILES:
        if _backup(name).exists():
            os.replace(_backup(name), CONFIG_DIR / name)


async def _tear_down(postfix: Postfix) -> None:
    """Stop Postfix, leave no mail behind, and restore the admin's configuration."""
    try:
        # Delete while postlogd runs: commands run without it cannot write the test's
        # log (postsuper drops to the postfix user, the log's directory is root's).
        if await is_running():
            await postfix.purge()
    finally:
        try:
            await postfix.stop()
        finally:
            _restore_config()
    await run("postsuper", "-d", "ALL")  # anything that slipped in, under the old config


@asynccontextmanager
async def running_postfix(
    directory: Path, transports: dict[str, str], services: dict[str, str] | None = None
) -> AsyncIterator[Postfix]:
    """Postfix relaying ``transports`` (domain -> transport), started and cleaned up."""
    need(shutil.which("postfix") is not None, "Postfix is not installed (apt-get install postfix)")
    need(os.geteuid() == 0, "driving the system Postfix needs root")
    await _recover_from_killed_run()
    need(not await is_running(), "Postfix is already running here; the tests need it stopped")
    for name in CONFIG_FILES:
        shutil.copy2(CONFIG_DIR / name, _backup(name))
    postfix = Postfix(directory)
    try:
        await run("postfix", "check")  # also creates queue directories a fresh install lacks
        await postfix.purge()
        await postfix.configure(
            {
                **BASE_SETTINGS,
                "transport_maps": transport_map(transports),
                "maillog_file": str(postfix.log_path),
                "maillog_file_prefixes": f"/var, /dev/stdout, {directory}",
            }
        )
        for name, entry in (services or {}).items():
            await postfix.add_service(name, entry)
        await postfix.start()
        yield postfix
    finally:
        await _tear_down(postfix)


@dataclass
class ReceivedMail:
    mail_from: str
    recipients: list[str]
    content: bytes


@dataclass
class MailSink:
    """An SMTP server on a free loopback port that keeps every message it is given."""

    port: int = field(default_factory=free_port)
    received: list[ReceivedMail] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        sender = "" if envelope.mail_from == "<>" else envelope.mail_from  # aiosmtpd says <>
        self.received.append(
            ReceivedMail(sender, list(envelope.rcpt_tos), envelope.original_content)
        )
        return "250 2.0.0 OK"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[MailSink]:
        controller = Controller(self, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(controller.start)
        try:
            yield self
        finally:
            await asyncio.to_thread(controller.stop)


@dataclass
class SystemUser:
    """An unprivileged account (Postfix runs pipe commands as one, never as root)."""

    name: str

    @property
    def exists(self) -> bool:
        try:
            pwd.getpwnam(self.name)
        except KeyError:
            return False
        return True

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    @property
    def gid(self) -> int:
        return pwd.getpwnam(self.name).pw_gid


@asynccontextmanager
async def traversable(paths: Iterable[Path]) -> AsyncIterator[list[Path]]:
    """Let other users pass through every directory above ``paths`` (``chmod o+x``).

    A pipe command runs as an unprivileged user; when the virtualenv, its Python or the
    checkout lives under a private directory such as /root (mode 0700), that user
    cannot reach them. Only the search bit is added, never read (nobody can list
    /root), and each mode is put back afterwards. Yields the directories changed.
    """
    changed: dict[Path, int] = {}
    try:
        for path in paths:
            for directory in [path, *path.parents] if path.is_dir() else path.parents:
                mode = stat.S_IMODE(directory.stat().st_mode)
                if directory not in changed and not mode & stat.S_IXOTH:
                    changed[directory] = mode
                    directory.chmod(mode | stat.S_IXOTH)
        yield sorted(changed)
    finally:
        for directory, mode in changed.items():
            directory.chmod(mode)


def give_to(user: SystemUser, directory: Path) -> None:
    """Make ``directory`` and everything in it belong to ``user``."""
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, user.uid, user.gid)
