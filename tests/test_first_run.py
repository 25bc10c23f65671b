"""A newcomer's first run: `make run` installs what the demo needs, the demo on the
embedded default says how to sign in, and `agent add` says how the demo takes an agent."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.web import WebClient

ROOT = Path(__file__).resolve().parent.parent
DEMO_AGENT = "agent@example.test"
PASSWORD = "a demo password 1"


def make_dry_run(tmp_path: Path, target: str) -> str:
    """What `make TARGET` would run in a fresh clone (no .venv yet), as a top-level
    make: run under `make test`, the inherited MAKELEVEL would add directory lines."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    }
    done = subprocess.run(
        ["make", "-n", target],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_no_test_tools_and_make_test_does(tmp_path):
    run = make_dry_run(tmp_path, "run")
    assert "pip install -q -e .\n" in run and "[test]" not in run
    assert run.rstrip().endswith(".venv/bin/mailgate serve")
    assert "pip install -q -e '.[test]'" in make_dry_run(tmp_path, "test")


def mailgate(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The CLI with no config but what ``cwd`` holds (the embedded default if nothing)."""
    return subprocess.run(
        [sys.executable, "-m", "mailgate", *args],
        cwd=cwd,
        env=demo_environment(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def demo_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("MAILGATE_CONFIG", "STATE_DIRECTORY")}


class Demo:
    """`mailgate serve` on the embedded default, its log read line by line."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.seen: list[str] = []

    async def line_with(self, text: str) -> str:
        """The next log line containing ``text`` (fails if the daemon ends first)."""
        while True:
            line = await asyncio.to_thread(self.process.stderr.readline)
            assert line, f"the daemon ended before logging {text!r}:\n{''.join(self.seen)}"
            self.seen.append(line)
            if text in line:
                return line

    def stop(self, how: signal.Signals = signal.SIGTERM) -> str:
        """Stop the daemon; everything it logged."""
        self.process.send_signal(how)
        rest = self.process.communicate(timeout=60)[1]
        return "".join(self.seen) + rest


@contextmanager
def demo(cwd: Path) -> Iterator[Demo]:
    for port in (2525, 8080):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is taken by something else on this machine")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailgate", "serve"],
        cwd=cwd,
        env=demo_environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    running = Demo(process)
    try:
        yield running
    finally:
        if process.poll() is None:
            running.stop()


async def test_embedded_default_starts_and_serves(tmp_path):
    """`mailgate serve` with no config at all: the demo setup on loopback ports."""
    with demo(tmp_path) as daemon:
        await daemon.line_with("mailgate ready (config: embedded default)")
        with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as client:
            client.sendmail("c@client.test", ["support@example.test"], b"Subject: hi\r\n\r\nx\r\n")
        captured = await daemon.line_with(" captured: ")
        assert "captured: no smarthost configured" in captured
        assert "captured: captured" not in captured
        log = daemon.stop()
    assert daemon.process.returncode == 0, log
    assert (tmp_path / "var" / "mailgate.db").exists()


async def test_ctrl_c_right_after_start_stops_the_demo(tmp_path):
    """The signal comes while the worker processes are being started."""
    with demo(tmp_path) as daemon:
        await daemon.line_with("mailgate ready (config: embedded default)")
        log = daemon.stop(signal.SIGINT)
    assert daemon.process.returncode == 0 and "mailgate stopped" in log, log


async def test_the_demo_logs_a_sign_in_link_until_its_agent_has_a_password(tmp_path):
    """The link is logged before "mailgate ready": that line is the barrier."""
    with demo(tmp_path) as daemon:
        await daemon.line_with("mailgate ready (config: embedded default)")
        [hint] = [line for line in daemon.seen if "demo: sign in as " in line]
        assert f"sign in as {DEMO_AGENT} with this link within 15 minutes" in hint
        assert f"agent passwd {DEMO_AGENT}" in hint
        link = re.search(r" link=(http://127\.0\.0\.1:8080(/login/link/\S+))$", hint)
        assert link, hint
        client = WebClient(8080)
        try:
            path = link.group(2)
            status, _, response = await client.post(path, {}, csrf_from=path)
            assert status == 303 and "mailgate_session=" in response.headers["Set-Cookie"]
            status, body, _ = await client.get("/login")
            assert status == 200 and f"signed in as Demo Agent ({DEMO_AGENT})" in body
        finally:
            await client.close()
        daemon.stop()
    passwd = mailgate(tmp_path, "agent", "passwd", DEMO_AGENT, stdin=PASSWORD + "\n")
    assert passwd.returncode == 0, passwd.stderr
    with demo(tmp_path) as daemon:
        await daemon.line_with("mailgate ready (config: embedded default)")
        log = daemon.stop()
    assert "demo: sign in" not in log and "/login/link/" not in log


def test_agent_add_on_the_demo_says_how_the_demo_takes_it(tmp_path):
    added = mailgate(tmp_path, "agent", "add", "nia@example.test", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert "the embedded default cannot be changed: save this as ./mailgate.toml" in added.stdout
    assert "(make run)" in added.stdout and "systemctl" not in added.stdout
    assert 'agents = ["agent@example.test"]' in added.stdout  # the default, to start from
    assert '[[agents]]\nemail = "nia@example.test"' in added.stdout
    config = tmp_path / "mailgate.toml"
    config.write_text('[[routes]]\naddress = "help@example.test"\n')
    added = mailgate(tmp_path, "agent", "add", "citra@example.test", stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    assert f"add this to {config.name} and reload the daemon (systemctl reload" in added.stdout
    assert "SIGHUP" in added.stdout and "make run" not in added.stdout
