"""Fuzz: shadow documents from the cloud, fed to the real applier (`Applier.
on_shadow_response`, then ShadowSync and the services) with fakes around it: huge,
deep, wrong types, invalid UTF-8, nulls in arrays, non-object state, right and wrong
client tokens. Nothing raises, every frame the applier sends is valid, every outfile
written reads back in its format, and afterwards the applier still does its job."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from chariotd import formats
from chariotd.shadow.patch import NO_CHANGE
from chariotd.shadow.values import has_null_in_array

from fake_applier import SERVICES, FakeApplier
from fuzz_values import dumps, fuzz_settings, hostile_bytes, json_values, text

TOKEN = "<token>"  # replaced by the token of the request in flight, when there is one
service_keys = st.sampled_from(list(SERVICES))
sections = st.dictionaries(st.one_of(service_keys, text), json_values, max_size=4)
states = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"desired": st.one_of(sections, json_values),
                                        "reported": st.one_of(sections, json_values),
                                        "delta": sections}),
    sections)
documents = st.fixed_dictionaries(
    {}, optional={"state": states, "version": st.one_of(st.integers(-5, 10**20), json_values),
                  "clientToken": st.one_of(st.just(TOKEN), json_values),
                  "code": st.one_of(st.sampled_from([400, 404, 409, 413, 500]), json_values),
                  "message": json_values, "metadata": json_values, "timestamp": json_values})
payloads = st.one_of(documents.map(lambda d: ("doc", d)),
                     hostile_bytes(("state", "version", "clientToken", "code")).map(
                         lambda b: ("raw", b)))
responses = st.tuples(st.sampled_from([("get", "accepted"), ("get", "rejected"),
                                       ("update", "accepted"), ("update", "rejected"),
                                       ("update", "delta"), ("update", "documents"),
                                       ("delete", "accepted"), ("get", "bogus")]),
                      payloads)


def token_for(fake: FakeApplier, action: str):
    if action == "get":
        return fake.sync.get_token
    return fake.sync.inflight.token if fake.sync.inflight is not None else None


def send(fake: FakeApplier, action: str, status: str, payload) -> None:
    kind, value = payload
    if kind == "doc":
        if value.get("clientToken") == TOKEN:
            value = dict(value, clientToken=token_for(fake, action))
        value = dumps(value)
    fake.respond(action, status, value)


def outfiles_read_back(fake: FakeApplier) -> None:
    for key, (outformat, _, _) in SERVICES.items():
        path = fake.out / key
        if outformat and path.exists():
            formats.get(outformat).parse(path.read_bytes().decode("utf-8"))


def still_works(fake: FakeApplier) -> None:
    """A fresh fetch with an ordinary desired state reaches the outfiles."""
    fake.applier.on_link_state("link", _down())
    fake.link_up()
    sent_before = len(fake.mailbox.requests("update"))
    fake.get_accepted({"cfgjson": {"ok": 1}, "cfgshell": {"ok": "yes"}, "cfgtext": "fine"},
                      version=10**30)
    assert json.loads((fake.out / "cfgjson").read_text())["ok"] == 1
    assert formats.shell.parse((fake.out / "cfgshell").read_text())["ok"] == "yes"
    assert (fake.out / "cfgtext").read_text() == "fine"
    for _ in range(10):  # what was pending goes first, then the new report
        fake.accept_update()
    cleared = set()
    for update in fake.mailbox.requests("update")[sent_before:]:
        cleared.update(update["state"].get("desired", {}))
    assert {"cfgjson", "cfgshell", "cfgtext"} <= cleared
    assert fake.sync.inflight is None and not fake.sync.pending


def _down():
    from chariotd.ipc.messages import LinkState
    return LinkState(up=False)


@fuzz_settings(100)
@given(st.lists(responses, min_size=1, max_size=8), st.booleans())
def test_hostile_shadow_responses(steps, fetched_first):
    with tempfile.TemporaryDirectory() as root:
        fake = FakeApplier(Path(root))
        fake.link_up()
        if fetched_first:
            fake.get_accepted({"cfgjson": {"a": 1}})
        for (action, status), payload in steps:
            send(fake, action, status, payload)
            outfiles_read_back(fake)
        still_works(fake)


@fuzz_settings(100)
@given(st.dictionaries(service_keys, json_values, min_size=1, max_size=5),
       st.one_of(st.none(), sections))
def test_any_desired_values_for_every_service(desired, reported):
    """Every value type for every outformat: written and readable, or refused (and the
    desired value still cleared); never a crash."""
    with tempfile.TemporaryDirectory() as root:
        fake = FakeApplier(Path(root))
        fake.link_up()
        fake.get_accepted(desired, reported)
        outfiles_read_back(fake)
        updates = fake.mailbox.requests("update")
        if has_null_in_array({"d": desired, "r": reported}):  # no shadow holds one: ignored
            assert not updates and fake.sync.get_token is not None
            return
        assert updates and set(updates[-1]["state"]["desired"]) == set(desired)
        fake.accept_update()
        fake.respond_json("update", "delta", {"state": desired, "version": 5})
        outfiles_read_back(fake)
        still_works(fake)


def test_known_hostile_documents(tmp_path):
    fake = FakeApplier(tmp_path)
    fake.link_up()
    token = fake.sync.get_token
    for payload in (b"\xff\xfe", b"[" * 100000, b"1" * 5000, b"null", b"[]", b'"state"',
                    b'{"state": ' + b'{"a":' * 900 + b"1" + b"}" * 901,
                    json.dumps({"state": {"desired": {"cfgjson": {"a": [1, None]}}},
                                "clientToken": token}).encode(),
                    json.dumps({"state": 5, "clientToken": token}).encode(),
                    json.dumps({"state": {"desired": [1]}, "clientToken": token}).encode()):
        for action, status in (("get", "accepted"), ("update", "delta"), ("get", "rejected"),
                               ("update", "rejected"), ("update", "accepted")):
            fake.respond(action, status, payload)
    still_works(fake)


def test_local_update_values_never_crash(tmp_path):
    """A value from an update file reaches ShadowSync.local_update only after its
    informat read it; what the formats let through is handled."""
    fake = FakeApplier(tmp_path)
    finished = []
    fake.sync.finish = lambda request, reason: finished.append(reason)
    for value in ([1, None], {"a": [None]}, "DELETE", [], {"a": {"b": {}}}, 10**300, -0.0,
                  {"PATH": "/x"}, {"bad key": 1}, "\ud800"):
        for key in SERVICES:
            fake.sync.local_update(len(finished), key, value)
    assert NO_CHANGE is not None and len(fake.mailbox.sent) >= 0


def test_a_bogus_version_never_blocks_deltas_past_the_next_fetch(tmp_path):
    fake = FakeApplier(tmp_path)
    fake.link_up()
    fake.get_accepted({}, version=5)

    def delta(value, version):
        fake.respond_json("update", "delta", {"state": {"cfgjson": {"v": value}},
                                              "version": version})
        fake.accept_update()
        return json.loads((fake.out / "cfgjson").read_text())["v"]

    assert delta(1, 10**30) == 1  # not a 64-bit version: not remembered
    assert delta(2, 6) == 2
    assert delta(3, 2**62) == 3  # a valid but bogus version...
    assert delta(4, 7) == 3  # ...makes later deltas look old
    fake.applier.on_link_state("link", _down())
    fake.link_up()
    fake.get_accepted({}, version=8)  # until the next fetch, which is the truth
    assert delta(5, 9) == 5


def test_get_responses_are_taken_only_for_our_get_in_flight(tmp_path):
    """A get/accepted or get/rejected without our token, or when no get of ours is out,
    is someone else's: it neither applies desired state nor starts a refetch."""
    fake = FakeApplier(tmp_path)
    fake.link_up()
    fake.get_accepted({"cfgjson": {"a": 1}})
    fake.accept_update()
    assert fake.sync.get_token is None and fake.sync.state == "ready"
    sent = len(fake.mailbox.sent)
    for document in ({"state": {"desired": {"cfgjson": {"a": 2}}}, "version": 99},
                     {"state": {"desired": {"cfgjson": {"a": 3}}}, "clientToken": None},
                     {"code": 404, "message": "No shadow"}, {"code": 500}):
        for status in ("accepted", "rejected"):
            fake.respond_json("get", status, document)
    assert fake.sync.state == "ready" and len(fake.mailbox.sent) == sent
    assert json.loads((fake.out / "cfgjson").read_text()) == {"a": 1}
    assert not [t for t in fake.loop.timers if not t.cancelled and t.callback == fake.sync.fetch]


def test_a_malformed_delta_leaves_the_version_alone(tmp_path):
    fake = FakeApplier(tmp_path)
    fake.link_up()
    fake.get_accepted({}, version=5)
    fake.respond_json("update", "delta", {"state": 5, "version": 99})
    fake.respond_json("update", "delta", {"state": {"cfgjson": {"v": 1}}, "version": 6})
    assert json.loads((fake.out / "cfgjson").read_text()) == {"v": 1}
