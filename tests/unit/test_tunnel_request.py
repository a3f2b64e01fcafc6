"""Tunnel notifications, open-tunnel / close-tunnel files and the proxy's command line."""

import json
import re

import pytest

from chariotd.aws.tunnel_request import (BadTunnelRequest, TunnelRequest, notify_topic,
                                     parse_close_command, parse_notification,
                                     parse_open_command, plan, proxy_argv,
                                     proxy_environment)

TOKEN = "secret-destination-token"


def dumps(value) -> bytes:
    return json.dumps(value).encode()


def test_notification_as_aws_sends_it():
    request = parse_notification("dev1", dumps({
        "clientAccessToken": TOKEN, "clientMode": "destination", "region": "eu-west-1",
        "services": ["SSH", "VNC", "SSH"]}))
    assert request == TunnelRequest("dev1", "eu-west-1", ("SSH", "VNC"), TOKEN)
    assert TOKEN not in repr(request)
    assert notify_topic("dev1") == "$aws/things/dev1/tunnels/notify"


@pytest.mark.parametrize("payload,reason", [
    (b"not json", "not JSON"),
    (b"\xff", "not JSON"),
    (dumps([1]), "not a JSON object"),
    (dumps({"clientAccessToken": TOKEN, "clientMode": "source", "region": "r",
            "services": ["SSH"]}), "clientMode is 'source'"),
    (dumps({"clientMode": "destination", "region": "r", "services": ["SSH"]}),
     "'clientAccessToken' must be a non-empty string"),
    (dumps({"clientAccessToken": TOKEN, "clientMode": "destination", "region": "",
            "services": ["SSH"]}), "'region' must be"),
    (dumps({"clientAccessToken": TOKEN, "clientMode": "destination", "region": "r",
            "services": []}), "'services' must be a non-empty list"),
    (dumps({"clientAccessToken": TOKEN, "clientMode": "destination", "region": "r",
            "services": "SSH"}), "'services' must be a non-empty list"),
])
def test_bad_notifications(payload, reason):
    with pytest.raises(BadTunnelRequest, match=reason) as raised:
        parse_notification("dev1", payload)
    assert TOKEN not in str(raised.value)


def test_commands():
    request = parse_open_command(dumps({"thing": "dev1", "region": "r", "services": ["SSH"],
                                        "token": TOKEN}))
    assert request == TunnelRequest("dev1", "r", ("SSH",), TOKEN)
    assert parse_close_command(dumps({"thing": "dev1"})) == "dev1"
    with pytest.raises(BadTunnelRequest, match="'token' must be"):
        parse_open_command(dumps({"thing": "dev1", "region": "r", "services": ["SSH"]}))
    with pytest.raises(BadTunnelRequest, match="'thing' must be"):
        parse_close_command(dumps({"thing": 3}))
    with pytest.raises(BadTunnelRequest, match="not JSON"):
        parse_close_command(b"")


def test_plan_argv_and_environment():
    mapped, unmapped = plan(("VNC", "HTTP", "SSH"), {"SSH": 22, "VNC": 5900})
    assert mapped == [("VNC", 5900), ("SSH", 22)] and unmapped == ["HTTP"]
    assert proxy_argv("localproxy", mapped, None) == ["localproxy", "-d", "VNC=5900,SSH=22"]
    assert proxy_argv("/opt/lp", [("SSH", 22)], "/etc/ssl/certs") == [
        "/opt/lp", "-d", "SSH=22", "-c", "/etc/ssl/certs"]
    assert proxy_environment(TunnelRequest("t", "us-east-1", ("SSH",), TOKEN)) == {
        "AWSIOT_TUNNEL_ACCESS_TOKEN": TOKEN, "AWSIOT_TUNNEL_REGION": "us-east-1"}


def notification(**fields) -> bytes:
    return dumps({"clientAccessToken": TOKEN, "clientMode": "destination",
                  "region": "us-east-1", "services": ["SSH"], **fields})


@pytest.mark.parametrize("fields,reason", [
    ({"region": "us-east-1\u0000x"}, "'region' must be 1-64 letters, digits or '-'"),
    ({"region": "us-east-1\ud800"}, "'region' must be"),
    ({"region": "us east 1"}, "'region' must be"),
    ({"region": "r" * 65}, "'region' must be"),
    ({"clientAccessToken": "a\u0000b"}, "'clientAccessToken' must be 1-4096 printable"),
    ({"clientAccessToken": "a\udc80b"}, "'clientAccessToken' must be"),
    ({"clientAccessToken": "a\nb"}, "'clientAccessToken' must be"),
    ({"clientAccessToken": "t" * 4097}, "'clientAccessToken' must be"),
    ({"services": ["SSH\u0000"]}, "each of 'services' must be"),
    ({"services": ["SSH", "\x1b[2J"]}, "each of 'services' must be"),
    ({"services": ["S%d" % i for i in range(17)]}, "more than 16 services"),
])
def test_fields_that_cannot_reach_the_proxy_are_refused_where_they_enter(fields, reason):
    with pytest.raises(BadTunnelRequest, match=re.escape(reason)) as raised:
        parse_notification("dev1", notification(**fields))
    text = str(raised.value)
    assert TOKEN not in text and text.isprintable() and "a\u0000b" not in text


@pytest.mark.parametrize("fields,reason", [
    ({"token": "a\u0000b"}, "'token' must be 1-4096 printable ASCII"),
    ({"thing": "dev1\u0000"}, "'thing' must be 1-128 letters"),
    ({"thing": "dev/1"}, "'thing' must be"),
    ({"region": "eu\u0000"}, "'region' must be"),
])
def test_open_tunnel_fields_are_checked_too(fields, reason):
    document = {"thing": "dev1", "region": "r", "services": ["SSH"], "token": TOKEN, **fields}
    with pytest.raises(BadTunnelRequest, match=re.escape(reason)):
        parse_open_command(dumps(document))


def test_what_aws_sends_passes():
    token = "AQGAAXi" + "Ab-_+/=.~" * 60  # long and mixed, as real access tokens are
    request = parse_notification("dev1", notification(
        clientAccessToken=token, region="us-gov-west-1", services=["SSH", "RDP:3389"]))
    assert request.token == token and request.services == ("SSH", "RDP:3389")
