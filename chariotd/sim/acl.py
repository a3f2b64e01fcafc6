"""Mosquitto ACL text for the simulator: what a device may do on reserved topics.

AWS lets a device publish only on the request topics of its services and read their
replies (IOT_CORE.md §1, §2.1, §3, §7.1, §8.1); the replies are the service's alone, so a
device can never forge a shadow delta or a provisioning certificate for another client.
Here a device gets ``write`` on request topics and ``read`` on reply topics of its own
thing (Mosquitto's ``%u``: the certificate's CN), the provisioning topics, and Basic
Ingest (``$aws/rules/...``, write only). The simulator's own identity (``iotsim``) may
use every topic. Certificates registered by fleet provisioning get the same thing rules
for their thing's name (``registered_entries``).
"""

from __future__ import annotations

from typing import Iterable, List, Tuple

SERVICE_USER = "iotsim"

_SHADOW_OPS = ("get", "update", "delete")
_JOBS = "jobs"


def _thing_rules() -> List[Tuple[str, str]]:
    """(access, topic below $aws/things/THING/) for one thing, requests then replies."""
    rules: List[Tuple[str, str]] = []
    for prefix in ("shadow", "shadow/name/+"):
        rules += [("write", f"{prefix}/{op}") for op in _SHADOW_OPS]
        rules += [("read", f"{prefix}/{op}/{reply}") for op in _SHADOW_OPS
                  for reply in ("accepted", "rejected")]
        rules += [("read", f"{prefix}/update/{event}") for event in ("delta", "documents")]
    # Jobs (§7.1): get, start-next, {jobId}/get, {jobId}/update and their replies
    requests = ("get", "start-next", "+/get", "+/update")
    rules += [("write", f"{_JOBS}/{request}") for request in requests]
    rules += [("read", f"{_JOBS}/{request}/{reply}") for request in requests
              for reply in ("accepted", "rejected")]
    rules += [("read", f"{_JOBS}/notify"), ("read", f"{_JOBS}/notify-next")]
    # Device Defender (§8.1)
    for fmt in ("json", "cbor"):
        rules.append(("write", f"defender/metrics/{fmt}"))
        rules += [("read", f"defender/metrics/{fmt}/{reply}") for reply in ("accepted", "rejected")]
    # Secure tunneling (§4): subscribe only
    rules.append(("read", "tunnels/notify"))
    return rules


THING_RULES = tuple(_thing_rules())


def _provisioning_rules() -> List[Tuple[str, str]]:
    """(access, topic) of fleet provisioning (§3): requests and their replies."""
    rules: List[Tuple[str, str]] = []
    for request in ("$aws/certificates/create", "$aws/certificates/create-from-csr",
                    "$aws/provisioning-templates/+/provision"):
        for fmt in ("json", "cbor"):
            rules.append(("write", f"{request}/{fmt}"))
            rules += [("read", f"{request}/{fmt}/{reply}") for reply in ("accepted", "rejected")]
    return rules


PROVISIONING_RULES = tuple(_provisioning_rules())


def thing_lines(keyword: str, thing: str) -> List[str]:
    """ACL lines giving THING's topics: KEYWORD 'pattern' with thing '%u', or 'topic'."""
    return [f"{keyword} {access} $aws/things/{thing}/{topic}" for access, topic in THING_RULES]


def _join(lines: Iterable[str]) -> str:
    return "\n".join(lines) + "\n"


# $iotsim/: the cloud-side commands (job create, ...) that the CLI sends to the service.
DEFAULT_ACL = _join(
    [f"user {SERVICE_USER}", "topic readwrite #", "topic readwrite $aws/#",
     "topic readwrite $iotsim/#", ""]
    + thing_lines("pattern", "%u")
    + [f"pattern {access} {topic}" for access, topic in PROVISIONING_RULES]
    + ["pattern write $aws/rules/#"])

# Devices may publish and subscribe to ordinary topics as well ('#' never covers $aws).
OPEN_ACL = DEFAULT_ACL + "pattern readwrite #\n"


def registered_entries(certificates: Iterable[dict]) -> str:
    """ACL lines giving each registered, active certificate (CN prov-...) its thing's topics."""
    lines: List[str] = []
    for cert in certificates:
        if cert.get("status") == "ACTIVE" and cert.get("thingName"):
            lines += [f"user {cert['commonName']}"] + thing_lines("topic", cert["thingName"])
    return _join(lines) if lines else ""
