"""The one connection state machine (kernel/mqtt/connection.py, states.py) the link and
fleet provisioning drive: checked transitions, the failure count, the backoff with its
1 s minimum between CONNECTs, and the deadline of a state. Fake loop and clock."""

from __future__ import annotations

import ast
import inspect
import logging

import pytest

from chariotd.kernel import backoff
from chariotd.kernel.backoff import Backoff
from chariotd.kernel.mqtt import states
from chariotd.kernel.mqtt.connection import MAX_FAILURES, Connection, IllegalTransition
from fakes import FakeLoop

MACHINES = {"link": (states.LINK, states.WAITING),
            "provisioning": (states.PROVISIONING, states.IDLE)}
ALL_STATES = sorted({s for table, _ in MACHINES.values() for s in table}
                    | {s for table, _ in MACHINES.values() for t in table.values() for s in t})


def connection(name="link", backoff_=Backoff(), loop=None):
    table, initial = MACHINES[name]
    loop = loop or FakeLoop()
    return Connection(name, table, initial, loop, loop.clock, backoff_)


def test_states_imports_nothing():
    tree = ast.parse(inspect.getsource(states))
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]


def test_every_state_named_in_a_table_has_its_row():
    for table, initial in MACHINES.values():
        assert initial in table
        for targets in table.values():
            assert set(targets) <= set(table)


@pytest.mark.parametrize("name, source, target", [
    (name, source, target) for name, (table, _) in MACHINES.items()
    for source, targets in table.items() for target in targets])
def test_every_legal_transition_is_taken(name, source, target):
    made = connection(name)
    made.state = source
    made.enter(target)
    assert made.state == target


@pytest.mark.parametrize("name, source, target", [
    (name, source, target) for name, (table, _) in MACHINES.items()
    for source in table for target in ALL_STATES if target not in table[source]])
def test_every_illegal_transition_is_refused(name, source, target):
    made = connection(name)
    made.state = source
    with pytest.raises(IllegalTransition, match=f"{source} -> {target}"):
        made.enter(target)
    assert made.state == source


def test_outside_the_tests_an_illegal_transition_is_logged_and_made(monkeypatch, caplog):
    monkeypatch.setattr(Connection, "strict", False)
    made = connection()
    made.enter(states.UP)  # WAITING -> UP skips the CONNACK
    assert made.state == states.UP
    assert "link: illegal transition waiting -> up" in caplog.text
    assert caplog.records[-1].levelno == logging.ERROR


def test_failures_count_charged_and_uncharged_and_give_up_past_the_limit():
    made = connection()
    for _ in range(20):
        assert made.fail(charge=False) is False  # a CA problem never gives up
    for count in range(1, MAX_FAILURES + 1):
        assert made.fail() is False
        assert made.failures.charged == count
    assert made.fail() is True
    assert made.failures.total == 20 + MAX_FAILURES + 1


def test_up_clears_the_failures():
    made = connection()
    made.fail()
    made.enter(states.CONNECTING)
    assert made.failures.charged == 1
    made.enter(states.UP)
    assert made.failures.total == made.failures.charged == 0


def test_one_second_at_least_between_connects(monkeypatch):
    monkeypatch.setattr(backoff, "delay", lambda attempt, **options: 0.0)  # a draw of 0
    made = connection()
    made.connecting()
    made.fail()
    assert made.retry_delay() == pytest.approx(1.0)
    made.loop.advance(0.25)
    assert made.retry_delay() == pytest.approx(0.75)
    made.loop.advance(5)
    assert made.retry_delay() == 0.0
    fast = connection(backoff_=Backoff.from_environment({"CHARIOTD_BACKOFF_BASE": "0.1"}))
    fast.connecting()
    assert fast.retry_delay() == pytest.approx(0.1)


def test_retry_delay_grows_with_the_failures_and_stays_below_its_ceiling(monkeypatch):
    monkeypatch.setattr(backoff, "delay", lambda attempt, base, cap: min(cap, base * 2 ** attempt))
    made = connection(backoff_=Backoff(base=0.5, cap=8.0, min_interval=1.0))
    made.loop.advance(10)  # long after the last CONNECT
    waits = []
    for _ in range(7):
        made.fail()
        waits.append(made.retry_delay())
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert made.retry_delay(after_failure=False) == 0.5  # a working connection dropped


def test_a_deadline_fires_in_its_state_only():
    made = connection()
    made.enter(states.CONNECTING)
    expired = []
    made.expect("CONNACK", 5.0, expired.append)
    made.loop.advance(4.9)
    assert expired == []
    made.loop.advance(0.2)
    assert expired == ["no CONNACK within 5 s"]
    made.expect("SUBACK", 5.0, expired.append)
    made.enter(states.SUBSCRIBING)  # what was owed before is no longer awaited
    made.loop.advance(60)
    assert expired == ["no CONNACK within 5 s"]


def test_a_deadline_of_an_earlier_visit_to_the_same_state_never_fires():
    made = connection()
    made.enter(states.CONNECTING)
    expired = []
    made.expect("CONNACK", 5.0, expired.append)
    made.loop.advance(1)
    made.wait(1.0, lambda: made.enter(states.CONNECTING))
    made.loop.advance(1.5)
    assert made.state == states.CONNECTING
    made.loop.advance(10)
    assert expired == []


def test_wait_retries_once_and_a_transition_forgets_the_retry():
    made = connection()
    attempts = []
    made.wait(2.0, lambda: attempts.append(made.loop.now))
    made.loop.advance(3)
    assert attempts == [pytest.approx(1002.0)]
    made.wait(2.0, lambda: attempts.append("late"))
    made.enter(states.CONNECTING)
    made.loop.advance(10)
    assert len(attempts) == 1
