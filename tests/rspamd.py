"""Debian's rspamd as a real spam engine for tests, in a directory of its own.

The stock configuration (/etc/rspamd) is used as it is; a local configuration
directory in the test's temp directory moves the normal worker (the one answering
``/checkv2``) to a free loopback port, turns the proxy and controller workers off, and
keeps the pid file, databases and log there too. No Redis: rspamd logs warnings
about it and goes on. It runs in the foreground as its own user, ``_rspamd``, in a
process group of its own (a main process and its workers), stopped by a signal to
that group. It takes 10 to 30 seconds to load its rules, so tests share one.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support import free_port, need

RSPAMD = "/usr/bin/rspamd"
USER = "_rspamd"
START_SECONDS = 240.0  # two busy cores took 33 s, and up to 100 s
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

_OVERRIDES = {
    "worker-normal.inc": 'bind_socket = "127.0.0.1:{port}";\n',
    "worker-proxy.inc": "enabled = false;\n",
    "worker-controller.inc": "enabled = false;\n",
    "logging.inc": 'type = "file";\nfilename = "{directory}/rspamd.log";\nlevel = "warning";\n',
}


def rspamd_installed() -> None:
    """Skip (fail in CI) without Debian's rspamd package and its user."""
    try:
        pwd.getpwnam(USER)
        user = True
    except KeyError:
        user = False
    need(os.path.exists(RSPAMD) and user, "rspamd is not installed (apt-get install rspamd)")


class Rspamd:
    """``start()`` it, ask ``url``; ``stop()`` ends it (start it again on the same port)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _configure(self) -> None:
        for sub in ("override.d", "run", "db"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        for name, text in _OVERRIDES.items():
            content = text.format(port=self.port, directory=self.directory)
            (self.directory / "override.d" / name).write_text(content)
        account = pwd.getpwnam(USER)
        for path in (self.directory, *self.directory.rglob("*")):
            os.chown(path, account.pw_uid, account.pw_gid)

    def start(self) -> Rspamd:
        self._configure()
        where = {"LOCAL_CONFDIR": "", "RUNDIR": "/run", "DBDIR": "/db", "LOGDIR": ""}
        variables = [f"--var={name}={self.directory}{sub}" for name, sub in where.items()]
        with open(self.directory / "rspamd.out", "ab") as output:
            self.process = subprocess.Popen(
                [RSPAMD, "-f", "-u", USER, "-g", USER, *variables],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while not self._ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rspamd did not answer on {self.url} in {START_SECONDS:g}s")
            time.sleep(0.5)
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            log = (self.directory / "rspamd.out").read_text(errors="replace")
            raise RuntimeError(f"rspamd exited at start:\n{log[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM to its process group; SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
