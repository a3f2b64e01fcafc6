"""defender/schedule.py: first report soon after connecting, then one per interval, nothing
queued while the link is down, never two within the interval."""

import pytest
from hypothesis import given, strategies as st

from chariotd.defender.schedule import FIRST_DELAY_LIMIT, MIN_INTERVAL, ReportSchedule


def test_interval_below_aws_minimum_is_refused():
    with pytest.raises(ValueError, match="at least 300"):
        ReportSchedule(299)
    with pytest.raises(ValueError):
        ReportSchedule(300, first_delay=16)


def test_nothing_before_the_link_then_first_within_15_s_then_every_interval():
    schedule = ReportSchedule()
    assert schedule.timeout(0) is None and not schedule.is_due(1000)
    schedule.link_changed(True, 100)
    assert 100 <= schedule.due_at() <= 100 + FIRST_DELAY_LIMIT
    assert not schedule.is_due(100)
    first = schedule.due_at()
    assert schedule.is_due(first) and schedule.timeout(first) == 0
    schedule.sent(first)
    assert schedule.due_at() == first + 300
    assert schedule.timeout(first + 100) == 200
    schedule.sent(first + 300)
    assert schedule.due_at() == first + 600


def test_due_while_down_is_not_queued_and_next_comes_after_reconnect():
    schedule = ReportSchedule(600)
    schedule.link_changed(True, 0)
    schedule.sent(5)
    schedule.link_changed(False, 100)
    assert not schedule.is_due(605) and schedule.timeout(605) is None  # due, link down
    assert not schedule.is_due(5000)
    schedule.link_changed(True, 5000)
    assert 5000 < schedule.due_at() <= 5000 + FIRST_DELAY_LIMIT  # one fresh report
    schedule.sent(schedule.due_at())
    assert schedule.due_at() >= 5000 + 600


def test_reconnect_soon_after_a_report_waits_the_interval():
    schedule = ReportSchedule()
    schedule.link_changed(True, 0)
    schedule.sent(5)
    schedule.link_changed(False, 10)
    schedule.link_changed(True, 20)
    assert schedule.due_at() == 305


def test_first_report_waits_for_the_link_even_after_a_flap():
    schedule = ReportSchedule()
    schedule.link_changed(True, 0)
    schedule.link_changed(False, 1)
    schedule.link_changed(True, 50)
    assert 50 < schedule.due_at() <= 50 + FIRST_DELAY_LIMIT
    schedule.link_changed(True, 52)            # a repeated "up" moves nothing
    assert 50 < schedule.due_at() <= 50 + FIRST_DELAY_LIMIT


@given(st.lists(st.tuples(st.sampled_from(["up", "down", "tick"]),
                          st.floats(0, 2000, allow_nan=False)), max_size=60),
       st.integers(MIN_INTERVAL, 1000))
def test_never_two_reports_within_the_interval(events, interval):
    schedule = ReportSchedule(interval)
    now, sent = 0.0, []
    for kind, step in events:
        now += step
        if kind == "tick" and schedule.is_due(now):
            assert schedule.link_up
            schedule.sent(now)
            sent.append(now)
        elif kind != "tick":
            schedule.link_changed(kind == "up", now)
    assert all(b - a >= interval for a, b in zip(sent, sent[1:]))
