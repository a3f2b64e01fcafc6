"""Secure tunneling requests as values (EXTENSIONS C, IOT_CORE.md section 4): reading a
tunnel notification or an open-tunnel / close-tunnel command file, and the local proxy's
command line and environment. No I/O here (pure: the standard library and formats/
only); the applier's `services/tunnels.py` runs it; the link subscribes to
`notify_topic`.

The access token is a secret: it is kept out of every repr and every error text.

Every field is checked where it enters, since it goes on to the proxy's environment and
command line and into log lines: printable, bounded, and for the names and the region
the characters AWS uses. A field that is not is refused with a reason that never
repeats the value.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from dataclasses import dataclass, field

from chariotd.formats import FormatError
from chariotd.formats.json import load as load_json

NOTIFY_TOPIC = "$aws/things/{thing}/tunnels/notify"

# field: (pattern the whole value matches, what it must be, as the error says it)
_FIELDS = {
    # AWS thing names: 1-128 of these characters
    "thing": (re.compile(r"[A-Za-z0-9:_-]{1,128}"),
              "1-128 letters, digits, ':', '_' or '-'"),
    # AWS region names (us-east-1, cn-north-1, us-gov-west-1)
    "region": (re.compile(r"[A-Za-z0-9-]{1,64}"), "1-64 letters, digits or '-'"),
    # a client access token: printable ASCII with no space, of a bounded length
    "token": (re.compile(r"[!-~]{1,4096}"), "1-4096 printable ASCII characters, no space"),
    "clientAccessToken": (re.compile(r"[!-~]{1,4096}"),
                          "1-4096 printable ASCII characters, no space"),
    # a service name: AWS allows up to 3 per tunnel; they are matched against
    # --tunnelmappings and the ones that are not are named in a log line
    "service": (re.compile(r"[A-Za-z0-9:_.-]{1,128}"),
                "1-128 letters, digits, ':', '_', '.' or '-'"),
}
MAX_SERVICES = 16


class BadTunnelRequest(ValueError):
    """A notification or command that cannot be carried out; the text says why and never
    contains the token."""


@dataclass(frozen=True)
class TunnelRequest:
    thing: str
    region: str
    services: Tuple[str, ...]
    token: str = field(repr=False)  # never shown by repr


def notify_topic(thing: str) -> str:
    return NOTIFY_TOPIC.format(thing=thing)


def _object(data: bytes) -> dict:
    try:
        document = load_json(data)
    except FormatError:
        raise BadTunnelRequest("not JSON") from None
    if not isinstance(document, dict):
        raise BadTunnelRequest("not a JSON object")
    return document


def _valid(field: str, value: str) -> bool:
    return _FIELDS[field][0].fullmatch(value) is not None


def _text(document: dict, key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadTunnelRequest(f"{key!r} must be a non-empty string")
    if not _valid(key, value):
        raise BadTunnelRequest(f"{key!r} must be {_FIELDS[key][1]}")
    return value


def _services(document: dict) -> Tuple[str, ...]:
    value = document.get("services")
    if not isinstance(value, list) or not value or not all(
            isinstance(name, str) and name for name in value):
        raise BadTunnelRequest("'services' must be a non-empty list of names")
    if len(value) > MAX_SERVICES:
        raise BadTunnelRequest(f"'services' names more than {MAX_SERVICES} services")
    if not all(_valid("service", name) for name in value):
        raise BadTunnelRequest(f"each of 'services' must be {_FIELDS['service'][1]}")
    return tuple(dict.fromkeys(value))  # duplicates dropped, order kept


def parse_notification(thing: str, payload: bytes) -> TunnelRequest:
    """What AWS publishes on THING's notify topic when a tunnel opens:
    `{"clientAccessToken","clientMode","region","services"}`. Only `destination` mode
    starts a proxy on a device."""
    document = _object(payload)
    mode = document.get("clientMode")
    if mode != "destination":
        raise BadTunnelRequest(f"clientMode is {mode!r}, not 'destination'")
    return TunnelRequest(thing=thing, region=_text(document, "region"),
                         services=_services(document),
                         token=_text(document, "clientAccessToken"))


def parse_open_command(data: bytes) -> TunnelRequest:
    """An open-tunnel command file: `{"thing","region","services","token"}`."""
    document = _object(data)
    return TunnelRequest(thing=_text(document, "thing"), region=_text(document, "region"),
                         services=_services(document), token=_text(document, "token"))


def parse_close_command(data: bytes) -> str:
    """A close-tunnel command file: `{"thing"}`; returns the thing."""
    return _text(_object(data), "thing")


def plan(requested: Sequence[str], mapping: Dict[str, int]
         ) -> Tuple[List[Tuple[str, int]], List[str]]:
    """(mapped services with their ports, in the requested order; requested services
    that have no mapping)."""
    mapped = [(name, mapping[name]) for name in requested if name in mapping]
    unmapped = [name for name in requested if name not in mapping]
    return mapped, unmapped


def proxy_argv(proxy: str, mapped: Sequence[Tuple[str, int]],
               cadir: Optional[str]) -> List[str]:
    """`PROXY -d SVC=PORT,... [-c CADIR]`: localproxy in destination mode."""
    argv = [proxy, "-d", ",".join(f"{name}={port}" for name, port in mapped)]
    if cadir:
        argv += ["-c", cadir]
    return argv


def proxy_environment(request: TunnelRequest) -> Dict[str, str]:
    return {"AWSIOT_TUNNEL_ACCESS_TOKEN": request.token,
            "AWSIOT_TUNNEL_REGION": request.region}
