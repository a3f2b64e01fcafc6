"""What a change to one service amounts to (pure)."""

import pytest

from chariotd.formats import FormatError

from chariotd.services.definitions import ServiceDefinition
from chariotd.services.reconcile import (UNREADABLE, ChangeRefused, read_outfile, reconcile,
                                         render)
from chariotd.shadow.patch import NO_CHANGE


def service(**fields):
    defaults = dict(key="foo", notifycmd="true", source="foo.js", outfile="/cfg/foo",
                    outformat="JSON")
    defaults.update(fields)
    return ServiceDefinition(**defaults)


def run(definition, current=None, reported=None, patch=NO_CHANGE, text=None, **kw):
    """CURRENT: the configuration the outfile was written from (None: no outfile),
    or TEXT: the outfile's text."""
    if text is None and current is not None:
        text = render(definition.outformat, current)
    on_disk = read_outfile(definition, text, reported)
    return reconcile(definition, on_disk=on_disk, reported=reported, patch=patch, **kw)


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


def test_shell_prefix_names_compare_in_the_flat_form_the_file_holds():
    """Issue 12 finding 3: `server` + `server_port` is ordinary configuration. The file
    stands for the reported value when it holds what that value writes, so a change
    of another key keeps both and reports only that key."""
    definition = service(outformat="SHELL")
    reported = {"server": "a", "server_port": 80, "log": {"level": "x"}}
    text = render("SHELL", reported)
    unchanged = run(definition, text=text, reported=reported)
    assert unchanged.write is None and unchanged.report is NO_CHANGE
    change = run(definition, text=text, reported=reported, patch={"other": 1})
    assert change.config == {**reported, "other": 1} and change.report == {"other": 1}
    assert change.write == ("log_level='x'\nother='1'\nserver='a'\nserver_port='80'\n")


def test_shell_file_edited_locally_stands_for_what_it_reads_back():
    definition = service(outformat="SHELL")
    change = run(definition, text="server='b'\nserver_port='81'\n", reported={"server": "a"})
    assert change.write is None and change.report == {"server": "b", "server_port": 81}


def test_a_value_too_deep_for_every_format_is_refused():
    deep = 1
    for _ in range(33):
        deep = {"a": deep}
    for outformat in ("JSON", "SHELL"):
        with pytest.raises(ChangeRefused, match="deeper than 32"):
            run(service(outformat=outformat), current={"a": 1}, reported={"a": 1},
                patch={"b": deep["a"]})


@pytest.mark.parametrize("outformat,text", [("JSON", "{not json"), ("SHELL", "a=$(x)\n"),
                                            ("JSON", "null\n"), ("SHELL", "PATH='/x'\n")])
def test_unreadable_outfile_is_not_empty_config(outformat, text):
    definition = service(outformat=outformat)
    with pytest.raises(FormatError):
        read_outfile(definition, text, {"a": 1})


def test_unreadable_outfile_is_rewritten_from_reported_plus_the_change():
    change = reconcile(service(), on_disk=UNREADABLE, reported={"a": 1, "b": 2},
                       patch={"c": 3})
    assert change.config == {"a": 1, "b": 2, "c": 3} and change.report == {"c": 3}
    assert change.write == '{\n  "a": 1,\n  "b": 2,\n  "c": 3\n}\n' and change.notify
    change = reconcile(service(), on_disk=UNREADABLE, reported={"a": 1})
    assert change.write == '{\n  "a": 1\n}\n' and change.report is NO_CHANGE
