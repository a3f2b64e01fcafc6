"""kernel/mqtt/proxy.py: the CONNECT request, the bounded read of the proxy's answer,
no_proxy, and --http-proxy's parsing in cli.py (the password never shown)."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time

import pytest
from hypothesis import given, strategies as st

from chariotd import cli
from chariotd.config import ConfigError, HttpProxy
from chariotd.kernel.mqtt import proxy
from chariotd.kernel.mqtt.proxy import ProxyRefused
from chariotd.kernel.mqtt.session import blames_certificate

PROXY = HttpProxy("127.0.0.1", 3128, "dev", "p@ss:word")


def test_request_has_host_and_basic_auth():
    text = proxy.request(PROXY, "abc-ats.iot.eu-west-1.amazonaws.com", 443).decode()
    assert text.startswith("CONNECT abc-ats.iot.eu-west-1.amazonaws.com:443 HTTP/1.1\r\n")
    assert "\r\nHost: abc-ats.iot.eu-west-1.amazonaws.com:443\r\n" in text
    token = base64.b64encode(b"dev:p@ss:word").decode()
    assert f"\r\nProxy-Authorization: Basic {token}\r\n" in text
    assert text.endswith("\r\n\r\n")


def test_request_without_user_has_no_authorization():
    text = proxy.request(HttpProxy("p", 1), "::1", 8883).decode()
    assert text.startswith("CONNECT [::1]:8883 HTTP/1.1") and "Authorization" not in text


def test_password_is_never_in_repr_or_str():
    config = cli.parse(["--clientid=d", "--cacert=c", "--certstore=s",
                        "--http-proxy=http://dev:hunter2@proxy.lan:3128"])
    assert config.http_proxy == HttpProxy("proxy.lan", 3128, "dev", "hunter2")
    for text in (repr(config), str(config), repr(config.http_proxy), str(config.http_proxy)):
        assert "hunter2" not in text
    assert str(config.http_proxy) == "proxy.lan:3128"


@pytest.mark.parametrize("url, said", [
    ("https://h:1", "scheme must be http"), ("socks5://h:1", "scheme must be http"),
    ("http://h", "no proxy port"), ("http://h:0", "no proxy port"),
    ("http://:1", "no proxy host"), ("http://h:x", "not a URL"),
    ("http://h:70000", "not a URL"), ("http://h:1/path", "no path"), ("h:1", "scheme"),
    ("http://u:hunter2@h:1?q", "no path"),
])
def test_bad_urls_are_config_errors_without_the_url(url, said):
    with pytest.raises(ConfigError) as error:
        cli.parse_proxy_url(url)
    assert said in str(error.value) and "hunter2" not in str(error.value)


def test_env_mode_reads_https_proxy_then_upper_case_and_no_proxy():
    env = {"HTTPS_PROXY": "http://u:pw@up:8080", "NO_PROXY": "a.com, .b.org,,"}
    assert cli.http_proxy("env", env) == HttpProxy("up", 8080, "u", "pw", ("a.com", ".b.org"))
    env["https_proxy"] = "http://low:1"
    assert cli.http_proxy("env", env).host == "low"
    assert cli.http_proxy("env", {}) is None
    assert cli.http_proxy(None, env) is None
    with pytest.raises(ConfigError, match="https_proxy"):
        cli.http_proxy("env", {"https_proxy": "socks5://h:1"})


@pytest.mark.parametrize("host, entries, direct", [
    ("x.iot.amazonaws.com", ["amazonaws.com"], True),
    ("x.iot.amazonaws.com", [".amazonaws.com"], True),
    ("x.iot.amazonaws.com", ["*"], True),
    ("x.iot.amazonaws.com", ["zonaws.com"], False),
    ("x.iot.amazonaws.com", ["amazonaws.com:443"], True),
    ("127.0.0.1", ["127.0.0.1"], True),
    ("127.0.0.1", ["localhost", ""], False),
    ("X.Example.COM.", ["example.com"], True),
])
def test_no_proxy(host, entries, direct):
    assert proxy.bypassed(host, entries) is direct


@pytest.mark.parametrize("answer, status", [
    (b"HTTP/1.1 200 Connection established", (200, "Connection established")),
    (b"HTTP/1.0 200", (200, "")),
    (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic",
     (407, "Proxy Authentication Required")),
])
def test_parse_answer(answer, status):
    assert proxy.parse_answer(answer) == status


@given(st.binary(max_size=300))
def test_parse_answer_takes_any_bytes(data):
    try:
        status, reason = proxy.parse_answer(data)
    except ValueError as error:
        text = str(error)
    else:
        assert 0 <= status <= 999
        text = reason
    assert text.isprintable() and len(text) < 200


def serve_once(answer: bytes, delay: float = 0.0):
    """A one-shot 'proxy' on loopback: reads the request, waits DELAY, sends ANSWER."""
    server = socket.create_server(("127.0.0.1", 0))
    seen = []

    def run():
        conn, _ = server.accept()
        with conn:
            seen.append(conn.recv(4096))
            time.sleep(delay)
            try:
                conn.sendall(answer)
                time.sleep(0.3)
            except OSError:
                pass
        server.close()

    threading.Thread(target=run, daemon=True).start()
    return HttpProxy("127.0.0.1", server.getsockname()[1]), seen


def test_tunnel_opens_on_200():
    where, seen = serve_once(b"HTTP/1.1 200 OK\r\nVia: test\r\n\r\n")
    sock = proxy.open_tunnel(where, "endpoint", 8883, 2.0)
    sock.close()
    assert seen[0].startswith(b"CONNECT endpoint:8883 HTTP/1.1\r\n")


@pytest.mark.parametrize("answer, said", [
    (b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
     "refused CONNECT: 407 Proxy Authentication Required"),
    (b"HTTP/1.1 403 \x1b[31mForbidden\r\n\r\n", "refused CONNECT: 403 ?[31mForbidden"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "answered CONNECT with not an HTTP answer"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 2000, "more than 8192 bytes"),
    (b"HTTP/1.1 200 OK\r\n\r\nextra", "sent data after its answer"),
    (b"HTTP/1.1 200 OK\r\n", "closed the connection before answering"),
])
def test_bad_answers_are_proxy_refusals_naming_the_proxy(answer, said):
    where, _ = serve_once(answer)
    with pytest.raises(ProxyRefused) as error:
        proxy.open_tunnel(where, "endpoint", 8883, 2.0)
    assert said in str(error.value) and f"proxy 127.0.0.1:{where.port}" in str(error.value)
    assert not blames_certificate(error.value)


def test_silent_proxy_meets_the_deadline():
    where, _ = serve_once(b"HTTP/1.1 200 OK\r\n\r\n", delay=3.0)
    started = time.monotonic()
    with pytest.raises(ProxyRefused, match="did not answer CONNECT in time"):
        proxy.open_tunnel(where, "endpoint", 8883, 0.3)
    assert time.monotonic() - started < 1.5


def test_unreachable_proxy_is_not_the_certificates_fault():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(ProxyRefused, match=f"cannot reach proxy 127.0.0.1:{port}"):
        proxy.open_tunnel(HttpProxy("127.0.0.1", port), "endpoint", 8883, 1.0)


def test_certificate_still_blamed_for_other_failures():
    assert blames_certificate(ssl.SSLError("alert"))
    assert blames_certificate(ConnectionResetError())


def test_paho_makes_its_socket_where_the_client_overrides_it():
    """The one paho method overridden exists and is what connect() calls."""
    import paho.mqtt.client as mqtt
    assert "_create_socket_connection" in mqtt.Client.__dict__
    from chariotd.kernel.mqtt.session import BoundedClient
    assert "_create_socket_connection" in BoundedClient.__dict__
