"""The shadow service as a pure function, against IOT_CORE.md §2 (each case cites its section)."""

from __future__ import annotations

import json

import pytest

from chariotd.sim.shadow_service import ShadowOptions, ShadowRecord, handle
from chariotd.sim.topics import ShadowRequest, parse_shadow_request

THING = "myThing"


class Shadow:
    """One shadow driven through handle(), remembering what was published."""

    def __init__(self, thing=THING, shadow=None, options=ShadowOptions()):
        self.thing, self.shadow, self.options = thing, shadow, options
        self.record = None

    def send(self, op, payload, now):
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        self.record, responses = handle(self.record, ShadowRequest(self.thing, self.shadow, op),
                                        payload, now, self.options)
        prefix = f"$aws/things/{self.thing}/shadow" + (
            f"/name/{self.shadow}" if self.shadow else "")
        return {topic[len(prefix) + 1:]: doc for topic, doc in responses}


def without(doc, *keys):
    return {k: v for k, v in doc.items() if k not in keys}


def test_real_service_transcript():
    """§2.3 [cap S2]: the shadow-sandbox transcript of the real service, replayed exactly.

    The captured update/documents events lack clientToken because the SDK model drops
    it (IOT_CORE.md §2.3 lists it). The 404 is exactly the captured one: no timestamp.
    """
    s = Shadow()
    r = s.send("get", {"clientToken": "0228"}, 1730481900)
    assert r["get/rejected"] == {
        "clientToken": "0228", "code": 404, "message": "No shadow exists with name: 'myThing'"}

    r = s.send("update", {"state": {"reported": {"Color": "green"}},
                          "clientToken": "58de9848-e4db-e2ac-9622-d4c1197a5a14"}, 1730481958)
    assert r["update/accepted"] == {
        "clientToken": "58de9848-e4db-e2ac-9622-d4c1197a5a14",
        "state": {"reported": {"Color": "green"}},
        "metadata": {"reported": {"Color": {"timestamp": 1730481958}}},
        "timestamp": 1730481958, "version": 1}
    assert without(r["update/documents"], "clientToken") == {
        "current": {"state": {"reported": {"Color": "green"}},
                    "metadata": {"reported": {"Color": {"timestamp": 1730481958}}},
                    "version": 1},
        "timestamp": 1730481958}
    assert "update/delta" not in r

    r = s.send("get", {"clientToken": "x"}, 1730482166)
    assert r["get/accepted"] == {
        "clientToken": "x", "state": {"reported": {"Color": "green"}},
        "metadata": {"reported": {"Color": {"timestamp": 1730481958}}},
        "timestamp": 1730482166, "version": 1}

    r = s.send("update", {"state": {"desired": {"Color": "green"}},
                          "clientToken": "7f53091e-16a7-74d9-201b-b2d45a4d1ae7"}, 1730482304)
    assert r["update/accepted"] == {
        "clientToken": "7f53091e-16a7-74d9-201b-b2d45a4d1ae7",
        "state": {"desired": {"Color": "green"}},
        "metadata": {"desired": {"Color": {"timestamp": 1730482304}}},
        "timestamp": 1730482304, "version": 2}
    assert "update/delta" not in r

    r = s.send("update", {"state": {"desired": {"Color": "red"}},
                          "clientToken": "35624091-7be2-3ab3-c193-bac8f4c4e9c8"}, 1730482794)
    assert r["update/accepted"]["version"] == 3
    assert without(r["update/documents"], "clientToken") == {
        "previous": {"state": {"desired": {"Color": "green"}, "reported": {"Color": "green"}},
                     "metadata": {"desired": {"Color": {"timestamp": 1730482304}},
                                  "reported": {"Color": {"timestamp": 1730481958}}},
                     "version": 2},
        "current": {"state": {"desired": {"Color": "red"}, "reported": {"Color": "green"}},
                    "metadata": {"desired": {"Color": {"timestamp": 1730482794}},
                                 "reported": {"Color": {"timestamp": 1730481958}}},
                    "version": 3},
        "timestamp": 1730482794}
    assert r["update/delta"] == {
        "state": {"Color": "red"}, "metadata": {"Color": {"timestamp": 1730482794}},
        "timestamp": 1730482794, "version": 3,
        "clientToken": "35624091-7be2-3ab3-c193-bac8f4c4e9c8"}

    r = s.send("update", {"state": {"reported": {"Color": "red"}},
                          "clientToken": "5741d710-fe6b-7f4f-ece1-7767498a38c8"}, 1730482948)
    assert r["update/accepted"]["version"] == 4
    assert without(r["update/documents"], "clientToken")["current"] == {
        "state": {"desired": {"Color": "red"}, "reported": {"Color": "red"}},
        "metadata": {"desired": {"Color": {"timestamp": 1730482794}},
                     "reported": {"Color": {"timestamp": 1730482948}}},
        "version": 4}
    assert "update/delta" not in r, "in sync: no delta event"

    s.send("update", {"state": {"reported": {"Status": "Great"}}}, 1730483062)
    s.send("update", {"state": {"desired": {"Status": "Great"}}}, 1730483069)
    r = s.send("get", {"clientToken": "2b689730-8144-c20f-07dd-60bdf4e3f2b7"}, 1730483086)
    assert r["get/accepted"] == {
        "clientToken": "2b689730-8144-c20f-07dd-60bdf4e3f2b7",
        "state": {"desired": {"Color": "red", "Status": "Great"},
                  "reported": {"Color": "red", "Status": "Great"}},
        "metadata": {"desired": {"Color": {"timestamp": 1730482794},
                                 "Status": {"timestamp": 1730483069}},
                     "reported": {"Color": {"timestamp": 1730482948},
                                  "Status": {"timestamp": 1730483062}}},
        "timestamp": 1730483086, "version": 6}

    r = s.send("update", {"state": {"reported": {"Status": "Awful"}},
                          "clientToken": "af54adca-85c9-c4c9-52b0-7349337f57d5"}, 1730483858)
    assert r["update/accepted"] == {
        "clientToken": "af54adca-85c9-c4c9-52b0-7349337f57d5",
        "state": {"reported": {"Status": "Awful"}},
        "metadata": {"reported": {"Status": {"timestamp": 1730483858}}},
        "timestamp": 1730483858, "version": 7}
    assert r["update/delta"] == {
        "state": {"Status": "Great"}, "metadata": {"Status": {"timestamp": 1730483069}},
        "timestamp": 1730483858, "version": 7,
        "clientToken": "af54adca-85c9-c4c9-52b0-7349337f57d5"}

    s.send("update", {"state": {"reported": {"Status": None}}}, 1730483900)
    s.send("update", {"state": {"desired": {"Status": None}}}, 1730483910)
    r = s.send("get", {"clientToken": "2dccc7b8-47ad-80c5-299f-3de5d9b553fa"}, 1730483940)
    assert r["get/accepted"] == {
        "clientToken": "2dccc7b8-47ad-80c5-299f-3de5d9b553fa",
        "state": {"desired": {"Color": "red"}, "reported": {"Color": "red"}},
        "metadata": {"desired": {"Color": {"timestamp": 1730482794}},
                     "reported": {"Color": {"timestamp": 1730482948}}},
        "timestamp": 1730483940, "version": 9}

    r = s.send("delete", {"clientToken": "495844bb-65c9-58a6-bd16-099fa3021512"}, 1730483990)
    assert r == {"delete/accepted": {"clientToken": "495844bb-65c9-58a6-bd16-099fa3021512",
                                     "timestamp": 1730483990, "version": 9}}
    r = s.send("get", {"clientToken": "0228fa77-2bbf-bf91-9915-128668692dbb"}, 1730484000)
    assert r["get/rejected"] == {
        "clientToken": "0228fa77-2bbf-bf91-9915-128668692dbb", "code": 404,
        "message": "No shadow exists with name: 'myThing'"}

    # §2.5: an update within 48 h of a delete continues the numbering (9 -> 10).
    r = s.send("update", {"state": {"reported": {"Color": "blue"}}}, 1730484100)
    assert r["update/accepted"]["version"] == 10
    assert "previous" not in r["update/documents"]


def test_named_shadow_404_names_the_shadow():
    """§2.3: the 404 message names the shadow for a named shadow."""
    r = Shadow(shadow="cfg").send("delete", b"", 1)
    assert r["delete/rejected"] == {"code": 404, "message": "No shadow exists with name: 'cfg'"}


def test_named_shadow_topics():
    """§2.1: named shadow responses go under .../shadow/name/NAME/..."""
    record, responses = handle(None, ShadowRequest("t1", "cfg", "update"),
                               b'{"state":{"desired":{"a":1}}}', 5)
    assert [topic for topic, _ in responses] == [
        "$aws/things/t1/shadow/name/cfg/update/accepted",
        "$aws/things/t1/shadow/name/cfg/update/delta",
        "$aws/things/t1/shadow/name/cfg/update/documents"]


@pytest.mark.parametrize("topic,expected", [
    ("$aws/things/t1/shadow/get", ShadowRequest("t1", None, "get")),
    ("$aws/things/t1/shadow/update", ShadowRequest("t1", None, "update")),
    ("$aws/things/t1/shadow/name/cfg/delete", ShadowRequest("t1", "cfg", "delete")),
    ("$aws/things/t1/shadow/name/$x:y_z-1/get", ShadowRequest("t1", "$x:y_z-1", "get")),
    ("$aws/things/t1/shadow/update/accepted", None),
    ("$aws/things/t1/shadow/update/delta", None),
    ("$aws/things/t1/shadow/name/cfg/update/documents", None),
    ("$aws/things/bad name/shadow/get", None),
    ("$aws/things/t1/shadow/name/bad.name/get", None),
    ("$aws/things/" + "x" * 129 + "/shadow/get", None),
    ("$aws/things/t1/shadow/name/" + "s" * 65 + "/get", None),
    ("$aws/things/t1/shadow/list", None),
    ("other/topic", None),
])
def test_parse_request_topic(topic, expected):
    """§2.1: only request topics are requests; names follow the documented patterns."""
    assert parse_shadow_request(topic) == expected


def test_update_that_changes_nothing_still_bumps():
    """§2.4.11: a no-op update is accepted, version +1, timestamps refreshed."""
    s = Shadow()
    s.send("update", {"state": {"reported": {"a": 1}}}, 10)
    r = s.send("update", {"state": {"reported": {"a": 1}}}, 20)
    assert r["update/accepted"]["version"] == 2
    assert r["update/documents"]["current"]["metadata"] == {"reported": {"a": {"timestamp": 20}}}


def test_delta_is_full_and_carries_trigger_token():
    """§2.4.9: the delta is the FULL delta; clientToken is the triggering request's."""
    s = Shadow()
    s.send("update", {"state": {"desired": {"a": 1, "b": 2}}}, 1)
    r = s.send("update", {"state": {"desired": {"c": 3}}, "clientToken": "tok"}, 2)
    assert r["update/delta"]["state"] == {"a": 1, "b": 2, "c": 3}
    assert r["update/delta"]["metadata"] == {
        "a": {"timestamp": 1}, "b": {"timestamp": 1}, "c": {"timestamp": 2}}
    assert r["update/delta"]["clientToken"] == "tok"
    assert r["update/documents"]["clientToken"] == "tok"


def test_delta_switch_for_unchanged_delta():
    """§2.4.9 [?]: by default an unchanged non-empty delta is re-published (as [gg]);
    delta_on_change_only=True publishes it only when it changed."""
    for only_on_change, expect in ((False, True), (True, False)):
        s = Shadow(options=ShadowOptions(delta_on_change_only=only_on_change))
        s.send("update", {"state": {"desired": {"a": 1}}}, 1)
        r = s.send("update", {"state": {"reported": {"z": 1}}}, 2)
        assert ("update/delta" in r) is expect


def test_section_null_clears_section():
    """§2.4.3: "desired": null removes the whole section (and its metadata)."""
    s = Shadow()
    s.send("update", {"state": {"desired": {"a": 1}, "reported": {"b": 2}}}, 1)
    r = s.send("update", {"state": {"desired": None}}, 2)
    assert r["update/accepted"]["state"] == {"desired": None}
    assert r["update/documents"]["current"]["state"] == {"reported": {"b": 2}}
    assert r["update/documents"]["current"]["metadata"] == {"reported": {"b": {"timestamp": 1}}}
    assert "update/delta" not in r


def test_state_null_clears_document_but_keeps_shadow():
    """§2.4.4: "state": null clears everything; the shadow exists, version increments."""
    s = Shadow()
    s.send("update", {"state": {"desired": {"a": 1}, "reported": {"b": 2}}}, 1)
    r = s.send("update", {"state": None}, 2)
    assert r["update/accepted"]["version"] == 2
    r = s.send("get", b"", 3)
    assert r["get/accepted"] == {"state": {}, "metadata": {}, "version": 2, "timestamp": 3}


def test_accepted_echoes_only_sent_fields_with_nulls():
    """§2.3: update/accepted echoes only the request's fields, nulls included [gg]."""
    s = Shadow()
    s.send("update", {"state": {"reported": {"a": 1, "b": 2, "c": {"d": 1}}}}, 1)
    r = s.send("update", {"state": {"reported": {"a": None, "c": {"e": 5}}},
                          "clientToken": "t"}, 2)
    assert r["update/accepted"] == {
        "state": {"reported": {"a": None, "c": {"e": 5}}},
        "metadata": {"reported": {"a": {"timestamp": 2}, "c": {"e": {"timestamp": 2}}}},
        "version": 2, "timestamp": 2, "clientToken": "t"}
    assert r["update/documents"]["current"]["metadata"] == {
        "reported": {"b": {"timestamp": 1}, "c": {"d": {"timestamp": 1}, "e": {"timestamp": 2}}}}


def test_get_includes_delta_only_when_non_empty():
    """§2.3: get/accepted shows state.delta only when non-empty."""
    s = Shadow()
    s.send("update", {"state": {"desired": {"a": 1}, "reported": {"a": 0}}}, 1)
    assert s.send("get", b"", 2)["get/accepted"]["state"]["delta"] == {"a": 1}
    s.send("update", {"state": {"reported": {"a": 1}}}, 3)
    assert "delta" not in s.send("get", b"", 4)["get/accepted"]["state"]


def test_version_conflict_and_match():
    """§2.5: version must equal the current version, else 409 with clientToken echoed."""
    s = Shadow()
    s.send("update", {"state": {"reported": {"a": 1}}}, 1)
    r = s.send("update", {"state": {"reported": {"a": 2}}, "version": 5, "clientToken": "c"}, 2)
    assert r["update/rejected"] == {
        "code": 409, "message": "Version conflict", "clientToken": "c", "timestamp": 2}
    assert s.record.version == 1 and s.record.state == {"reported": {"a": 1}}
    r = s.send("update", {"state": {"reported": {"a": 2}}, "version": 1}, 3)
    assert r["update/accepted"]["version"] == 2


def test_version_on_missing_shadow_conflicts():
    """§2.5 [?]: a shadow that never existed is at version 0."""
    r = Shadow().send("update", {"state": {"reported": {"a": 1}}, "version": 3}, 1)
    assert r["update/rejected"]["code"] == 409
    r = Shadow().send("update", {"state": {"reported": {"a": 1}}, "version": 0}, 1)
    assert r["update/accepted"]["version"] == 1


def test_delete_keeps_version_for_48_hours():
    """§2.5: delete reports the deleted version; after 48 h numbering starts again."""
    s = Shadow()
    for i in range(3):
        s.send("update", {"state": {"reported": {"a": i}}}, 1)
    assert s.send("delete", b"", 2)["delete/accepted"]["version"] == 3
    assert s.send("delete", b"", 3)["delete/rejected"]["code"] == 404
    later = 2 + 48 * 3600
    assert s.send("update", {"state": {"reported": {"a": 1}}}, later)[
        "update/accepted"]["version"] == 1


def test_size_limit_413():
    """§2.7: more than 8 KB of desired + reported is 413 with the documented text."""
    s = Shadow()
    s.send("update", {"state": {"desired": {"a": "x" * 4000}}}, 1)
    r = s.send("update", {"state": {"reported": {"b": "y" * 4200}}, "clientToken": "big"}, 2)
    assert without(r["update/rejected"], "timestamp") == {
        "code": 413, "message": "The payload exceeds the maximum size allowed",
        "clientToken": "big"}
    assert s.record.version == 1
    r = s.send("update", {"state": {"reported": {"b": "y" * 4000}}}, 3)
    assert r["update/accepted"]["version"] == 2


@pytest.mark.parametrize("payload,code,message", [
    (b"not json", 400, "Invalid JSON"),
    (b'{"clientToken":"t"}', 400, "Missing required node: state"),
    (b'{"state":{"desired":"on"}}', 400, "Desired node must be an object"),
    (b'{"state":{"delta":{}}}', 400, "State contains an invalid node: 'delta'"),
    (b'{"state":{},"version":"1"}', 400, "Invalid version"),
])
def test_bad_updates_are_rejected_on_the_rejected_topic(payload, code, message):
    """§2.6: errors go to update/rejected as {code, message, timestamp[, clientToken]}."""
    s = Shadow()
    r = s.send("update", payload, 7)
    assert list(r) == ["update/rejected"]
    assert (r["update/rejected"]["code"], r["update/rejected"]["message"]) == (code, message)
    assert s.record is None


def test_record_json_round_trip():
    record = ShadowRecord({"desired": {"a": 1}}, {"desired": {"a": {"timestamp": 1}}}, 4)
    assert ShadowRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
