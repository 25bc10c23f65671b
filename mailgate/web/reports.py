"""The report page ``/reports``: what is open, what waits, how fast we answer and solve,
and how customers rated it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from mailgate.web import charts
from mailgate.web.auth import require_agent, signed_in_agent
from mailgate.web.badinput import bad_request
from mailgate.web.formats import duration
from mailgate.web.keys import ENGINE, RUNTIME
from mailgate.web.names import namer
from mailgate.web.reports_data import Median, Period, Report, build_report
from mailgate.web.reports_satisfaction import Satisfaction, satisfaction_report


@require_agent
async def reports(request: web.Request) -> web.StreamResponse:
    agent = signed_in_agent(request)
    tickets = request.app[RUNTIME].settings.tickets
    try:
        period = Period.from_query(request.query, datetime.now(UTC), tickets.zone)
    except ValueError as error:
        raise bad_request(f"The report period cannot be used: {error}.") from None
    name = namer(request.app[RUNTIME].settings)
    async with AsyncSession(request.app[ENGINE]) as session:
        report = await build_report(session, agent, tickets, period)
        satisfaction = await satisfaction_report(session, agent, tickets, period)
    values = {
        "report": report,
        "period": period,
        "satisfaction": satisfaction,
        **_charts(report, tickets, name),
        **_satisfaction_charts(satisfaction, name),
    }
    return aiohttp_jinja2.render_template("reports.html", request, values)


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


def _time_chart(medians: list[Median], name: Callable[[str], str]) -> charts.Chart:
    return charts.horizontal(
        [(f"{name(m.name)} ({m.tickets})", m.seconds) for m in medians], show=duration
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/reports", reports)
