"""The fault suite: the real daemon through crashes and outages, with every message counted.

Each trial starts ``mailgate serve`` (which forks its pipeline and delivery workers) on
a fresh SQLite file or a fresh PostgreSQL database, puts load on it from concurrent
SMTP clients on 127.0.0.1, does one kind of harm (kill -9, SIGTERM, SIGSTOP, a
database or smarthost outage, a full disk), lets the backlog drain and then counts:
every message carries a unique marker in its Message-ID and subject; one that got
``250`` must be exactly one ticket (read from the database with an engine of the
suite's own) and be acknowledged at the smarthost sink (counted by the Message-ID
the acknowledgement answers). A ``4xx`` is not a loss: the client retries the same
bytes, as an MTA does.

    python -m tests.faults --trials 20 --database both [--scenario kill9 ...] [--long]

``make faults`` runs the long form; ``tests/test_faults.py`` runs a short form inside
``make test``. Modules: ``load`` (the clients), ``sink`` (the counting smarthost),
``node`` (one daemon and its workers), ``census`` (counting in the database),
``bench`` (what one trial sets up and tears down), ``kills`` and ``outages`` (the
trials), ``scenarios`` (their names and the plan of a run), ``report`` (the per-trial
line, the rules, the summary), ``disk`` (the small tmpfs).
"""
