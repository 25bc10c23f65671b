"""The IMAP wire: one connection to one folder, spoken with aioimaplib.

``ImapSource`` is the seam in front of the IMAP server. It connects (TLS, STARTTLS or
plain), logs in, selects the folder and then answers a handful of questions by UID:
which UIDs are new, how big they are, their raw bytes, mark them done, wait in IDLE.
It knows nothing of the journal; every failure worth showing an admin is an
``ImapError`` whose text says what went wrong and where.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TypeVar

from aioimaplib import IMAP4, IMAP4_SSL, STOP_WAIT_SERVER_PUSH, Command, Response, quoted

from mailgate.config import Imap
from mailgate.intake.imap_wire import fetched_bodies, fetched_sizes, search_uids, uid_set

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_EXISTS = re.compile(rb"^(\d+) EXISTS")
T = TypeVar("T")
# aioimaplib rescans a FETCH response for every line it reads (quadratic in its
# length): many short FETCH commands beat one long one (~4,400 vs ~2,500 messages/s).
FETCH_CHUNK = 50


class ImapError(Exception):
    """A failure of the IMAP side, worded for the status page and the log."""


@dataclass(frozen=True)
class Selected:
    uidvalidity: int
    exists: int


class ImapSource:
    """One logged-in connection with ``config.folder`` selected."""

    def __init__(self, config: Imap, timeout: float = 30.0) -> None:
        self.config = config
        self.where = f"{config.host}:{config.port}"
        self.exists = 0  # messages in the folder, as the server last said
        self._timeout = timeout
        self._client: IMAP4 | None = None
        self._gone = asyncio.Event()  # the connection ended (or the server said BYE)

    @property
    def can_idle(self) -> bool:
        return self._client is not None and self._client.has_capability("IDLE")

    async def open(self) -> Selected:
        """Connect, secure, log in and select the folder."""
        await self._connect()
        if self.config.security == "starttls":
            await self._starttls()
        await self._login()
        return await self._select()

    async def close(self) -> None:
        """Log out politely if the connection still stands, then drop it."""
        client, self._client = self._client, None
        if client is None or client.protocol.transport is None:
            return
        if not self._gone.is_set():
            with suppress(Exception):  # closing anyway
                async with asyncio.timeout(2.0):
                    await client.logout()
        client.protocol.transport.close()
        for task in (*client.tasks, *client.protocol.tasks):  # e.g. an IDLE cut short
            task.cancel()

    async def new_uids(self, after: int) -> list[int]:
        """UIDs above ``after``, ascending (``N:*`` also names the highest UID: dropped)."""
        response = await self._ok(
            self._client.uid_search(f"UID {after + 1}:*", charset=None), "UID SEARCH"
        )
        return [uid for uid in search_uids(response.lines) if uid > after]

    async def sizes_over(self, after: int, floor: int) -> dict[int, int]:
        """UID -> size of the messages above ``after`` larger than ``floor`` bytes
        (one SEARCH; usually none, so the common case costs no per-batch round trip)."""
        response = await self._ok(
            self._client.uid_search(f"UID {after + 1}:* LARGER {floor}", charset=None),
            "UID SEARCH LARGER",
        )
        large = [uid for uid in search_uids(response.lines) if uid > after]
        sizes: dict[int, int] = {}
        for start in range(0, len(large), 200):
            chunk = uid_set(large[start : start + 200])
            fetched = self._client.uid("fetch", chunk, "(RFC822.SIZE)")
            sizes |= fetched_sizes((await self._ok(fetched, "UID FETCH sizes")).lines)
        return sizes

    async def fetch(self, uids: Sequence[int]) -> list[tuple[int, bytes]]:
        """``(uid, raw bytes)`` of the messages still there, without setting ``\\Seen``."""
        found: list[tuple[int, bytes]] = []
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = uids[start : start + FETCH_CHUNK]
            fetching = self._client.uid("fetch", uid_set(chunk), "(BODY.PEEK[])")
            response = await self._ok(fetching, "UID FETCH", timed=False)
            wanted = set(chunk)
            found += [(uid, raw) for uid, raw in fetched_bodies(response.lines) if uid in wanted]
        return found

    async def mark(self, uids: Sequence[int], after: str) -> None:
        """Mark journaled messages done: ``seen``, ``delete`` or ``move:FOLDER``."""
        if not uids:
            return
        uids_text = uid_set(uids)
        flags = r"(\Seen \Deleted)" if after == "delete" else r"(\Seen)"
        await self._ok(self._client.uid("store", uids_text, "+FLAGS.SILENT", flags), "UID STORE")
        if after == "delete":
            await self._expunge(uids_text)
        elif after.startswith("move:"):
            await self._move(uids_text, after.removeprefix("move:"))
        if after != "seen":
            self.exists = max(0, self.exists - len(uids))

    async def ensure_folder(self, folder: str) -> None:
        """Create ``folder`` unless it exists (a refusal shows later, at MOVE)."""
        await self._call(self._client.create(quoted(folder)), self._timeout)

    async def idle(self, seconds: float) -> bool:
        """Wait in IDLE for up to ``seconds``; True as soon as the server reports new mail."""
        client = self._client
        idle = await self._call(client.idle_start(timeout=seconds), self._timeout)
        try:
            while True:
                push = await self._call(client.wait_server_push(seconds + self._timeout), None)
                if push == STOP_WAIT_SERVER_PUSH:
                    return False
                if self._pushed_new_mail(push):
                    return True
        except TimeoutError:
            return False
        finally:
            if not self._gone.is_set():
                client.idle_done()
                await self._call(idle, self._timeout)

    def _pushed_new_mail(self, lines: list[bytes]) -> bool:
        new_mail = False
        for line in lines:
            if line.startswith(b"BYE"):
                self._gone.set()  # the server is leaving: expect no answer to DONE
                raise ImapError(f"{self.where} closed the connection: {_text([line])}")
            exists = _EXISTS.match(line)
            if exists:
                new_mail = new_mail or int(exists.group(1)) > self.exists
                self.exists = int(exists.group(1))
        return new_mail

    async def _connect(self) -> None:
        config = self.config
        if config.security == "tls":
            client = IMAP4_SSL(config.host, config.port, None, self._timeout, self._tls())
        else:
            client = IMAP4(config.host, config.port, timeout=self._timeout)
        self._client = client  # from here on, close() cleans up whatever happens
        try:
            await client.wait_hello_from_server()
        except ssl.SSLError as exc:
            raise ImapError(f"TLS handshake with {self.where} failed: {exc}") from exc
        except TimeoutError as exc:  # before OSError, its base class
            raise ImapError(f"no IMAP greeting from {self.where}") from exc
        except OSError as exc:
            raise ImapError(f"cannot connect to {self.where}: {exc.strerror or exc}") from exc
        client.protocol.conn_lost_cb = self._connection_lost

    async def _starttls(self) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise ImapError(f"{self.where} does not offer STARTTLS")
        command = Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        await self._ok(protocol.execute(command), "STARTTLS")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                protocol.transport = await loop.start_tls(
                    protocol.transport, protocol, self._tls(), server_hostname=self.config.host
                )
        except ssl.SSLError as exc:
            raise ImapError(f"TLS handshake with {self.where} failed: {exc}") from exc
        await self._call(protocol.capability(), self._timeout)  # forget pre-TLS claims

    async def _login(self) -> None:
        user = self.config.username
        response = await self._call(self._client.login(user, self.config.password), self._timeout)
        if response.result != "OK":
            raise ImapError(f"login failed for {user}: {response.result} {_text(response.lines)}")
        # What the server offers now (IDLE, MOVE, UIDPLUS), not what it said before LOGIN.
        await self._call(self._client.protocol.capability(), self._timeout)

    async def _select(self) -> Selected:
        folder = self.config.folder
        response = await self._call(self._client.select(quoted(folder)), self._timeout)
        if response.result != "OK":
            raise ImapError(f"cannot select {folder}: {_text(response.lines)}")
        validity = next(filter(None, map(_UIDVALIDITY.search, response.lines)), None)
        if validity is None:
            raise ImapError(f"{self.where} sent no UIDVALIDITY for {folder}")
        counts = [int(m.group(1)) for m in map(_EXISTS.match, response.lines) if m]
        self.exists = counts[-1] if counts else 0
        return Selected(int(validity.group(1)), self.exists)

    async def _move(self, uids_text: str, folder: str) -> None:
        if self._client.has_capability("MOVE"):
            await self._ok(self._client.uid("move", uids_text, quoted(folder)), "UID MOVE")
            return
        await self._ok(self._client.uid("copy", uids_text, quoted(folder)), "UID COPY")
        store = self._client.uid("store", uids_text, "+FLAGS.SILENT", r"(\Deleted)")
        await self._ok(store, "UID STORE")
        await self._expunge(uids_text)

    async def _expunge(self, uids_text: str) -> None:
        if self._client.has_capability("UIDPLUS"):
            await self._ok(self._client.uid("expunge", uids_text), "UID EXPUNGE")
        else:  # without UIDPLUS only a plain EXPUNGE exists (it takes all \Deleted mail)
            await self._ok(self._client.expunge(), "EXPUNGE")

    async def _ok(self, pending: Awaitable[Response], what: str, timed: bool = True) -> Response:
        """Await a command; a NO/BAD answer becomes an ImapError naming the command."""
        response = await self._call(pending, self._timeout if timed else None)
        if response.result != "OK":
            raise ImapError(f"{what} refused by {self.where}: {_text(response.lines)}")
        return response

    async def _call(self, pending: Awaitable[T], seconds: float | None) -> T:
        """Await ``pending``, but give up when the connection drops or time runs out.

        aioimaplib leaves a command waiting forever when the connection drops, so
        every call races the connection's end.
        """
        call = asyncio.ensure_future(pending)
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({call, gone}, timeout=seconds, return_when=FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not call.done():
                call.cancel()
        if call.done() and not call.cancelled():
            return call.result()
        if self._gone.is_set():
            raise ImapError(f"connection to {self.where} lost")
        raise ImapError(f"{self.where} did not answer within {seconds:g}s")

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file or None)

    def _connection_lost(self, _exc: Exception | None) -> None:
        self._gone.set()


def _text(lines: list) -> str:
    return " ".join(bytes(line).decode("utf-8", "replace") for line in lines[-2:]).strip()
