"""The report page ``/reports``: what is open, what waits, how fast we answer and solve,
and how customers rated it."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.config import Tickets
from mailgate.localtime import utc
from mailgate.web import charts
from mailgate.web.auth import require_agent, signed_in_agent
from mailgate.web.badinput import bad_request
from mailgate.web.export import export_name, stream_csv
from mailgate.web.formats import duration
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.names import namer
from mailgate.web.reports_data import Median, Period, Report, build_report
from mailgate.web.reports_satisfaction import Satisfaction, satisfaction_report
from mailgate.web.reports_sla import TargetShares, sla_report


async def _reports(
    request: web.Request,
) -> tuple[Period, Report, Satisfaction, list[TargetShares]]:
    """The period the query names and the reports over it, for the signed-in agent."""
    agent = signed_in_agent(request)
    runtime = request.app[RUNTIME]
    settings, now = runtime.settings, runtime.clock.now()
    tickets = settings.tickets
    try:
        period = Period.from_query(request.query, now, tickets.zone)
    except ValueError as error:
        raise bad_request(f"The report period cannot be used: {error}.") from None
    async with AsyncSession(request.app[ENGINE]) as session:
        report = await build_report(session, agent, tickets, period)
        satisfaction = await satisfaction_report(session, agent, tickets, period)
        sla = await sla_report(session, agent, settings, period, now)
    return period, report, satisfaction, sla


@require_agent
async def reports(request: web.Request) -> web.StreamResponse:
    settings = request.app[RUNTIME].settings
    tickets, name = settings.tickets, namer(settings)
    period, report, satisfaction, sla = await _reports(request)
    values = {
        "report": report,
        "period": period,
        "export_query": urlencode({"from": period.start.isoformat(), "to": period.end.isoformat()}),
        "satisfaction": satisfaction,
        **_charts(report, tickets, name),
        **_satisfaction_charts(satisfaction, name),
        "sla": sla,
        "sla_charts": _sla_charts(sla, name),
        "sla_tables": {by: _sla_table(sla, by, name) for by in ("queue", "agent")},
    }
    return aiohttp_jinja2.render_template("reports.html", request, values)


@require_agent
async def report_csv(request: web.Request) -> web.StreamResponse:
    """One report's table as CSV (``/reports/<name>.csv``, the page's period)."""
    name = request.match_info["name"]
    if name not in TABLES:
        raise web.HTTPNotFound(text="There is no such report.")
    _, report, satisfaction, sla = await _reports(request)
    tickets = request.app[RUNTIME].settings.tickets
    header, rows = report_table(name, report, satisfaction, sla, tickets)

    async def batches():
        yield rows

    return await stream_csv(request, export_name(name), header, batches())


TABLES = (
    "open",
    "waiting",
    "solved-per-day",
    "first-response-by-queue",
    "first-response-by-agent",
    "resolution-by-queue",
    "resolution-by-agent",
    "good-ratings-by-queue",
    "good-ratings-by-agent",
    "satisfaction-comments",
    "sla-by-queue",
    "sla-by-agent",
)


def report_table(
    name: str,
    report: Report,
    satisfaction: Satisfaction,
    sla: list[TargetShares],
    tickets: Tickets,
) -> tuple[list[str], list[list]]:
    """The header and rows of the report table ``name`` (one of TABLES)."""
    metric, _, by = name.partition("-by-")
    if name == "open":
        order = {s.name: n for n, s in enumerate(tickets.statuses)}
        counts = sorted(report.open_counts.items(), key=lambda i: (order.get(i[0][0], 0), i[0]))
        return ["status", "queue", "tickets"], [[s, q, n] for (s, q), n in counts]
    if name == "waiting":
        return ["queue", "tickets"], [[q, n] for q, n in sorted(report.waiting.items())]
    if name == "solved-per-day":
        return ["day", "solved"], [[day.isoformat(), n] for day, n in report.solved_per_day]
    if metric in ("first-response", "resolution"):
        found = report.first_response if metric == "first-response" else report.resolution
        rows = [[m.name, round(m.seconds), m.tickets] for m in found[by]]
        return [by, "median_seconds", "tickets"], rows
    if metric == "sla":
        rows = [
            [share.name, target.name, share.good, share.total, f"{share.percent:.1f}"]
            for target in sla
            for share in getattr(target, f"by_{by}")
        ]
        return [by, "target", "within", "tickets", "within_percent"], rows
    if metric == "good-ratings":
        shares = satisfaction.by_queue if by == "queue" else satisfaction.by_agent
        rows = [[s.name, s.good, s.total, f"{s.percent:.1f}"] for s in shares]
        return [by, "good", "ratings", "good_percent"], rows
    comments = satisfaction.comments
    rows = [[c.code, c.score, c.agent, c.text, utc(c.at).isoformat()] for c in comments]
    return ["ticket", "rating", "solved_by", "comment", "at"], rows


def _charts(report: Report, tickets, name: Callable[[str], str]) -> dict:
    """The charts of the report; ``name`` shows an agent's address as their name."""
    by_status: dict[str, int] = {}
    by_queue: dict[str, int] = {}
    for (status, queue), count in report.open_counts.items():
        by_status[status] = by_status.get(status, 0) + count
        by_queue[queue] = by_queue.get(queue, 0) + count
    statuses = [s.name for s in tickets.statuses if s.name in by_status]
    return {
        "queues": sorted(by_queue),
        "statuses": statuses,
        "open_by_status": charts.horizontal([(s, by_status[s]) for s in statuses]),
        "open_by_queue": charts.horizontal(sorted(by_queue.items())),
        "waiting": charts.horizontal(sorted(report.waiting.items())),
        "solved": charts.columns([(day.isoformat(), n) for day, n in report.solved_per_day]),
        "times": {
            (metric, by): _time_chart(medians, name)
            for metric, found in (
                ("first", report.first_response),
                ("resolution", report.resolution),
            )
            for by, medians in found.items()
        },
    }


def _satisfaction_charts(satisfaction: Satisfaction, name: Callable[[str], str]) -> dict:
    """The share of good ratings, by queue and by agent."""
    good_by = {
        by: charts.horizontal(
            [(f"{name(s.name)} ({s.total})", s.percent) for s in shares],
            show=lambda v: f"{v:.0f}%",
        )
        for by, shares in (("queue", satisfaction.by_queue), ("agent", satisfaction.by_agent))
    }
    return {"good_by": good_by}


def _sla_charts(sla: list[TargetShares], name: Callable[[str], str]) -> dict:
    """(target, "queue" | "agent") -> the share within the target, as bars."""
    return {
        (target.name, by): charts.horizontal(
            [(name(s.name) if by == "agent" else s.name, s.percent) for s in shares],
            shown=[f"{_percent(s.percent)} ({s.good}/{s.total})" for s in shares],
            value_width=110,
        )
        for target in sla
        for by, shares in (("queue", target.by_queue), ("agent", target.by_agent))
    }


def _sla_table(
    sla: list[TargetShares], by: str, name: Callable[[str], str]
) -> list[tuple[str, list[str]]]:
    """A row per queue (or agent, by name): "3 of 4 (75%)" within each target, "—" for
    none."""
    cells: dict[str, dict[str, str]] = {}
    for target in sla:
        for share in getattr(target, f"by_{by}"):
            text = f"{share.good} of {share.total} ({_percent(share.percent)})"
            row = name(share.name) if by == "agent" else share.name
            cells.setdefault(row, {})[target.name] = text
    names = [target.name for target in sla]
    return [(row, [found.get(n, "—") for n in names]) for row, found in sorted(cells.items())]


def _percent(value: float) -> str:
    return f"{value:.0f}%"


def _time_chart(medians: list[Median], name: Callable[[str], str]) -> charts.Chart:
    return charts.horizontal(
        [(f"{name(m.name)} ({m.tickets})", m.seconds) for m in medians], show=duration
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reports", reports)
    app.router.add_get("/reports/{name}.csv", report_csv)
