"""``mailgate agent add|passwd``: web passwords for the agents the config names.

Who is an agent (and an admin) is decided by the config's ``[[agents]]`` alone; the
database only holds passwords. So ``agent add`` for an address the config does not
name yet stores its password and prints the ``[[agents]]`` block to add: once the
config has it (and the daemon reloaded it), the agent can sign in.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys

from mailgate.accounts import PasswordError, Passwords, set_password
from mailgate.config import EMBEDDED_DEFAULT, LoadedConfig, Settings
from mailgate.db.session import engine_for, sessions


class AgentCommandError(Exception):
    """Something the admin has to fix; the message says what."""


def add_parsers(commands) -> None:
    agent = commands.add_parser("agent", help="agents' web sign-in")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True, metavar="COMMAND")
    add = agent_commands.add_parser("add", help="set up an agent's web sign-in")
    add.add_argument("email")
    add.add_argument("--name", default="", help="display name (for the printed [[agents]] block)")
    add.add_argument("--admin", action="store_true", help="an admin (sees every queue)")
    add.add_argument(
        "--no-password", action="store_true", help="no password: sign in by mailed link only"
    )
    passwd = agent_commands.add_parser("passwd", help="set an agent's web password")
    passwd.add_argument("email")
    for sub in (add, passwd):
        sub.add_argument(
            "--password-file",
            metavar="PATH",
            help="read the password from the first line of PATH ('-' for standard input)",
        )


def run(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    try:
        return _add(args, loaded) if args.agent_command == "add" else _passwd(args, loaded)
    except (AgentCommandError, PasswordError) as exc:
        print(f"mailgate: {exc}", file=sys.stderr)
        return 1


def _passwd(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    email = args.email.lower()
    if _configured(loaded.settings, email) is None:
        raise AgentCommandError(
            f"{email} is not among the [[agents]] of {loaded.source}; "
            f"'mailgate agent add {email}' shows what to add"
        )
    asyncio.run(_store(loaded.settings, email, read_password(args.password_file)))
    print(f"password of {email} set")
    return 0


def _add(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    email = args.email.lower()
    if "@" not in email.strip("@"):
        raise AgentCommandError(f"{args.email!r} is not an email address")
    password = None if args.no_password else read_password(args.password_file)
    asyncio.run(_store(loaded.settings, email, password))
    configured = _configured(loaded.settings, email)
    how = "a password" if password is not None else "sign-in by mailed link only"
    if configured is None:
        print(f"{email} is set up with {how}. It becomes an agent once the config names it;")
        advice, start = _how_to_add(loaded)
        print(f"{advice}\n")
        print(start + agent_block(email, args.name, args.admin))
        print("\nand list it in the agents of the routes whose queues it works on.")
        return 0
    print(f"{email} is an agent of {loaded.source}; {how} set")
    if (args.name and args.name != configured.name) or (args.admin and not configured.admin):
        print("note: its name and admin flag come from the config; change them there")
    return 0


def _how_to_add(loaded: LoadedConfig) -> tuple[str, str]:
    """Where the ``[[agents]]`` block goes, how the daemon comes to read it, and the
    config text to put before it."""
    if loaded.path is None:
        advice = (
            "the embedded default cannot be changed: save this as ./mailgate.toml (the "
            "default with the agent added), stop the daemon (Ctrl-C) and start it again "
            "(make run):"
        )
        return advice, EMBEDDED_DEFAULT + "\n"
    advice = (
        f"add this to {loaded.path} and reload the daemon (systemctl reload mailgate "
        "under systemd, else send SIGHUP to the `mailgate serve` process):"
    )
    return advice, ""


def agent_block(email: str, name: str, admin: bool) -> str:
    """The ``[[agents]]`` TOML for an agent (a JSON string is a TOML basic string)."""
    return (
        f"[[agents]]\nemail = {json.dumps(email)}\nname = {json.dumps(name, ensure_ascii=False)}\n"
        f"admin = {'true' if admin else 'false'}"
    )


def _configured(settings: Settings, email: str):
    return next((a for a in settings.agents if a.email.lower() == email), None)


def read_password(path: str | None) -> str:
    """From a file, from piped standard input, or asked twice on the terminal."""
    if path is not None or not sys.stdin.isatty():
        if path in (None, "-"):
            text = sys.stdin.readline()
        else:
            try:
                with open(path, encoding="utf-8") as handle:
                    text = handle.readline()
            except OSError as exc:
                raise AgentCommandError(f"cannot read {path}: {exc.strerror}") from exc
        return text.rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        raise AgentCommandError("the two passwords differ; nothing was changed")
    return first


async def _store(settings: Settings, email: str, password: str | None) -> None:
    from mailgate.db.migrate import needs_upgrade, upgrade

    logging.getLogger("alembic").setLevel(logging.WARNING)
    passwords = Passwords()
    engine = engine_for(settings.database)
    try:
        if settings.database.auto_migrate and await needs_upgrade(engine):
            await upgrade(engine)
        async with sessions(engine).begin() as session:
            await set_password(session, passwords, email, password)
    finally:
        await engine.dispose()
