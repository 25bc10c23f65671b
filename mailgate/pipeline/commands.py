"""Commands at the top of an agent's mail: ``#status solved``, ``#assign me``, ``#note``.

Pure parsing: the lines before the first line of text that start with ``#word``
are commands; blank lines between them are fine. The parser knows the command
names and which take a value; whether a value exists (a status, an agent) is
checked by the ticket actions. The commands are removed from the text. A
``#canned NAME`` line is text, not a command (a saved reply goes in its place, see
``agent_mail.py``), so it ends the commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# name -> takes a value; the first three may appear once per mail.
COMMANDS = {"status": True, "assign": True, "priority": True, "tag": True, "untag": True,
            "note": False}  # fmt: skip
ONCE = ("status", "assign", "priority")
TEXT_LINE = "canned"  # looks like a command, is part of the text
MAX_COMMANDS = 50

_COMMAND = re.compile(r"#([A-Za-z][\w-]*)(?:[ \t]+(.*))?")
_SIGNATURE = re.compile(r"^-- ?$", re.MULTILINE)


@dataclass(frozen=True)
class Command:
    name: str  # lower case, e.g. "status"
    value: str
    line: str  # as written, for messages to the agent


@dataclass(frozen=True)
class Commands:
    commands: tuple[Command, ...]
    text: str  # the mail's text without the command lines
    problems: tuple[str, ...]  # what was not understood, one line each

    @property
    def note(self) -> bool:
        return any(command.name == "note" for command in self.commands)

    def values(self, name: str) -> list[str]:
        return [command.value for command in self.commands if command.name == name]


def parse_commands(text: str) -> Commands:
    lines = text.split("\n")
    commands: list[Command] = []
    problems: list[str] = []
    index = 0
    while index < len(lines) and len(commands) < MAX_COMMANDS:
        stripped = lines[index].strip()
        match = _COMMAND.fullmatch(stripped)
        if stripped and (not match or match.group(1).lower() == TEXT_LINE):
            break
        if match:
            command = Command(match.group(1).lower(), (match.group(2) or "").strip(), stripped)
            problems += _problems(command, commands)
            commands.append(command)
        index += 1
    rest = "\n".join(lines[index:]).strip("\n")
    return Commands(tuple(commands), rest, tuple(problems))


def _problems(command: Command, before: list[Command]) -> list[str]:
    takes_value = COMMANDS.get(command.name)
    if takes_value is None:
        known = ", ".join(f"#{name}" for name in COMMANDS)
        return [f"{command.line}: unknown command (known: {known})"]
    if takes_value and not command.value:
        return [f"{command.line}: #{command.name} needs a value"]
    if not takes_value and command.value:
        return [f"{command.line}: #{command.name} takes no value; write the text below it"]
    if command.name in ONCE and any(c.name == command.name for c in before):
        return [f"{command.line}: #{command.name} is given more than once"]
    return []


def has_content(text: str) -> bool:
    """Whether ``text`` says anything besides a signature ("-- " and below)."""
    return bool(_SIGNATURE.split(text, maxsplit=1)[0].strip())
