"""A throwaway Dovecot 2.3 for tests and benchmarks, on free loopback ports.

``Dovecot`` owns one instance: a config in its own temporary directory, a test CA and
a server certificate it signed, passwd-file users, Maildir storage, start/stop by its
own commands. Mail is put in with APPEND (``append``) or, for bulk loads, written
straight into the Maildir (``drop``); ``flags`` and ``count`` read what the server
holds, over plain IMAP with imaplib, as an outside client would.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.support import free_ports

DOMAIN = "example.test"
DH_FILE = Path("/usr/share/dovecot/dh.pem")
POOL_SIZE = 100
_QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {first_uid}
mail_fsync = never
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
{dh}
mail_location = maildir:{dir}/mail/%d/%n/Maildir
{capability}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=vmail gid=vmail home={dir}/mail/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
"""


def missing() -> str:
    """Why a Dovecot cannot be started here, or "" if it can."""
    if not shutil.which("dovecot"):
        return "dovecot is not installed (apt-get install dovecot-imapd)"
    if not shutil.which("openssl"):
        return "openssl is not installed"
    if os.geteuid() != 0:
        return "starting Dovecot with a vmail user needs root"
    return ""


def message(number: int, size: int = 0, tag: str = "m") -> bytes:
    """A small, distinct RFC 5322 message; padded to about ``size`` bytes if given."""
    head = (
        f"Return-Path: <customer{number}@client.test>\r\n"
        f"From: Customer {number} <customer{number}@client.test>\r\n"
        f"To: support@{DOMAIN}\r\n"
        f"Subject: Question {tag}-{number}\r\n"
        f"Message-ID: <{tag}-{number}-{secrets.token_hex(4)}@client.test>\r\n"
        f"Date: Mon, 21 Jul 2025 10:00:00 +0000\r\n\r\n"
    ).encode()
    body = f"Hello, this is message {tag}-{number}.\r\n".encode()
    padding = max(0, size - len(head) - len(body))
    body += b"".join(b"x" * 76 + b"\r\n" for _ in range(padding // 78))
    return head + body


class Dovecot:
    """One Dovecot instance; ``capability`` overrides what it advertises after login."""

    host = "127.0.0.1"

    def __init__(self, capability: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailgate-dovecot-"))
        self.dir.chmod(0o755)  # the imap processes run as vmail and must reach mail/
        self.imap_port, self.imaps_port = free_ports(2)
        self.capability = capability
        self.users: dict[str, str] = {}
        self._pool = [f"box-{n:03d}@{DOMAIN}" for n in range(POOL_SIZE, 0, -1)]
        self.running = False

    @property
    def ca_file(self) -> str:
        return str(self.dir / "ca.pem")

    @property
    def config_file(self) -> str:
        return str(self.dir / "dovecot.conf")

    def start(self) -> Dovecot:
        if not (self.dir / "cert.pem").exists():
            self._prepare()
        # Dovecot daemonises: its children must not hold our pipes open.
        subprocess.run(["dovecot", "-c", self.config_file], check=True, **_QUIET)
        self.running = True
        _wait_for_port(self.host, self.imap_port, up=True)
        _wait_for_port(self.host, self.imaps_port, up=True)
        return self

    def stop(self) -> None:
        if not self.running:
            return
        subprocess.run(["dovecot", "-c", self.config_file, "stop"], **_QUIET)
        self.running = False
        _wait_for_port(self.host, self.imap_port, up=False)
        _wait_for_port(self.host, self.imaps_port, up=False)
        _wait_until_gone(self.dir / "run" / "master.pid")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def add_user(self, name: str = "") -> str:
        """A mailbox owner no one else uses, password "secret"; returns the login.

        Dovecot looks at its passwd-file at most once a second, so a pool of users is
        written up front; a named or extra user waits for the file to be read again.
        """
        if not name and self._pool:
            user = self._pool.pop()
            self.users[user] = "secret"
            return user
        user = f"{name or 'box-' + secrets.token_hex(4)}@{DOMAIN}"
        self.users[user] = "secret"
        self._write_users()
        if self.running:
            time.sleep(1.1)
        return user

    def _write_users(self) -> None:
        users = self.dir / "users"
        entries = {**{u: "secret" for u in self._pool}, **self.users}
        users.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in entries.items()))
        shutil.chown(users, group="dovecot")
        users.chmod(0o640)

    @contextmanager
    def client(self, user: str) -> Iterator[imaplib.IMAP4]:
        """An imaplib connection, logged in as ``user`` (plain IMAP on loopback)."""
        connection = imaplib.IMAP4(self.host, self.imap_port, timeout=30)
        try:
            connection.login(user, self.users[user])
            yield connection
        finally:
            with suppress(imaplib.IMAP4.error, OSError):
                connection.logout()

    def append(self, user: str, messages: Iterable[bytes], folder: str = "INBOX") -> int:
        """APPEND each message over one connection; returns how many."""
        count = 0
        with self.client(user) as connection:
            for raw in messages:
                status, data = connection.append(folder, None, None, raw)
                assert status == "OK", data
                count += 1
        return count

    def drop(self, user: str, messages: Iterable[bytes]) -> int:
        """Bulk-load INBOX by writing Maildir files; Dovecot assigns UIDs at next sync."""
        local = user.split("@")[0]
        maildir = self.dir / "mail" / DOMAIN / local / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        stamp = f"{int(time.time())}.M{secrets.token_hex(4)}"
        count = 0
        for count, raw in enumerate(messages, start=1):
            (maildir / "new" / f"{stamp}Q{count}.mailgate").write_bytes(raw.replace(b"\r\n", b"\n"))
        subprocess.run(["chown", "-R", "vmail:vmail", str(self.dir / "mail" / DOMAIN / local)])
        return count

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        """UID -> flags of every message in ``folder``."""
        with self.client(user) as connection:
            status, _ = connection.select(_quote(folder), readonly=True)
            assert status == "OK", f"cannot select {folder}"
            status, data = connection.uid("FETCH", "1:*", "(FLAGS)")
        result: dict[int, set[str]] = {}
        for item in data:
            found = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", item or b"")
            if found:
                result[int(found.group(1))] = set(found.group(2).decode().split())
        return result

    def count(self, user: str, folder: str = "INBOX") -> int:
        with self.client(user) as connection:
            status, data = connection.status(_quote(folder), "(MESSAGES)")
        if status != "OK":
            return 0
        return int(re.search(rb"MESSAGES (\d+)", data[0]).group(1))

    def _prepare(self) -> None:
        _ensure_vmail()
        for sub in ("run", "state", "mail"):
            (self.dir / sub).mkdir(exist_ok=True)
        shutil.chown(self.dir / "mail", "vmail", "vmail")
        _make_certificates(self.dir)
        self.add_user("support")
        self._write_users()
        capability = f"imap_capability = {self.capability}" if self.capability else ""
        dh = f"ssl_dh = <{DH_FILE}" if DH_FILE.exists() else ""
        Path(self.config_file).write_text(
            CONFIG.format(
                dir=self.dir,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
                capability=capability,
                dh=dh,
                first_uid=min(500, pwd.getpwnam("vmail").pw_uid),
            )
        )


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ensure_vmail() -> None:
    try:
        pwd.getpwnam("vmail")
    except KeyError:
        subprocess.run(
            ["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", "vmail"],
            check=True,
            capture_output=True,
        )


def _make_certificates(directory: Path) -> None:
    """A test CA, and a certificate for 127.0.0.1/localhost that it signed."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-subj", "/CN=mailgate test CA", "-keyout", "ca-key.pem", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "key.pem", "-out", "server.csr",
    )  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
        "-CAcreateserial", "-days", "30", "-extfile", "san.ext", "-out", "cert.pem",
    )  # fmt: skip


def _wait_for_port(host: str, port: int, up: bool, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        time.sleep(0.05)
    raise RuntimeError(f"Dovecot port {port} did not come {'up' if up else 'down'}")


def _wait_until_gone(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
