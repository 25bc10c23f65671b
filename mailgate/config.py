"""The TOML configuration: its schema, where it is found, and errors that name the key.

The schema is pydantic models with ``extra="forbid"``, so a misspelt key is an error,
not a silent default. ``*_file`` keys hold secrets outside the config file; they are
read once at load time into the matching plain key.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from mailgate.localtime import zone_named
from mailgate.sla.spans import parse_duration, parse_ranges

SEARCH_PATHS = (Path("mailgate.toml"), Path("/etc/mailgate/mailgate.toml"))
ENV_VAR = "MAILGATE_CONFIG"


class ConfigError(Exception):
    """A configuration that cannot be used; the message names the key and line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Database(_Section):
    url: str = "sqlite+aiosqlite:///var/mailgate.db"
    auto_migrate: bool = True
    write_timeout_seconds: float = Field(10.0, gt=0)


class Smtp(_Section):
    listen: list[str] = ["127.0.0.1:2525"]
    lmtp_listen: list[str] = []
    hostname: str = "localhost"
    max_message_bytes: int = Field(26_214_400, gt=0)
    tls_cert_file: str = ""
    tls_key_file: str = ""
    max_sessions: int = Field(200, gt=0)
    max_sessions_per_client: int = Field(20, gt=0)
    # Per /24 (IPv4) or /64 (IPv6); unset: 50, or max_sessions_per_client if larger.
    max_sessions_per_network: int = Field(None, gt=0, validate_default=True)
    uncapped_clients: list[str] = []  # an MTA in front: counts only toward max_sessions
    idle_timeout_seconds: float = Field(300.0, gt=0)
    busy_idle_timeout_seconds: float = Field(30.0, gt=0)  # over 3/4 of max_sessions taken
    shutdown_grace_seconds: float = Field(30.0, ge=0)
    max_recipients: int = Field(100, gt=0)
    # The mode and group of "unix:" listeners' sockets: connecting needs write access.
    socket_mode: str = Field("0666", pattern=r"^0?[0-7]{3}$")
    socket_group: str = ""  # "" = the daemon's own group

    @field_validator("listen", "lmtp_listen")
    @classmethod
    def _listen_addresses(cls, values: list[str]) -> list[str]:
        for value in values:
            parse_listen(value)
        return values

    @field_validator("max_sessions_per_network", mode="before")
    @classmethod
    def _network_default(cls, value: object, info: ValidationInfo) -> object:
        """An older config that raised the per-client cap past 50 still loads."""
        return max(50, info.data.get("max_sessions_per_client", 0)) if value is None else value

    @field_validator("max_sessions_per_network")
    @classmethod
    def _network_holds_a_client(cls, value: int, info: ValidationInfo) -> int:
        per_client = info.data.get("max_sessions_per_client", 0)
        if value < per_client:
            raise ValueError(f"must be at least max_sessions_per_client ({per_client})")
        return value

    @field_validator("uncapped_clients")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the value
        return values


class Outbound(_Section):
    smarthost: str = ""
    starttls: bool = False
    username: str = ""
    password: str = ""
    password_file: str = ""
    return_path_domain: str = ""
    retry_base_seconds: float = Field(30.0, gt=0)  # first retry; doubles each time
    retry_cap_seconds: float = Field(3600.0, gt=0)
    give_up_after_hours: float = Field(72.0, gt=0)
    suppress_after_bounce_hours: float = Field(72.0, gt=0)  # no automatic mail after a hard bounce


RATE = r"^\d+/\d+[smhd]$"  # "3/10m": at most 3 per 10 minutes
MAX_SIGNATURE = 2000  # characters of an agent's signature


class Web(_Section):
    listen: str = "127.0.0.1:8080"
    base_url: str = "http://127.0.0.1:8080"
    secret_key: str = ""
    secret_key_file: str = ""
    # The name customers see heading the portal and the web form ("" = "mailgate");
    # a route's own team_name wins for its tickets and its form.
    team_name: str = ""
    session_hours: float = Field(12.0, gt=0)  # a web sign-in lasts this long
    # A request head must be complete this long after connecting or the last response;
    # a request body this long after its head.
    header_timeout_seconds: float = Field(10.0, gt=0)
    body_timeout_seconds: float = Field(60.0, gt=0)
    # Sign-in attempts (web/login_limits.py): per address from one client network
    # (/24, /64), per client network, and per address from everywhere (passwords only).
    login_rate_limit: str = Field("10/15m", pattern=RATE)
    login_ip_rate_limit: str = Field("30/15m", pattern=RATE)
    login_account_rate_limit: str = Field("200/1h", pattern=RATE)
    form_rate_limit: str = Field("5/1h", pattern=RATE)  # web form, per email address
    form_ip_rate_limit: str = Field("20/1h", pattern=RATE)  # web form and portal, per IP
    # Live updates (web/live.py): how often each node looks for changes in the
    # database, how many live streams one agent may hold open on a node, and how long
    # an agent counts as viewing a ticket after their page's last heartbeat.
    live_poll_seconds: float = Field(0.5, gt=0, le=10)
    live_streams_per_agent: int = Field(8, ge=1, le=100)
    presence_timeout_seconds: float = Field(30.0, ge=5, le=600)

    @field_validator("listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value:
            parse_listen(value)
        return value


class Api(_Section):
    tokens: list[str] = []
    tokens_file: str = ""


StatusCategory = Literal["new", "open", "pending", "solved", "closed"]
Locale = Literal["en", "id"]


class Status(_Section):
    name: str = Field(min_length=1, max_length=32)
    category: StatusCategory
    # The name customers read in mail of a route's locale, e.g. { id = "Selesai" };
    # without one, they read ``name``.
    labels: dict[Locale, Annotated[str, Field(min_length=1, max_length=32)]] = {}


DEFAULT_STATUSES = [
    Status(name="New", category="new", labels={"id": "Baru"}),
    Status(name="Open", category="open", labels={"id": "Terbuka"}),
    Status(name="Pending", category="pending", labels={"id": "Menunggu"}),
    Status(name="Escalated", category="open", labels={"id": "Dieskalasi"}),
    Status(name="Solved", category="solved", labels={"id": "Selesai"}),
    Status(name="Unresolved", category="closed", labels={"id": "Tidak terselesaikan"}),
    Status(name="Closed", category="closed", labels={"id": "Ditutup"}),
]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(value: str) -> tuple[int, int]:
    """``"3/10m"`` -> ``(3, 600)``: at most 3 per 600 seconds."""
    count, _, period = value.partition("/")
    return int(count), int(period[:-1]) * _UNITS[period[-1]]


class Tickets(_Section):
    code_prefix: str = Field("TCK", pattern=r"^[A-Z][A-Z0-9]{0,9}$")
    ack_rate_limit: str = Field("3/10m", pattern=RATE)
    # Notifications to one agent, in all and about one ticket (a loop or a chatty
    # thread cannot flood an agent's mailbox).
    notify_rate_limit: str = Field("120/1h", pattern=RATE)
    notify_ticket_rate_limit: str = Field("10/10m", pattern=RATE)
    statuses: list[Status] = DEFAULT_STATUSES
    # The closed status a ticket merged into another gets; "" = the closed status
    # named Closed, else the first closed one.
    merged_status: str = ""
    # Where the team's day begins: ticket code dates, report days, times on pages and mail.
    timezone: str = "UTC"
    # How often each node's SLA timer looks for warnings and breaches due.
    sla_check_seconds: float = Field(60.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_named(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return zone_named(self.timezone)

    @field_validator("statuses")
    @classmethod
    def _usable_statuses(cls, statuses: list[Status]) -> list[Status]:
        """A ticket must be able to start (a new or open status), be solved (the
        customer is told) and end for good (a closed one: merges, and replies that
        open a follow-up). Waiting on the customer (pending) is optional."""
        names = [status.name.lower() for status in statuses]
        if len(set(names)) != len(names):
            raise ValueError("status names must be unique")
        categories = {status.category for status in statuses}
        if not categories & {"new", "open"}:
            raise ValueError("needs at least one status of category 'new' or 'open'")
        for needed in ("solved", "closed"):
            if needed not in categories:
                raise ValueError(f"needs at least one status of category {needed!r}")
        return statuses

    @property
    def ack_limit(self) -> tuple[int, int]:
        return parse_rate(self.ack_rate_limit)

    def category_of(self, status: str) -> StatusCategory | None:
        for candidate in self.statuses:
            if candidate.name.lower() == status.lower():
                return candidate.category
        return None

    def label_of(self, status: str, locale: Locale) -> str:
        """The name of ``status`` that customers of ``locale`` read."""
        for candidate in self.statuses:
            if candidate.name.lower() == status.lower():
                return candidate.labels.get(locale, candidate.name)
        return status

    def first_of(self, *categories: StatusCategory) -> str:
        """The first configured status of the first of ``categories`` that has one."""
        for category in categories:
            for status in self.statuses:
                if status.category == category:
                    return status.name
        raise LookupError(f"no status of category {' or '.join(categories)}")

    @property
    def start_status(self) -> str:
        """The status of a new ticket: the first new one, else the first open one."""
        return self.first_of("new", "open")

    @property
    def working_status(self) -> str:
        """Where an answered new ticket and a customer's reply to a pending or solved
        one go: the first open status, else the first new one."""
        return self.first_of("open", "new")

    @property
    def merged(self) -> str:
        """The closed status of a ticket merged into another (``merged_status``)."""
        closed = [s.name for s in self.statuses if s.category == "closed"]
        if self.merged_status:
            return next(n for n in closed if n.lower() == self.merged_status.lower())
        return next((n for n in closed if n.lower() == "closed"), closed[0])


Priority = Literal["low", "normal", "high", "urgent"]


class Route(_Section):
    address: str = Field(pattern=r"^(\*|[^@\s*+]+)@[^@\s]+$")
    name: str = ""  # display name on outgoing mail, e.g. "Example Support"
    queue: str = "support"
    priority: Priority = "normal"
    tags: list[str] = []
    locale: Locale = "en"
    assign: Literal["none", "round_robin", "least_open"] = "none"
    agents: list[str] = []
    calendar: str = ""  # a [[calendars]] name: business hours for SLA targets; "" = 24/7
    team_name: str = ""  # heads this route's portal pages and form; "" = [web] team_name


class Hours(_Section):
    """Opening hours per weekday, ``"08:00-17:00"`` or ``"08:00-12:00,13:00-17:00"``;
    a day left out is closed, ``"22:00-06:00"`` runs past midnight."""

    mon: str = ""
    tue: str = ""
    wed: str = ""
    thu: str = ""
    fri: str = ""
    sat: str = ""
    sun: str = ""

    @field_validator("*")
    @classmethod
    def _ranges(cls, value: str) -> str:
        if value:
            parse_ranges(value)
        return value


class Calendar(_Section):
    name: str = Field(min_length=1)
    timezone: str = "UTC"
    hours: Hours
    holidays: list[date] = []  # closed all day (ranges starting that day)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone_named(value)
        return value

    @field_validator("hours")
    @classmethod
    def _open_sometimes(cls, hours: Hours) -> Hours:
        if not any(hours.model_dump().values()):
            raise ValueError("a calendar needs opening hours on at least one day")
        return hours

    def week(self) -> tuple[str, ...]:
        """The opening hours Monday to Sunday, "" for a closed day."""
        return tuple(self.hours.model_dump().values())


class Sla(_Section):
    """Response and resolution targets for the tickets of some queues and priorities,
    counted in the route's business hours. The first policy that matches applies."""

    name: str = Field(min_length=1)
    queues: list[str] = []  # [] = every queue
    priorities: list[Priority] = []  # [] = every priority
    first_response: str = ""  # "" = no such target
    next_response: str = ""
    resolution: str = ""
    warn_before: str = ""
    escalate_to: str = ""  # a status name; "" = stays where it is

    @field_validator("first_response", "next_response", "resolution", "warn_before")
    @classmethod
    def _duration(cls, value: str) -> str:
        if value:
            parse_duration(value)
        return value

    def applies_to(self, queue: str, priority: str) -> bool:
        return (not self.queues or queue in self.queues) and (
            not self.priorities or priority in self.priorities
        )


class Agent(_Section):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = ""
    admin: bool = False
    timezone: str = ""  # this agent's pages; empty: [tickets] timezone
    # Added under this agent's replies to customers; their /profile page overrides it.
    signature: str = Field("", max_length=MAX_SIGNATURE)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            zone_named(value)
        return value


class Imap(_Section):
    name: str
    host: str
    port: int = 993
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: str = ""
    username: str
    password: str = ""
    password_file: str = ""
    folder: str = "INBOX"
    deliver_to: str
    after: str = Field("seen", pattern=r"^(seen|delete|move:.+)$")
    poll_seconds: float = Field(60.0, gt=0)


WebhookEvent = Literal[
    "ticket.created",
    "ticket.updated",
    "message.created",
    "ticket.solved",
    "sla.breached",
    "satisfaction.rated",
]
WEBHOOK_EVENTS: tuple[str, ...] = get_args(WebhookEvent)


class Webhook(_Section):
    """A receiver of ticket events: each one a signed JSON POST (``mailgate/webhooks``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    url: str = Field(pattern=r"^https?://[^\s/?#]+[^\s]*$")
    secret: str = ""
    secret_file: str = ""
    events: list[WebhookEvent] = Field(min_length=1)
    timeout_seconds: float = Field(10.0, gt=0, le=300)
    # Retries back off exponentially from retry_base_seconds up to retry_cap_seconds;
    # a delivery fails for good after max_attempts or give_up_after_hours.
    max_attempts: int = Field(12, ge=1, le=100)
    give_up_after_hours: float = Field(24.0, gt=0)
    retry_base_seconds: float = Field(30.0, gt=0)
    retry_cap_seconds: float = Field(3600.0, gt=0)


class Templates(_Section):
    directory: str = ""  # an admin's overrides, searched before the built-in templates


class Auth(_Section):
    trusted_authserv_ids: list[str] = []
    # Where Authentication-Results are believed: listener addresses as written in
    # [smtp] listen/lmtp_listen, "deliver" (the pipe transport), "imap:NAME".
    trusted_paths: list[str] = []


class Spam(_Section):
    # rspamd's normal worker (its HTTP checkv2 API), e.g. "http://127.0.0.1:11333";
    # "" asks no spam engine.
    rspamd_url: str = Field("", pattern=r"^(https?://[^\s/?#]+/?)?$")
    timeout_seconds: float = Field(5.0, gt=0, le=60)  # per message; then it goes on unscored


class Log(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Health(_Section):
    # Work waiting this long while its worker makes no progress (or fails pass after
    # pass) turns /healthz to 503 and stops the systemd watchdog.
    stall_seconds: float = Field(300.0, gt=0)


class Cluster(_Section):
    # A node (or worker process) whose heartbeat is older than this is taken for dead:
    # any other node takes over its claimed work.
    node_timeout_seconds: float = Field(30.0, ge=2)


class Settings(_Section):
    database: Database = Database()
    smtp: Smtp = Smtp()
    outbound: Outbound = Outbound()
    web: Web = Web()
    api: Api = Api()
    tickets: Tickets = Tickets()
    routes: list[Route] = []
    calendars: list[Calendar] = []
    sla: list[Sla] = []
    agents: list[Agent] = []
    imap: list[Imap] = []
    webhooks: list[Webhook] = []
    auth: Auth = Auth()
    spam: Spam = Spam()
    templates: Templates = Templates()
    log: Log = Log()
    health: Health = Health()
    cluster: Cluster = Cluster()


EMBEDDED_DEFAULT = """\
# The embedded default: everything on loopback, SQLite under ./var, mail captured.
[smtp]
hostname = "localhost"

[[routes]]
address = "support@example.test"
queue = "support"
agents = ["agent@example.test"]

[[agents]]
email = "agent@example.test"
name = "Demo Agent"
admin = true
"""


@dataclass(frozen=True)
class LoadedConfig:
    """The validated settings, where they came from (``None`` = embedded default) and
    the text they were read from (what the worker process is handed)."""

    settings: Settings
    path: Path | None
    text: str = ""

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "embedded default"


def find_config(explicit: str | None) -> Path | None:
    """The config file to use: ``--config``, ``$MAILGATE_CONFIG``, then the search paths."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return next((path for path in SEARCH_PATHS if path.is_file()), None)


def load_config(explicit: str | None = None) -> LoadedConfig:
    path = find_config(explicit)
    if path is None:
        return config_from_text(EMBEDDED_DEFAULT, None)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: config is not UTF-8: {exc}") from exc
    return config_from_text(text, path)


def config_from_text(text: str, path: Path | None) -> LoadedConfig:
    """The config in ``text``, as read from ``path`` (None: the embedded default)."""
    return LoadedConfig(parse_config(text, str(path or "embedded default")), path, text)


def parse_config(text: str, source: str) -> Settings:
    """Validate TOML text; errors name the file, the dotted key and its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        lines = KeyLines(text)
        problems = [_describe(error, lines, source) for error in exc.errors()]
        raise ConfigError("\n".join(problems)) from exc
    lines = KeyLines(text)
    wrong = [_where(loc, lines, source) + f": {problem}" for loc, problem in references(settings)]
    if wrong:
        raise ConfigError("\n".join(wrong))
    return _read_secret_files(settings, lines, source)


def references(settings: Settings) -> list[tuple[tuple, str]]:
    """Names one section gives that another must define: (key path, problem) each."""
    problems: list[tuple[tuple, str]] = []
    calendars = [calendar.name for calendar in settings.calendars]
    for index, name in enumerate(calendars):
        if name in calendars[:index]:
            problems.append((("calendars", index, "name"), f"{name!r} is defined twice"))
    for index, route in enumerate(settings.routes):
        if route.calendar and route.calendar not in calendars:
            problem = f"no [[calendars]] named {route.calendar!r}"
            problems.append((("routes", index, "calendar"), problem))
    return [
        *problems,
        *_sla_references(settings),
        *_trusted_path_references(settings),
        *_merged_status_reference(settings),
        *_webhook_problems(settings),
    ]


def _webhook_problems(settings: Settings) -> list[tuple[tuple, str]]:
    """Each webhook has a name of its own and exactly one of ``secret``/``secret_file``."""
    problems: list[tuple[tuple, str]] = []
    names = [hook.name for hook in settings.webhooks]
    for index, hook in enumerate(settings.webhooks):
        if hook.name in names[:index]:
            problems.append((("webhooks", index, "name"), f"{hook.name!r} is defined twice"))
        if bool(hook.secret) == bool(hook.secret_file):
            problem = "give exactly one of secret and secret_file"
            problems.append((("webhooks", index, "secret"), problem))
    return problems


def _sla_references(settings: Settings) -> list[tuple[tuple, str]]:
    problems: list[tuple[tuple, str]] = []
    queues = {route.queue for route in settings.routes}
    names = [policy.name for policy in settings.sla]
    for index, policy in enumerate(settings.sla):
        if policy.name in names[:index]:
            problems.append((("sla", index, "name"), f"{policy.name!r} is defined twice"))
        for queue in sorted(set(policy.queues) - queues):
            problems.append((("sla", index, "queues"), f"no route has the queue {queue!r}"))
        if policy.escalate_to and settings.tickets.category_of(policy.escalate_to) is None:
            problem = f"no status named {policy.escalate_to!r} in [tickets] statuses"
            problems.append((("sla", index, "escalate_to"), problem))
    return problems


def _merged_status_reference(settings: Settings) -> list[tuple[tuple, str]]:
    tickets = settings.tickets
    if not tickets.merged_status or tickets.category_of(tickets.merged_status) == "closed":
        return []
    closed = ", ".join(s.name for s in tickets.statuses if s.category == "closed")
    problem = f"{tickets.merged_status!r} is not a closed status; one of {closed}"
    return [(("tickets", "merged_status"), problem)]


def _where(loc: tuple, lines: KeyLines, source: str) -> str:
    line = lines.line_of(loc)
    return f"{source}:{line}: {dotted(loc)}" if line else f"{source}: {dotted(loc)}"


DELIVER_PATH = "deliver"  # ``mailgate deliver``, run by the MTA's pipe transport


def imap_path(name: str) -> str:
    """How ``[auth] trusted_paths`` names the ``[[imap]]`` mailbox ``name``."""
    return f"imap:{name}"


def _trusted_path_references(settings: Settings) -> list[tuple[tuple, str]]:
    """Each of ``[auth] trusted_paths`` must name a way mail comes in by."""
    smtp = settings.smtp
    known = {*smtp.listen, *smtp.lmtp_listen, DELIVER_PATH}
    known |= {imap_path(box.name) for box in settings.imap}
    unknown = [path for path in settings.auth.trusted_paths if path not in known]
    if not unknown:
        return []
    problem = (
        f"{', '.join(map(repr, unknown))}: not a listener address of [smtp] listen or "
        'lmtp_listen (as written there), "deliver" or "imap:NAME" of an [[imap]] mailbox'
    )
    return [(("auth", "trusted_paths"), problem)]


def _describe(error: dict, lines: KeyLines, source: str) -> str:
    loc = tuple(error["loc"])
    key = dotted(loc)
    line = lines.line_of(loc)
    where = f"{source}:{line}" if line else source
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    return f"{where}: {key}: {message}"


def dotted(loc: tuple) -> str:
    """``("routes", 1, "queue")`` -> ``routes[1].queue``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_SECRET_FILES = {
    ("outbound",): ("password_file", "password"),
    ("web",): ("secret_key_file", "secret_key"),
    ("api",): ("tokens_file", "tokens"),
}


def _read_secret_files(settings: Settings, lines: KeyLines, source: str) -> Settings:
    """Replace each ``*_file`` key by the content of the file it names."""
    updates: dict[str, object] = {}
    for (section,), (file_key, value_key) in _SECRET_FILES.items():
        model = getattr(settings, section)
        path = getattr(model, file_key)
        if path:
            secret = _read_secret(path, (section, file_key), lines, source)
            value = secret.split() if value_key == "tokens" else secret
            updates[section] = model.model_copy(update={value_key: value})
    read = functools.partial(_read_list_secrets, settings, lines, source)
    updates["imap"] = read("imap", "password_file", "password")
    updates["webhooks"] = read("webhooks", "secret_file", "secret")
    return settings.model_copy(update=updates)


def _read_list_secrets(
    settings: Settings, lines: KeyLines, source: str, section: str, file_key: str, value_key: str
) -> list:
    """The entries of the list ``section``, each ``file_key`` read into ``value_key``."""
    entries = []
    for index, entry in enumerate(getattr(settings, section)):
        path = getattr(entry, file_key)
        if path:
            secret = _read_secret(path, (section, index, file_key), lines, source)
            entry = entry.model_copy(update={value_key: secret})
        entries.append(entry)
    return entries


def _read_secret(path: str, loc: tuple, lines: KeyLines, source: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        line = lines.line_of(loc)
        where = f"{source}:{line}" if line else source
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{where}: {dotted(loc)}: cannot read {path}: {reason}") from exc


class KeyLines:
    """Maps a key path like ``("routes", 1, "queue")`` to its line in the TOML text.

    tomllib reports lines only for syntax errors, so validation errors are located by
    scanning table headers and ``key =`` lines. Values spanning lines are rare in
    mailgate configs and simply do not get a line of their own.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str) -> None:
        self._lines: dict[tuple, int] = {}
        counts: dict[str, int] = {}
        table: tuple = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2)
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = (*name.split("."), counts[name])
                else:
                    table = tuple(name.split("."))
                self._lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self._lines.setdefault((*table, key.group(1)), number)

    def line_of(self, loc: tuple) -> int | None:
        """The line of the key, or of the nearest enclosing table that has one."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self._lines:
                return self._lines[loc[:end]]
        return None


def parse_listen(value: str) -> tuple[str, int] | str:
    """``"127.0.0.1:2525"`` -> ``("127.0.0.1", 2525)``; ``"unix:/path"`` -> ``"/path"``."""
    if value.startswith("unix:"):
        path = value.removeprefix("unix:")
        if not path:
            raise ValueError("unix: needs a socket path")
        return path
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT or unix:/path")
    return host.strip("[]") or "127.0.0.1", int(port)


def state_directory() -> Path:
    """Where mailgate keeps generated state: systemd's StateDirectory, else ./var."""
    return Path(os.environ.get("STATE_DIRECTORY", "var").split(":")[0])


def server_secret(settings: Settings) -> bytes:
    """The key for signed links, cookies and reply addresses.

    Without ``web.secret_key``/``secret_key_file`` one is generated once into the
    state directory, so signed reply addresses stay valid across restarts.
    """
    if settings.web.secret_key:
        return settings.web.secret_key.encode()
    path = state_directory() / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()
