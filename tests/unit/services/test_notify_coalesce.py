"""Notify commands coalesced per service, driven in-process with a fake loop and a fake
spawner: at most one command of a service runs and one waits, the waiting one runs
after with the latest data, and the outfile's marker goes only after the last run."""

from __future__ import annotations

import json
import logging

import pytest

from chariotd.kernel.pending import is_marked
from chariotd.services.definitions import definition_from_fields
from chariotd.services.notify import Notifier
from chariotd.services.service import Service
from chariotd.kernel.spawn import Result


class FakeLoop:
    def __init__(self):
        self.later = []

    def call_later(self, delay, callback):
        self.later.append(callback)

    def run_pass(self):
        due, self.later = self.later, []
        for callback in due:
            callback()


class FakeSpawner:
    """Records starts; the test finishes them."""

    def __init__(self):
        self.loop = FakeLoop()
        self.running = []  # (argv, on_done, stdin)
        self.started = []

    def run(self, argv, on_done, timeout, stdin=b"", **_):
        self.running.append((argv, on_done, stdin))
        self.started.append(stdin)

    def finish(self, index=0, status=0, stderr=b""):
        _, on_done, _ = self.running.pop(index)
        on_done(Result(status=status, stdout=b"", stderr=stderr))

    def running_per_command(self):
        commands = [argv[-1] for argv, _, _ in self.running]
        return {command: commands.count(command) for command in commands}


def define(tmp_path, key="foo", **fields):
    base = {"key": key, "notifycmd": f"notify-{key}"}
    if not fields.get("ephemeraldata"):
        base.update(outfile=str(tmp_path / f"{key}.json"), outformat="JSON")
    return definition_from_fields({**base, "informat": "JSON", **fields}, "test")


@pytest.fixture
def spawner():
    return FakeSpawner()


def test_a_flood_of_changes_runs_one_command_then_exactly_one_more(tmp_path, spawner):
    notify = Notifier(spawner)
    d = define(tmp_path)
    notify(d, {"n": 0}, d.outfile)
    spawner.loop.run_pass()
    assert len(spawner.running) == 1
    for n in range(1, 1000):
        notify(d, {"n": n}, d.outfile)
        spawner.loop.run_pass()
    assert len(spawner.running) == 1  # none started while the first runs
    spawner.finish()
    assert len(spawner.running) == 1  # the one waiting, started right away
    spawner.finish()
    spawner.loop.run_pass()
    assert spawner.running == [] and len(spawner.started) == 2


def test_the_waiting_run_of_an_ephemeral_service_gets_the_latest_data(tmp_path, spawner):
    notify = Notifier(spawner)
    d = define(tmp_path, ephemeraldata=True)
    notify(d, {"n": 0})
    spawner.loop.run_pass()
    for n in range(1, 50):
        notify(d, {"n": n})
    spawner.finish()
    spawner.finish()
    assert [json.loads(stdin) for stdin in spawner.started] == [{"n": 0}, {"n": 49}]


def test_the_marker_stays_until_the_last_needed_run_has_finished(tmp_path, spawner):
    d = define(tmp_path)
    service = Service(d, Notifier(spawner))
    service.apply(None, {"n": 1})
    spawner.loop.run_pass()
    service.apply({"n": 1}, {"n": 2})  # written while the first command runs
    assert json.loads(open(d.outfile).read()) == {"n": 2}
    spawner.finish()  # the first one: a run is still needed for n=2
    assert is_marked(d.outfile)
    # Killed here, the next start would notify again (the marker is there).
    spawner.finish()
    assert not is_marked(d.outfile)


def test_services_are_coalesced_apart(tmp_path, spawner):
    notify = Notifier(spawner)
    foo, bar = define(tmp_path, "foo"), define(tmp_path, "bar")
    for n in range(100):
        notify(foo, {"n": n}, foo.outfile)
        notify(bar, {"n": n}, bar.outfile)
        spawner.loop.run_pass()
    assert spawner.running_per_command() == {"notify-foo": 1, "notify-bar": 1}
    spawner.finish(0)  # foo's: its waiting run starts; bar's keeps running
    assert spawner.running_per_command() == {"notify-foo": 1, "notify-bar": 1}


def test_a_failed_run_logs_and_still_runs_the_waiting_one(tmp_path, spawner, caplog):
    notify = Notifier(spawner)
    d = define(tmp_path)
    notify(d, {}, d.outfile)
    spawner.loop.run_pass()
    notify(d, {}, d.outfile)
    with caplog.at_level(logging.ERROR):
        spawner.finish(status=3, stderr=b"boom")
    assert "service foo: notify command exited with status 3: boom" in caplog.text
    assert len(spawner.running) == 1


def test_after_the_last_run_a_change_starts_a_command_again(tmp_path, spawner):
    notify = Notifier(spawner)
    d = define(tmp_path)
    notify(d, {}, d.outfile)
    spawner.loop.run_pass()
    spawner.finish()
    notify(d, {}, d.outfile)
    spawner.loop.run_pass()
    assert len(spawner.running) == 1 and len(spawner.started) == 2


def test_changes_of_the_same_pass_make_one_run_with_the_latest_data(tmp_path, spawner):
    """The command starts after the pass: changes made before it started need no
    second run, and an ephemeral service's command gets the last of them."""
    notify = Notifier(spawner)
    d = define(tmp_path, ephemeraldata=True)
    notify(d, {"n": 1})
    notify(d, {"n": 2})
    spawner.loop.run_pass()
    spawner.finish()
    spawner.loop.run_pass()
    assert [json.loads(stdin) for stdin in spawner.started] == [{"n": 2}]
    assert spawner.running == []
