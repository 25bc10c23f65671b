"""The report page ``/reports``: what is open, what waits, how fast we answer and solve,
and how customers rated it."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.web import charts
from mailgate.web.auth import require_agent, signed_in_agent
from mailgate.web.badinput import bad_request
from mailgate.web.formats import duration
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.reports_data import Median, Period, Report, build_report
from mailgate.web.reports_satisfaction import Satisfaction, satisfaction_report
from mailgate.web.reports_sla import TargetShares, sla_report


@require_agent
async def reports(request: web.Request) -> web.StreamResponse:
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
    values = {
        "report": report,
        "period": period,
        "satisfaction": satisfaction,
        **_charts(report, tickets),
        **_satisfaction_charts(satisfaction),
        "sla": sla,
        "sla_charts": _sla_charts(sla),
        "sla_tables": {by: _sla_table(sla, by) for by in ("queue", "agent")},
    }
    return aiohttp_jinja2.render_template("reports.html", request, values)


def _charts(report: Report, tickets) -> dict:
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
            (metric, by): _time_chart(medians)
            for metric, found in (
                ("first", report.first_response),
                ("resolution", report.resolution),
            )
            for by, medians in found.items()
        },
    }


def _satisfaction_charts(satisfaction: Satisfaction) -> dict:
    """The share of good ratings, by queue and by agent."""
    good_by = {
        by: charts.horizontal(
            [(f"{s.name} ({s.total})", s.percent) for s in shares], show=lambda v: f"{v:.0f}%"
        )
        for by, shares in (("queue", satisfaction.by_queue), ("agent", satisfaction.by_agent))
    }
    return {"good_by": good_by}


def _sla_charts(sla: list[TargetShares]) -> dict:
    """(target, "queue" | "agent") -> the share within the target, as bars."""
    return {
        (target.name, by): charts.horizontal(
            [(s.name, s.percent) for s in shares],
            shown=[f"{_percent(s.percent)} ({s.good}/{s.total})" for s in shares],
            value_width=110,
        )
        for target in sla
        for by, shares in (("queue", target.by_queue), ("agent", target.by_agent))
    }


def _sla_table(sla: list[TargetShares], by: str) -> list[tuple[str, list[str]]]:
    """A row per queue (or agent): "3 of 4 (75%)" within each target, "—" for none."""
    cells: dict[str, dict[str, str]] = {}
    for target in sla:
        for share in getattr(target, f"by_{by}"):
            text = f"{share.good} of {share.total} ({_percent(share.percent)})"
            cells.setdefault(share.name, {})[target.name] = text
    names = [target.name for target in sla]
    return [(row, [found.get(n, "—") for n in names]) for row, found in sorted(cells.items())]


def _percent(value: float) -> str:
    return f"{value:.0f}%"


def _time_chart(medians: list[Median]) -> charts.Chart:
    return charts.horizontal(
        [(f"{m.name} ({m.tickets})", m.seconds) for m in medians], show=duration
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reports", reports)
