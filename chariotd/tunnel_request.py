"""Secure tunneling requests as values (EXTENSIONS C, IOT_CORE.md section 4): reading a
tunnel notification or an open-tunnel / close-tunnel command file, and the local proxy's
command line and environment. No I/O here; the applier's `services/tunnels.py` runs it.

The access token is a secret: it is kept out of every repr and every error text.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

from chariotd.formats import FormatError
from chariotd.formats.json import load as load_json
from chariotd.record import Record

NOTIFY_TOPIC = "$aws/things/{thing}/tunnels/notify"


class BadTunnelRequest(ValueError):
    """A notification or command that cannot be carried out; the text says why and never
    contains the token."""


class TunnelRequest(Record, frozen=True, hidden=("token",)):
    thing: str
    region: str
    services: Tuple[str, ...]
    token: str  # never shown by repr


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


def _text(document: dict, key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadTunnelRequest(f"{key!r} must be a non-empty string")
    return value


def _services(document: dict) -> Tuple[str, ...]:
    value = document.get("services")
    if not isinstance(value, list) or not value or not all(
            isinstance(name, str) and name for name in value):
        raise BadTunnelRequest("'services' must be a non-empty list of names")
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
