"""What a change to one service amounts to (pure)."""

import pytest

from chariotd.services.definitions import ServiceDefinition
from chariotd.services.reconcile import ChangeRefused, reconcile
from chariotd.shadow.patch import NO_CHANGE


def service(**fields):
    defaults = dict(key="foo", notifycmd="true", source="foo.js", outfile="/cfg/foo",
                    outformat="JSON")
    defaults.update(fields)
    return ServiceDefinition(**defaults)


def run(definition, current=None, reported=None, patch=NO_CHANGE, text=None, **kw):
    if text is None and current is not None:
        text = "written"
    return reconcile(definition, outfile_text=text, current=current, reported=reported,
                     patch=patch, **kw)


def test_desired_merged_into_the_outfile():
    change = run(service(), current={"a": 1, "b": 2}, reported={"a": 1, "b": 2},
                 patch={"b": 3, "c": {"d": 4}})
    assert change.config == {"a": 1, "b": 3, "c": {"d": 4}}
    assert change.write == '{\n  "a": 1,\n  "b": 3,\n  "c": {\n    "d": 4\n  }\n}\n'
    assert change.notify
    assert change.report == {"b": 3, "c": {"d": 4}}


def test_outfile_wins_over_reported():
    change = run(service(), current={"a": 5}, reported={"a": 1, "x": 2})
    assert change.write is None and not change.notify
    assert change.report == {"a": 5, "x": None}


def test_missing_outfile_removes_reported_and_writes_nothing():
    change = run(service(), current=None, reported={"a": 1})
    assert change.write is None and not change.notify and change.report is None


def test_no_change_no_write_no_notify():
    change = run(service(), current={"a": 1}, reported={"a": 1}, patch={"a": 1})
    assert change.write is None and not change.notify and change.report is NO_CHANGE


def test_delete_and_empty_array():
    change = run(service(), current={"a": 1, "b": [1], "c": 3}, reported=None,
                 patch={"a": "DELETE", "b": []}, empty_array_deletes=True)
    assert change.config == {"c": 3}


def test_outkeys_limit_the_outfile_and_keep_the_rest_reported():
    definition = service(outkeys=("keep",))
    change = run(definition, current={"keep": 1}, reported={"keep": 1, "noise": 7},
                 patch={"noise": 8})
    assert change.write is None and not change.notify
    assert change.report == {"noise": 8}
    change = run(definition, current={"keep": 1}, reported={"keep": 1, "noise": 7},
                 patch={"keep": 2})
    assert change.write == '{\n  "keep": 2\n}\n' and change.notify


def test_notifykeys_limit_notifications_but_not_the_outfile():
    definition = service(notifykeys=("important",))
    change = run(definition, current={"important": 1, "minor": 1}, reported=None,
                 patch={"minor": 2})
    assert change.write is not None and not change.notify
    change = run(definition, current={"important": 1}, reported=None, patch={"important": 2})
    assert change.notify


def test_initial_notify_and_initial_changes():
    assert run(service(initialnotify=True), current={"a": 1}, reported={"a": 1},
               initial=True).notify
    assert not run(service(), current={"a": 1}, reported={"a": 1}, initial=True).notify
    # the first change after start notifies whatever notifykeys says
    assert run(service(notifykeys=("x",)), current={"a": 1}, reported=None,
               patch={"a": 2}, initial=True).notify


def test_validate_transforms_or_refuses():
    def validate(cfg):
        if cfg.get("port", 0) > 65535:
            raise ValueError("port out of range")
        return dict(cfg, checked=True)

    definition = service(validate=validate)
    assert run(definition, current={}, reported=None,
               patch={"port": 80}).config == {"port": 80, "checked": True}
    with pytest.raises(ChangeRefused, match="port out of range"):
        run(definition, current={}, reported=None, patch={"port": 70000})


def test_shell_refuses_bad_names():
    with pytest.raises(ChangeRefused):
        run(service(outformat="SHELL"), current={}, reported=None, patch={"bad-name": 1})


def test_dev_null_uses_reported_and_never_writes():
    definition = service(outfile="/dev/null")
    change = run(definition, current=None, reported={"a": 1}, patch={"b": 2})
    assert change.write is None and change.notify
    assert change.config == {"a": 1, "b": 2} and change.report == {"b": 2}


def test_ephemeral_notifies_and_reports_nothing():
    definition = service(ephemeraldata=True, outfile=None, outformat=None)
    change = run(definition, patch={"now": True}, reported=None)
    assert change.notify and change.write is None and change.report is NO_CHANGE
    assert change.config == {"now": True}
    assert not run(definition, reported=None).notify


def test_replace_ignores_the_outfile():
    change = run(service(), current={"old": 1}, reported=None, patch={"new": 1}, replace=True)
    assert change.config == {"new": 1}


def test_plaintext():
    change = run(service(outformat="PLAINTEXT"), current="old text", text="old text",
                 reported="old text", patch="new text")
    assert change.write == "new text" and change.report == "new text"
