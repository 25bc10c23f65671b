"""SMTP intake benchmark: mailgate against a bare aiosmtpd sink, measured in one run.

Both servers take the same load from Postfix's ``smtp-source``
(new connection per message, concurrency 10, 2 KB each); mailgate's rate is printed
as a ratio to the bare sink's. The journal is counted afterwards: a run that lost
mail fails.

    .venv/bin/python bench/smtp_ingest.py [--messages 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

PYTHON = sys.executable
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds:g}s")


@contextmanager
def running(command: list[str], port: int, cwd: Path | None = None):
    """A server subprocess, ready once ``port`` accepts; stopped with SIGTERM."""
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def load(port: int, messages: int, concurrency: int, size: int) -> float:
    """Send ``messages`` with smtp-source; returns messages per second."""
    command = [
        SMTP_SOURCE,
        "-s",
        str(concurrency),
        "-m",
        str(messages),
        "-l",
        str(size),
        "-f",
        "client@client.test",
        "-t",
        "support@example.test",
        f"127.0.0.1:{port}",
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return messages / (time.perf_counter() - started)


def bare_sink_command(port: int) -> list[str]:
    code = textwrap.dedent(f"""
        import asyncio
        from aiosmtpd.smtp import SMTP

        class Sink:
            async def handle_DATA(self, server, session, envelope):
                return "250 OK"

        async def main():
            loop = asyncio.get_running_loop()
            server = await loop.create_server(
                lambda: SMTP(Sink(), enable_SMTPUTF8=True, loop=loop), "127.0.0.1", {port})
            await server.serve_forever()

        asyncio.run(main())
    """)
    return [PYTHON, "-c", code]


def mailgate_config(directory: Path, smtp: int, web: int, smarthost: int | None) -> Path:
    outbound = f'smarthost = "127.0.0.1:{smarthost}"' if smarthost else 'smarthost = ""'
    path = directory / "mailgate.toml"
    path.write_text(
        textwrap.dedent(f"""
        [database]
        url = "sqlite+aiosqlite:///{directory}/bench.db"
        [smtp]
        listen = ["127.0.0.1:{smtp}"]
        max_sessions_per_client = 100
        [web]
        listen = "127.0.0.1:{web}"
        secret_key = "bench"
        [outbound]
        {outbound}
        [tickets]
        ack_rate_limit = "1000000/1m"
        [log]
        level = "warning"
        [[routes]]
        address = "support@example.test"
    """)
    )
    return path


def wait_healthy(port: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("mailgate did not become healthy")


def journal_count(directory: Path) -> int:
    with sqlite3.connect(directory / "bench.db") as db:
        return db.execute("SELECT count(*) FROM journal_entries").fetchone()[0]


def measure_bare(args) -> float:
    port = free_port()
    with running(bare_sink_command(port), port):
        load(port, 200, args.concurrency, args.size)  # warm-up
        return load(port, args.messages, args.concurrency, args.size)


def measure_mailgate(args) -> float:
    with tempfile.TemporaryDirectory(prefix="mailgate-bench-") as tmp:
        directory = Path(tmp)
        smtp, web = free_port(), free_port()
        config = mailgate_config(directory, smtp, web, None)
        command = [PYTHON, "-m", "mailgate", "--config", str(config), "serve"]
        with running(command, smtp, cwd=directory):
            wait_healthy(web)
            load(smtp, 200, args.concurrency, args.size)  # warm-up
            rate = load(smtp, args.messages, args.concurrency, args.size)
            stored = journal_count(directory)
        if stored != args.messages + 200:
            raise SystemExit(f"LOST MAIL: {args.messages + 200} accepted, {stored} in journal")
        return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median counts")
    args = parser.parse_args()
    if not os.access(SMTP_SOURCE, os.X_OK):
        raise SystemExit("needs Postfix's smtp-source (apt-get install postfix)")
    bare, ours = [], []
    for round_number in range(1, args.repeat + 1):
        bare.append(measure_bare(args))
        ours.append(measure_mailgate(args))
        print(
            f"round {round_number}: bare aiosmtpd {bare[-1]:8.1f}/s   "
            f"mailgate {ours[-1]:8.1f}/s   ratio {ours[-1] / bare[-1]:.2f}"
        )
    b, m = statistics.median(bare), statistics.median(ours)
    print(
        f"median: bare aiosmtpd {b:.1f} messages/s, mailgate intake {m:.1f} messages/s, "
        f"ratio {m / b:.2f} (target >= 0.9); {args.messages} x {args.size} B, "
        f"new connection per message, concurrency {args.concurrency}"
    )


if __name__ == "__main__":
    main()
