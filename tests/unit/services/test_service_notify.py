"""A change written to an outfile but not yet announced by its notify command survives
a stop of chariotd: the marker left beside the outfile makes the next start notify."""

import json
import os

from chariotd.services.definitions import definition_from_fields
from chariotd.kernel.pending import is_marked as is_pending, marker_path
from chariotd.services.service import Service


class Calls:
    def __init__(self):
        self.made = []

    def __call__(self, definition, config, outfile=None):
        self.made.append((definition.key, config, outfile))


def service(tmp_path, calls, **fields):
    outfile = tmp_path / "foo.json"
    definition = definition_from_fields(
        {"key": "foo", "outfile": str(outfile), "outformat": "JSON", "informat": "JSON",
         "notifycmd": "true", **fields}, "test")
    return Service(definition, calls), outfile


def test_a_change_marks_the_outfile_until_its_notify_finishes(tmp_path):
    calls = Calls()
    svc, outfile = service(tmp_path, calls)
    svc.apply(None, {"a": 1})
    assert json.loads(outfile.read_text()) == {"a": 1}
    assert is_pending(str(outfile))  # the (stub) notify never finished
    assert calls.made == [("foo", {"a": 1}, str(outfile))]


def test_an_interrupted_notify_runs_again_at_the_next_start(tmp_path):
    calls = Calls()
    svc, outfile = service(tmp_path, calls)
    svc.apply(None, {"a": 1})  # written, notify started, then chariotd was killed
    restarted = Calls()
    svc2, _ = service(tmp_path, restarted)
    svc2.apply({"a": 1})  # the first look after the start: nothing changed...
    assert restarted.made == [("foo", {"a": 1}, str(outfile))]  # ...but it is notified
    svc2.apply({"a": 1})
    assert len(restarted.made) == 1  # only at start


def test_no_marker_no_notify_when_nothing_changed(tmp_path):
    calls = Calls()
    svc, outfile = service(tmp_path, calls)
    outfile.write_text('{"a": 1}')
    svc.apply({"a": 1})
    assert calls.made == [] and not is_pending(str(outfile))


def test_the_marker_is_never_written_through_a_symlink(tmp_path):
    calls = Calls()
    svc, outfile = service(tmp_path, calls)
    victim = tmp_path / "victim"
    os.symlink(victim, marker_path(str(outfile)))
    svc.apply(None, {"a": 1})
    assert not victim.exists()
    assert json.loads(outfile.read_text()) == {"a": 1}
