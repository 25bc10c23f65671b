"""SLA due times from a ticket's events: replies meet targets, pending pauses the
clock, solved stops it, reopening runs it on; breaches by target name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailgate.sla.calendar import ALWAYS
from mailgate.sla.due import Due, Event, Targets, due_times
from tests.test_sla_calendar import JAKARTA, wib

T0 = datetime(2026, 7, 27, 1, 0, tzinfo=UTC)  # a Monday, 08:00 in Jakarta
TARGETS = Targets(timedelta(hours=4), timedelta(hours=2), timedelta(hours=24))


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def customer(hours: float) -> Event:
    return Event(h(hours), "customer")


def agent(hours: float) -> Event:
    return Event(h(hours), "agent")


def status(hours: float, category: str) -> Event:
    return Event(h(hours), "status", category)


def test_a_new_ticket_is_due_from_its_creation():
    due = due_times(TARGETS, ALWAYS, T0, [customer(0)], h(1))
    assert due == Due(h(4), None, h(24), ())


def test_a_late_first_reply_is_a_breach_and_the_next_response_waits_for_the_customer():
    events = [customer(0), agent(5), status(5, "open")]
    assert due_times(TARGETS, ALWAYS, T0, events, h(6)) == Due(
        None, None, h(24), ("first_response",), {"first_response": h(5)}
    )
    events += [customer(7)]
    assert due_times(TARGETS, ALWAYS, T0, events, h(8)).next_response == h(9)
    assert due_times(TARGETS, ALWAYS, T0, events, h(10)).breached == (
        "first_response",
        "next_response",
    )


def test_an_answered_exchange_that_took_too_long_stays_breached():
    events = [customer(0), agent(1), customer(2), customer(3), agent(5)]
    due = due_times(TARGETS, ALWAYS, T0, events, h(6))
    assert due.next_response is None and due.breached == ("next_response",)


def test_pending_pauses_the_clock_and_is_projected_from_now():
    events = [customer(0), agent(1), status(1, "pending")]
    due = due_times(TARGETS, ALWAYS, T0, events, h(10))
    assert due.resolution == h(10 + 23)  # one hour ran before the pause
    events += [status(12, "open")]  # the customer answered two hours later
    due = due_times(TARGETS, ALWAYS, T0, events, h(13))
    assert due.resolution == h(12 + 23) and due.breached == ()


def test_solved_stops_the_clock_and_reopening_runs_it_on():
    events = [customer(0), agent(1), status(2, "solved")]
    met = {"first_response": h(1), "resolution": h(2)}
    assert due_times(TARGETS, ALWAYS, T0, events, h(100)) == Due(None, None, None, (), met)
    events += [customer(50), status(50, "open")]
    due = due_times(TARGETS, ALWAYS, T0, events, h(51))
    assert due.resolution == h(50 + 22) and due.next_response == h(52)
    assert due.met == {"first_response": h(1)}  # neither the follow-up nor the reopened
    assert due_times(TARGETS, ALWAYS, T0, events, h(80)).breached == ("next_response", "resolution")


def test_solving_too_late_is_a_resolution_breach_without_a_due_time():
    events = [customer(0), agent(1), status(30, "solved")]
    met = {"first_response": h(1), "resolution": h(30)}
    assert due_times(TARGETS, ALWAYS, T0, events, h(40)) == Due(
        None, None, None, ("resolution",), met
    )


def test_met_is_when_the_latest_exchange_was_answered_and_when_the_ticket_was_solved():
    events = [customer(0), agent(1), customer(2), agent(3), customer(4), agent(5)]
    events += [status(6, "pending"), status(7, "solved"), status(8, "closed")]
    met = due_times(TARGETS, ALWAYS, T0, events, h(9)).met
    assert met == {"first_response": h(1), "next_response": h(5), "resolution": h(7)}
    only_first = Targets(first_response=timedelta(hours=4))
    assert due_times(only_first, ALWAYS, T0, events, h(9)).met == {"first_response": h(1)}


def test_targets_count_in_business_hours():
    friday = wib("2026-07-24 16:00")
    due = due_times(TARGETS, JAKARTA, friday, [Event(friday, "customer")], friday)
    assert due.first_response == wib("2026-07-27 11:00")  # 1h Friday, 3h Monday
    assert due.resolution == wib("2026-07-29 13:00")  # 1h + 9h + 9h + 5h


def test_no_targets_nothing_due():
    assert due_times(Targets(), ALWAYS, T0, [customer(0)], h(1000)) == Due(None, None, None, ())
