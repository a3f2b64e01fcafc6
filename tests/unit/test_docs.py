"""The user docs: the IoT policies in docs/aws.md allow exactly what chariotd does, and
README.md and docs/ stand on their own (no link to a missing file, no reference to
development notes that a clone does not have)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from chariotd.broker_link.routes import Router
from chariotd.broker_link.shadow_topics import prefix, request_topic
from chariotd.cli import parse
from chariotd.provisioning.fleetprov import FleetProv
from chariotd.kernel.topics import check_filter, check_publish_topic, matches
from chariotd.aws.tunnel_request import notify_topic

ROOT = Path(__file__).resolve().parents[2]
AWS_MD = ROOT / "docs" / "aws.md"
USER_DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))

THING = "my-device"
TEMPLATE = "my-template"
REGION, ACCOUNT = "eu-central-1", "123456789012"  # the longest usual values
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:"
MAX_POLICY_CHARS = 2048  # AWS: a policy document, white space not counted


# -- the policies -----------------------------------------------------------------------

def policies() -> Dict[str, dict]:
    """Each ```json block after a `<!-- policy: NAME -->` line of docs/aws.md, parsed,
    with REGION, ACCOUNT and TEMPLATE filled in."""
    text = AWS_MD.read_text()
    found = {}
    for match in re.finditer(r"<!-- policy: ([\w-]+) -->\n```json\n(.*?)\n```", text, re.S):
        body = (match.group(2).replace("REGION", REGION).replace("ACCOUNT", ACCOUNT)
                .replace("TEMPLATE", TEMPLATE))
        found[match.group(1)] = json.loads(body)
    return found


def resolve(resource: str, client_id: str) -> str:
    return (resource.replace("${iot:Connection.Thing.ThingName}", client_id)
            .replace("${iot:ClientId}", client_id))


def policy_pattern(resource: str) -> re.Pattern:
    """AWS IoT policy wildcards: `*` any characters (`/` included), `?` one; MQTT's `+`
    and `#` are ordinary characters in a policy."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource]
    return re.compile("".join(parts) + r"\Z")


def grants(documents: List[dict], client_id: str) -> List[Tuple[str, str]]:
    """(action, resource pattern source) for every Allow of DOCUMENTS."""
    out = []
    for document in documents:
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                for resource in [resources] if isinstance(resources, str) else resources:
                    out.append((action, resolve(resource, client_id)))
    return out


def allowed(documents: List[dict], client_id: str, action: str, resource: str) -> bool:
    return any(a == action and policy_pattern(r).match(ARN + resource)
               for a, r in grants(documents, client_id))


def device_config(tmp_path: Path, named: bool):
    svcs = tmp_path / "svcs"
    svcs.mkdir(exist_ok=True)
    argv = [f"--clientid={THING}", "--cacert=/ca.pem", f"--certstore={tmp_path}",
            f"--services={THING}:{svcs}", f"--updates={THING}:{tmp_path / 'up'}",
            f"--defaultshadow={THING}:/bin/true", f"--messages={tmp_path / 'mqtt'}",
            f"--default-message-topic-prefix=dt/{THING}/",
            f"--subscribe-exec=cmd/{THING}/+:/bin/true",
            f"--subscribe-write=cmd/{THING}/config/#:/run/cfg",
            f"--tunnelmappings={THING}:SSH=22",
            f"--last-will-topic=dt/{THING}/status", "--last-will-payload=offline"]
    if named:
        argv.append(f"--services={THING}/settings:{svcs}")
    return parse(argv)


def device_topics(config) -> Dict[str, List[str]]:
    """What the link does with CONFIG: publish, subscribe (filters), receive (topics)."""
    subscribe = Router(config, mailbox=None).filters
    publish = [request_topic(target, op) for target in config.shadow_targets()
               for op in ("get", "update")]
    publish += [config.messages[0].topic_prefix + "temperature", config.last_will_topic]
    receive = [f"{prefix(target)}/{reply}" for target in config.shadow_targets()
               for reply in ("get/accepted", "get/rejected", "update/accepted",
                             "update/rejected", "update/delta")]
    receive += [notify_topic(THING), f"cmd/{THING}/reboot", f"cmd/{THING}/config/net/wifi"]
    return {"iot:Publish": publish, "iot:Subscribe": subscribe, "iot:Receive": receive}


def test_every_policy_is_json_within_the_size_limit():
    found = policies()
    assert set(found) == {"device", "named-shadows", "claim", "jobs-defender"}
    for name, document in found.items():
        assert document["Version"] == "2012-10-17", name
        size = len("".join(json.dumps(document).split()))
        assert size <= MAX_POLICY_CHARS, (name, size)


@pytest.mark.parametrize("named", [False, True])
def test_the_device_policy_allows_every_topic_chariotd_uses(tmp_path, named):
    found = policies()
    documents = [found["device"]] + ([found["named-shadows"]] if named else [])
    config = device_config(tmp_path, named)
    topics = device_topics(config)
    assert allowed(documents, THING, "iot:Connect", f"client/{THING}")
    for topic in topics["iot:Publish"]:
        check_publish_topic(topic)
        assert allowed(documents, THING, "iot:Publish", f"topic/{topic}"), topic
    for topic_filter in topics["iot:Subscribe"]:
        check_filter(topic_filter)
        assert allowed(documents, THING, "iot:Subscribe", f"topicfilter/{topic_filter}"), \
            topic_filter
    for topic in topics["iot:Receive"]:
        # each is delivered on a filter the link subscribes, and the policy lets it in
        assert any(matches(f, topic) for f in topics["iot:Subscribe"]), topic
        assert allowed(documents, THING, "iot:Receive", f"topic/{topic}"), topic


def test_the_device_policy_allows_nothing_unused(tmp_path):
    """Every Publish and Subscribe resource is used by the configuration, and the
    policy refuses what chariotd never does."""
    found = policies()
    documents = [found["device"], found["named-shadows"]]
    topics = device_topics(device_config(tmp_path, named=True))
    used = {"iot:Publish": ["topic/" + t for t in topics["iot:Publish"]],
            "iot:Subscribe": ["topicfilter/" + f for f in topics["iot:Subscribe"]],
            "iot:Receive": ["topic/" + t for t in topics["iot:Receive"]],
            "iot:Connect": [f"client/{THING}"]}
    for action, resource in grants(documents, THING):
        assert any(policy_pattern(resource).match(ARN + u) for u in used[action]), \
            (action, resource)
    refused = [("iot:Connect", "client/other-device"),
               ("iot:Connect", f"client/{THING}-fp"),
               ("iot:Publish", f"topic/$aws/things/{THING}/shadow/delete"),
               ("iot:Publish", "topic/$aws/things/other-device/shadow/update"),
               ("iot:Publish", f"topic/$aws/things/{THING}/shadow/update/accepted"),
               ("iot:Publish", "topic/$aws/certificates/create/json"),
               ("iot:Subscribe", "topicfilter/#"),
               ("iot:Subscribe", f"topicfilter/$aws/things/{THING}/shadow/#"),
               ("iot:Subscribe", f"topicfilter/$aws/things/{THING}/shadow/update/documents"),
               ("iot:Subscribe", "topicfilter/$aws/things/other-device/shadow/get/+"),
               ("iot:Receive", "topic/$aws/things/other-device/shadow/update/delta")]
    for action, resource in refused:
        assert not allowed(documents, THING, action, resource), (action, resource)


@pytest.mark.parametrize("csr", [False, True])
def test_the_claim_policy_allows_fleet_provisioning_only(csr):
    claim = [policies()["claim"]]
    client_id = f"{THING}-fp"
    fleetprov = FleetProv(claimstore="/claims", template=TEMPLATE, csr=csr)
    assert allowed(claim, client_id, "iot:Connect", f"client/{client_id}")
    assert not allowed(claim, THING, "iot:Connect", f"client/{THING}")
    for topic in (fleetprov.create_topic, fleetprov.register_topic):
        assert allowed(claim, client_id, "iot:Publish", f"topic/{topic}"), topic
    for reply in fleetprov.response_filters():
        assert allowed(claim, client_id, "iot:Subscribe", f"topicfilter/{reply}"), reply
        assert allowed(claim, client_id, "iot:Receive", f"topic/{reply}"), reply
    for action, resource in [("iot:Publish", f"topic/$aws/things/{THING}/shadow/update"),
                             ("iot:Publish", "topic/$aws/provisioning-templates/other/provision/json"),
                             ("iot:Subscribe", "topicfilter/#"),
                             ("iot:Publish", f"topic/dt/{THING}/x")]:
        assert not allowed(claim, client_id, action, resource), resource


def test_the_jobs_and_defender_policy_covers_their_topics():
    extra = [policies()["jobs-defender"]]
    jobs = f"$aws/things/{THING}/jobs"
    metrics = f"$aws/things/{THING}/defender/metrics/json"
    for topic in (f"{jobs}/start-next", f"{jobs}/job-1/update", metrics):
        assert allowed(extra, THING, "iot:Publish", f"topic/{topic}"), topic
    for topic_filter in (f"{jobs}/notify-next", f"{jobs}/start-next/accepted",
                         f"{jobs}/+/update/accepted", f"{metrics}/accepted",
                         f"{metrics}/rejected"):
        assert allowed(extra, THING, "iot:Subscribe", f"topicfilter/{topic_filter}")
        assert allowed(extra, THING, "iot:Receive", f"topic/{topic_filter.replace('+', 'job-1')}")
    assert not allowed(extra, THING, "iot:Publish", "topic/$aws/things/other/jobs/start-next")


# -- the docs stand on their own --------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")
FORBIDDEN = [
    (re.compile(r"\.\./shared|/work/shared"), "the development notes"),
    (re.compile(r"(?<![\w./-])spec/"), "the spec folder"),
    (re.compile(r"\b(DESIGN|IOT_CORE|EXTENSIONS|STYLE)\.md\b"), "a development note"),
    (re.compile(r"\b[Ii]ssues? #?\d+|(?:^|\s)#\d+\b(?![-\w])"), "an issue number"),
]
# Pages another change is rewording, exempt from the note names only (not from links,
# ../shared, spec/ or issue numbers): remove an entry once its page is clean.
NOTE_NAMES_PENDING: set = set()  # pages allowed to name a development note: none


def headings_anchors(text: str) -> set:
    """GitHub's anchors for the headings of TEXT."""
    anchors = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        title = line.lstrip("#").strip().lower()
        title = re.sub(r"[^\w\- ]", "", title)
        anchors.add(title.replace(" ", "-"))
    return anchors


def prose(text: str) -> str:
    """TEXT without fenced code blocks (their `](` are not links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: p.name)
def test_links_point_at_files_and_headings_that_exist(page):
    text = page.read_text()
    for target in LINK.findall(prose(text)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to missing {target}"
        assert ROOT in dest.parents or dest == ROOT, f"{page.name}: link outside: {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in headings_anchors(dest.read_text()), \
                f"{page.name}: no heading for #{anchor} in {dest.name}"


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: p.name)
def test_no_reference_to_notes_a_clone_does_not_have(page):
    for number, line in enumerate(page.read_text().splitlines(), 1):
        for pattern, what in FORBIDDEN:
            if what == "a development note" and page.name in NOTE_NAMES_PENDING:
                continue
            assert not pattern.search(line), f"{page.name}:{number}: refers to {what}: {line}"
