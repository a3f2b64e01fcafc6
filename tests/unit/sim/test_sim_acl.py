"""The broker ACL (chariotd/sim/acl.py) read the way Mosquitto reads it: devices write
request topics and read reply topics only (IOT_CORE.md §1); the service may do anything."""

from __future__ import annotations

import pytest
from paho.mqtt.client import topic_matches_sub

from chariotd.sim.acl import DEFAULT_ACL, OPEN_ACL, SERVICE_USER, registered_entries


def access(acl: str, user: str, topic: str) -> set:
    """{'read', 'write'} that ACL gives USER on TOPIC (Mosquitto acl_file semantics)."""
    granted, current = set(), None
    for line in acl.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "user":
            current = words[1]
            continue
        keyword, mode, pattern = words
        if keyword == "topic" and current != user:
            continue
        if keyword == "pattern":
            pattern = pattern.replace("%u", user)
        if topic_matches_sub(pattern, topic):
            granted |= {"read", "write"} if mode == "readwrite" else {mode}
    return granted


T = "$aws/things/dev1"
REQUESTS = [f"{T}/shadow/get", f"{T}/shadow/update", f"{T}/shadow/delete",
            f"{T}/shadow/name/cfg/update", f"{T}/shadow/name/$x/delete",
            f"{T}/jobs/get", f"{T}/jobs/start-next", f"{T}/jobs/job-1/get",
            f"{T}/jobs/$next/get", f"{T}/jobs/job-1/update",
            f"{T}/defender/metrics/json", f"{T}/defender/metrics/cbor",
            "$aws/certificates/create/json", "$aws/certificates/create-from-csr/json",
            "$aws/provisioning-templates/tpl/provision/json", "$aws/rules/r/x"]
REPLIES = [f"{T}/shadow/{op}/{r}" for op in ("get", "update", "delete")
           for r in ("accepted", "rejected")] + [
    f"{T}/shadow/update/delta", f"{T}/shadow/update/documents",
    f"{T}/shadow/name/cfg/update/delta", f"{T}/shadow/name/cfg/get/accepted",
    f"{T}/jobs/get/accepted", f"{T}/jobs/start-next/rejected",
    f"{T}/jobs/job-1/update/accepted", f"{T}/jobs/$next/get/accepted",
    f"{T}/jobs/notify", f"{T}/jobs/notify-next",
    f"{T}/defender/metrics/json/accepted", f"{T}/defender/metrics/cbor/rejected",
    f"{T}/tunnels/notify",
    "$aws/certificates/create/json/accepted", "$aws/certificates/create/json/rejected",
    "$aws/certificates/create-from-csr/json/accepted",
    "$aws/provisioning-templates/tpl/provision/json/accepted"]


@pytest.mark.parametrize("acl", [DEFAULT_ACL, OPEN_ACL])
def test_a_device_writes_requests_and_reads_replies_only(acl):
    for topic in REQUESTS:
        assert "write" in access(acl, "dev1", topic), topic
        assert "read" not in access(acl, "dev1", topic), topic
    for topic in REPLIES:
        assert access(acl, "dev1", topic) == {"read"}, topic


@pytest.mark.parametrize("acl", [DEFAULT_ACL, OPEN_ACL])
def test_another_things_and_unknown_reserved_topics_are_closed(acl):
    for topic in [t.replace("/dev1/", "/dev2/") for t in REQUESTS + REPLIES if "/dev1/" in t] \
            + [f"{T}/shadow/update/x", f"{T}/shadow", f"{T}/other", "$aws/events/x",
               f"{T}/shadow/name/a/b/update", "$aws/certificates/other/json"]:
        assert access(acl, "dev1", topic) == set(), topic


def test_ordinary_topics_open_only_with_open_acl():
    assert access(OPEN_ACL, "dev1", "chariot/dev1/x") == {"read", "write"}
    assert access(DEFAULT_ACL, "dev1", "chariot/dev1/x") == set()


def test_the_service_may_use_every_topic():
    for topic in REQUESTS + REPLIES + ["chariot/x"]:
        assert access(DEFAULT_ACL, SERVICE_USER, topic) == {"read", "write"}, topic


def test_a_registered_certificate_gets_its_things_rules_by_name():
    acl = DEFAULT_ACL + registered_entries([
        {"status": "ACTIVE", "thingName": "dev1", "commonName": "prov-1"},
        {"status": "INACTIVE", "thingName": "dev2", "commonName": "prov-2"}])
    assert access(acl, "prov-1", f"{T}/shadow/update") == {"write"}
    assert access(acl, "prov-1", f"{T}/shadow/update/delta") == {"read"}
    assert access(acl, "prov-2", "$aws/things/dev2/shadow/update") == set()
    assert registered_entries([]) == ""


def test_only_the_service_may_use_the_cloud_side_command_topics():
    for topic in ("$iotsim/jobs/create", "$iotsim/jobs/create/accepted",
                  "$iotsim/defender/reports"):
        assert access(OPEN_ACL, "dev1", topic) == set(), topic
        assert access(OPEN_ACL, SERVICE_USER, topic) == {"read", "write"}, topic
