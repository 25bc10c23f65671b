"""SMTP benchmarks: mailgate against a bare aiosmtpd sink, measured in one run.

Intake: both servers take the same load from Postfix's ``smtp-source`` (new
connection per message, concurrency 10, 2 KB each); mailgate's rate is printed as a
ratio to the bare sink's. The journal is counted afterwards: a run that lost mail
fails. A second load with mailgate's worker processes paused (SIGSTOP) shows what the
intake alone does when the pipeline does not share the CPUs and SQLite's writer.

End to end (``--e2e``): new-ticket mails in, acknowledgements out through a smarthost
sink. (1) the rate from the first mail sent to the last acknowledgement received, as a
ratio to the bare sink; (2) mail-to-acknowledgement latency, p50 and p99, with mail
offered at a steady 100 messages/s.

Each part also prints the CPU time per message of every process taking part (from
/proc): steadier than rates on a shared machine, and it shows where a message's cost
goes. The bare sink and the daemon's event loop both run aiosmtpd.

    .venv/bin/python bench/smtp_ingest.py [--messages 5000] [--repeat 3] [--e2e]
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
from contextlib import contextmanager, nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import free_port, free_ports

PYTHON = sys.executable
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
WARM_UP = 200  # messages each server takes before it is measured
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    """A server subprocess, ready once ``port`` accepts; stopped with SIGTERM. Its
    stderr goes to ``server.log`` in ``cwd``, and its end is shown if the run fails."""
    with open(cwd / "server.log", "wb") if cwd else nullcontext(subprocess.DEVNULL) as log:
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_port(port)
            yield process
        except BaseException:
            if cwd:
                lines = (cwd / "server.log").read_text(errors="replace").splitlines()
                print("\n".join(["--- server log, last lines:", *lines[-20:]]), file=sys.stderr)
            raise
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


# The SMTP server both sinks run; ``Sink`` is the handler each defines.
SINK_SERVER = """
import asyncio, time
from email.parser import BytesHeaderParser
from aiosmtpd.smtp import SMTP

{sink}

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(Sink(), enable_SMTPUTF8=True, loop=loop), "127.0.0.1", {port})
    await server.serve_forever()

asyncio.run(main())
"""


def sink_command(port: int, sink: str) -> list[str]:
    code = SINK_SERVER.format(sink=textwrap.dedent(sink), port=port)
    return [PYTHON, "-c", code]


def ack_sink_command(port: int, log: Path) -> list[str]:
    """A smarthost that appends "<In-Reply-To> <arrival time>" per message to ``log``."""
    return sink_command(
        port,
        f"""
        class Sink:
            def __init__(self):
                self.out = open({str(log)!r}, "a", buffering=1)
            async def handle_DATA(self, server, session, envelope):
                headers = BytesHeaderParser().parsebytes(envelope.content)
                self.out.write(f"{{headers.get('In-Reply-To', '').strip()}} {{time.time()}}\\n")
                return "250 OK"
        """,
    )


def bare_sink_command(port: int) -> list[str]:
    return sink_command(
        port,
        """
        class Sink:
            async def handle_DATA(self, server, session, envelope):
                return "250 OK"
        """,
    )


def mailgate_config(directory: Path, smtp: int, web: int, smarthost: int | None) -> Path:
    outbound = f'smarthost = "127.0.0.1:{smarthost}"' if smarthost else 'smarthost = ""'
    path = directory / "mailgate.toml"
    path.write_text(
        textwrap.dedent(f"""
        [database]
        url = "sqlite+aiosqlite:///{directory}/bench.db"
        [smtp]
        listen = ["127.0.0.1:{smtp}"]
        max_sessions = 1000
        max_sessions_per_client = 1000
        max_sessions_per_network = 1000
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


def wait_until_processed(directory: Path, seconds: float = 600.0) -> None:
    """Until no journal entry and no outgoing mail waits, and then a moment more."""
    deadline = time.monotonic() + seconds
    waiting = (
        "SELECT (SELECT count(*) FROM journal_entries WHERE state IN ('pending', 'processing'))"
        " + (SELECT count(*) FROM outbox WHERE state IN ('queued', 'sending'))"
    )
    while time.monotonic() < deadline:
        with sqlite3.connect(directory / "bench.db") as db:
            if db.execute(waiting).fetchone()[0] == 0:
                time.sleep(0.5)
                return
        time.sleep(0.2)
    raise SystemExit(f"mail still waiting after {seconds:g}s")


def journal_count(directory: Path) -> int:
    with sqlite3.connect(directory / "bench.db") as db:
        return db.execute("SELECT count(*) FROM journal_entries").fetchone()[0]


def measure_bare(args) -> tuple[float, float]:
    """(the bare sink's rate, its CPU milliseconds per message)."""
    port = free_port()
    with running(bare_sink_command(port), port) as sink:
        load(port, WARM_UP, args.concurrency, args.size)
        with cpu_used({"sink": (sink.pid, None)}) as used:
            rate = load(port, args.messages, args.concurrency, args.size)
        return rate, per_message(used, args.messages)["sink"]


def measure_mailgate(args) -> tuple[float, float, dict[str, float]]:
    """(intake rate, intake rate with the worker processes paused, CPU milliseconds per
    message of each process, and of the daemon's event loop, under the first load)."""
    with tempfile.TemporaryDirectory(prefix="mailgate-bench-") as tmp:
        directory = Path(tmp)
        smtp, web = free_ports(2)
        config = mailgate_config(directory, smtp, web, None)
        command = [PYTHON, "-m", "mailgate", "--config", str(config), "serve"]
        with running(command, smtp, cwd=directory) as daemon:
            wait_healthy(web)
            load(smtp, WARM_UP, args.concurrency, args.size)
            workers = children(daemon.pid)
            measured = {"daemon": (daemon.pid, None), "event loop": (daemon.pid, daemon.pid)}
            measured |= {role(pid): (pid, None) for pid in workers}
            with cpu_used(measured) as used:
                rate = load(smtp, args.messages, args.concurrency, args.size)
            # Paused mid-transaction, a worker would hold SQLite's lock: pause idle ones.
            wait_until_processed(directory)
            with paused(workers):
                alone = load(smtp, args.messages, args.concurrency, args.size)
            stored = journal_count(directory)
        if stored != 2 * args.messages + WARM_UP:
            accepted = 2 * args.messages + WARM_UP
            raise SystemExit(f"LOST MAIL: {accepted} accepted, {stored} in journal")
        return rate, alone, per_message(used, args.messages)


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def role(pid: int) -> str:
    """A worker process's role, from its ``mailgate work --role ROLE`` command line."""
    argv = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    return argv[argv.index("--role") + 1]


def cpu_seconds(pid: int, thread: int | None) -> float:
    """User and system CPU time so far of process ``pid``, or of one of its threads."""
    stat = Path(f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat")
    fields = stat.read_text().rpartition(")")[2].split()  # the name may hold blanks
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def cpu_used(measured: dict[str, tuple[int, int | None]]):
    """CPU seconds each named (pid, thread) uses inside the block, filled in at its end.

    Less noisy than rates on a shared machine, and it shows where a message's cost
    goes: a bare sink and the daemon's event loop both run aiosmtpd, the rest is ours.
    """
    before = {name: cpu_seconds(*where) for name, where in measured.items()}
    used: dict[str, float] = {}
    yield used
    used |= {name: cpu_seconds(*where) - before[name] for name, where in measured.items()}


def per_message(used: dict[str, float], messages: int) -> dict[str, float]:
    return {name: seconds * 1000 / messages for name, seconds in used.items()}


@contextmanager
def paused(pids: list[int]):
    """Processes stopped (SIGSTOP) for the duration, then continued."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def acknowledged(log: Path) -> dict[str, float]:
    """In-Reply-To -> arrival time of each acknowledgement the sink got so far."""
    if not log.exists():
        return {}
    pairs = (line.rsplit(" ", 1) for line in log.read_text().splitlines() if line)
    return {parent: float(at) for parent, at in pairs}


def wait_for_acks(log: Path, count: int, seconds: float) -> dict[str, float]:
    deadline = time.monotonic() + seconds
    while len(acks := acknowledged(log)) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(acks)} of {count} acknowledgements in {seconds:g}s")
        time.sleep(0.2)
    return acks


def new_ticket_mail(number: int, size: int) -> tuple[str, bytes]:
    message_id = f"<bench-{number}-{time.time_ns()}@client.test>"
    head = (
        f"From: Customer {number} <c{number}@client.test>\r\n"
        "To: support@example.test\r\n"
        f"Subject: Question {number}\r\n"
        f"Message-ID: {message_id}\r\n\r\n"
    )
    body = ("y" * 76 + "\r\n") * max(1, (size - len(head)) // 78)
    return message_id, (head + body).encode()


async def offer_steadily(port: int, rate: float, seconds: float, size: int) -> dict[str, float]:
    """Send ``rate`` new-ticket mails per second for ``seconds``, each on its own
    connection; returns Message-ID -> the time its 250 came back."""
    import asyncio

    import aiosmtplib

    accepted: dict[str, float] = {}

    async def send(number: int) -> None:
        message_id, raw = new_ticket_mail(number, size)
        await aiosmtplib.send(
            raw,
            sender=f"c{number}@client.test",
            recipients=["support@example.test"],
            hostname="127.0.0.1",
            port=port,
            timeout=60,
        )
        accepted[message_id] = time.time()

    loop = asyncio.get_running_loop()
    started, tasks = loop.time(), []
    for number in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + number / rate - loop.time()))
        tasks.append(asyncio.create_task(send(number)))
    await asyncio.gather(*tasks)
    return accepted


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_end_to_end(args) -> tuple[float, list[float], dict[str, float]]:
    """(rate in acks/s under smtp-source load, latencies in s at a steady 100/s, CPU
    milliseconds per message of each process during the former)."""
    import asyncio

    with tempfile.TemporaryDirectory(prefix="mailgate-e2e-") as tmp:
        directory = Path(tmp)
        sink, smtp, web = free_ports(3)
        config = mailgate_config(directory, smtp, web, sink)
        command = [PYTHON, "-m", "mailgate", "--config", str(config), "serve"]
        burst, steady = directory / "burst.log", directory / "steady.log"
        with (
            running(ack_sink_command(sink, burst), sink) as ack_sink,
            running(command, smtp, cwd=directory) as daemon,
        ):
            wait_healthy(web)
            # Warmed up as the sinks are: the worker processes' first mails pay for
            # their caches (templates, statements), as in the steady phase below.
            load(smtp, WARM_UP, args.concurrency, args.size)
            wait_for_acks(burst, WARM_UP, seconds=600)
            measured = {"ack sink": (ack_sink.pid, None), "daemon": (daemon.pid, None)}
            measured |= {role(pid): (pid, None) for pid in children(daemon.pid)}
            with cpu_used(measured) as used:
                started = time.time()
                load(smtp, args.messages, args.concurrency, args.size)
                acks = wait_for_acks(burst, WARM_UP + args.messages, seconds=1800)
            rate = args.messages / (max(acks.values()) - started)
        sink = free_port()
        config = mailgate_config(directory, smtp, web, sink)  # same database, new sink
        with running(ack_sink_command(sink, steady), sink), running(command, smtp, cwd=directory):
            wait_healthy(web)
            # A freshly started daemon's first mails pay for its warm-up (imports in
            # the worker processes, template and statement caches): not measured.
            warm = asyncio.run(offer_steadily(smtp, 100.0, 1.0, args.size))
            wait_for_acks(steady, len(warm), seconds=600)
            offered = asyncio.run(offer_steadily(smtp, 100.0, args.steady_seconds, args.size))
            acks = wait_for_acks(steady, len(warm) + len(offered), seconds=600)
        latencies = [acks[mid] - at for mid, at in offered.items()]
        return rate, latencies, per_message(used, args.messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median counts")
    parser.add_argument("--e2e", action="store_true", help="also mail in to acks out")
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    args = parser.parse_args()
    if not os.access(SMTP_SOURCE, os.X_OK):
        raise SystemExit("needs Postfix's smtp-source (apt-get install postfix)")
    bare, ours, alone, cpu = [], [], [], []
    for round_number in range(1, args.repeat + 1):
        rate, sink_cpu = measure_bare(args)
        bare.append(rate)
        rate, rate_alone, used = measure_mailgate(args)
        ours.append(rate)
        alone.append(rate_alone)
        cpu.append({"bare sink": sink_cpu, **used})
        print(
            f"round {round_number}: bare aiosmtpd {bare[-1]:8.1f}/s   "
            f"mailgate {ours[-1]:8.1f}/s   ratio {ours[-1] / bare[-1]:.2f}   "
            f"(worker paused: {alone[-1]:8.1f}/s, {alone[-1] / bare[-1]:.2f})"
        )
    b, m, a = statistics.median(bare), statistics.median(ours), statistics.median(alone)
    print(
        f"median: bare aiosmtpd {b:.1f} messages/s, mailgate intake {m:.1f} messages/s, "
        f"ratio {m / b:.2f} (target >= 0.9); {args.messages} x {args.size} B, "
        f"new connection per message, concurrency {args.concurrency}"
    )
    print(
        f"diagnostic, not the target: with the worker processes (pipeline, delivery) "
        f"paused, the intake alone takes {a:.1f} messages/s, ratio {a / b:.2f}"
    )
    medians = {name: statistics.median(each[name] for each in cpu) for name in cpu[0]}
    print(
        f"diagnostic: CPU ms per message (medians; the bare sink alone, mailgate's "
        f"processes under its first load; {os.cpu_count()} cores): "
        + ", ".join(f"{name} {ms:.2f}" for name, ms in medians.items())
    )
    if args.e2e:
        rate, latencies, used = measure_end_to_end(args)
        print(
            f"end to end: {rate:.1f} acknowledgements/s, ratio {rate / b:.2f} to the bare sink "
            f"(target >= 0.5); at 100 messages/s offered for {args.steady_seconds:g}s: "
            f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms (target p99 <= 1000 ms)"
        )
        print(
            "diagnostic: CPU ms per message, end to end: "
            + ", ".join(f"{name} {ms:.2f}" for name, ms in used.items())
            + f", in all {sum(used.values()):.2f}"
        )


if __name__ == "__main__":
    main()
