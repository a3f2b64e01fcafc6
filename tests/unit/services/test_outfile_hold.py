"""An outfile that cannot be read is never taken as empty configuration (issue 12,
finding 3): the service is held, logged once, nothing is written or reported until
the shadow's state is known, then the outfile is rewritten from it."""

import logging

import pytest

from chariotd.services.definitions import definition_from_fields
from chariotd.services.reconcile import ChangeRefused
from chariotd.services.service import Service
from chariotd.shadow.patch import NO_CHANGE


def service(tmp_path, outformat="JSON"):
    outfile = tmp_path / "foo"
    definition = definition_from_fields(
        {"key": "foo", "outfile": str(outfile), "outformat": outformat, "informat": "JSON",
         "notifycmd": "true"}, "test")
    notified = []
    return Service(definition, lambda d, config, path=None: notified.append(config)), \
        outfile, notified


@pytest.mark.parametrize("outformat,garbage", [
    ("JSON", b"\xff\xfe not UTF-8"), ("JSON", b"{half"), ("SHELL", b"a=$(touch x)\n"),
    ("SHELL", b"server='a'\nPATH='/evil'\n"), ("PLAINTEXT", b"\xc3(")])
def test_unreadable_outfile_is_held_then_rewritten_from_the_shadow(
        tmp_path, caplog, outformat, garbage):
    svc, outfile, notified = service(tmp_path, outformat)
    outfile.write_bytes(garbage)
    reported = "kept" if outformat == "PLAINTEXT" else {"server": "a", "server_port": 80}
    caplog.set_level(logging.INFO)
    for _ in range(2):  # before the first fetch: refused, nothing written, nothing reported
        with pytest.raises(ChangeRefused, match="held until the shadow is fetched"):
            svc.apply(None, NO_CHANGE if outformat == "PLAINTEXT" else {"x": 1}, known=False)
    assert outfile.read_bytes() == garbage and notified == []
    held_lines = [r for r in caplog.records if "held until it is rewritten" in r.message]
    assert len(held_lines) == 1, "logged once"
    # the fetch: the outfile is rewritten from the reported value; nothing to report
    assert svc.apply(reported, known=True) is NO_CHANGE
    expected = {"JSON": '{\n  "server": "a",\n  "server_port": 80\n}\n',
                "SHELL": "server='a'\nserver_port='80'\n", "PLAINTEXT": "kept"}[outformat]
    assert outfile.read_text() == expected and notified == [reported]
    assert "from the shadow's state" in caplog.text
    assert svc.held is None
    assert svc.apply(reported, known=True) is NO_CHANGE and len(notified) == 1


def test_a_change_while_unreadable_is_applied_on_the_reported_value(tmp_path):
    svc, outfile, _ = service(tmp_path)
    outfile.write_bytes(b"\xff")
    assert svc.apply({"a": 1, "b": 2}, {"c": 3}) == {"c": 3}
    assert outfile.read_text() == '{\n  "a": 1,\n  "b": 2,\n  "c": 3\n}\n'
