"""sd_notify spoken by hand: addresses, the watchdog environment, datagrams."""

import logging
import os
import socket
import types

import pytest

from chariotd.kernel.sdnotify import Notifier, socket_address, watchdog_seconds


@pytest.fixture
def receiver(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def test_addresses():
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract/name") == "\0abstract/name"
    assert socket_address("@") is None
    assert socket_address("relative/path") is None
    assert socket_address("vsock:2:1234") is None


@pytest.mark.parametrize("environ,pid,expected", [
    ({}, 10, None),
    ({"WATCHDOG_USEC": "30000000"}, 10, 30.0),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "10"}, 10, 0.5),
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "11"}, 10, None),  # meant for another
    ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "x"}, 10, None),
    ({"WATCHDOG_USEC": "0"}, 10, None),
    ({"WATCHDOG_USEC": "-5"}, 10, None),
    ({"WATCHDOG_USEC": "soon"}, 10, None),
])
def test_watchdog_environment(environ, pid, expected):
    assert watchdog_seconds(environ, pid) == expected


def test_from_environment_removes_the_variables(receiver):
    path, _ = receiver
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "42",
               "HOME": "/root"}
    notifier = Notifier.from_environment(environ, pid=42)
    assert notifier.enabled and notifier.watchdog == 2.0
    assert environ == {"HOME": "/root"}  # no child inherits them


def test_watchdog_without_a_socket_is_off():
    notifier = Notifier.from_environment({"WATCHDOG_USEC": "2000000"}, pid=1)
    assert not notifier.enabled and notifier.watchdog is None
    assert notifier.ready("x") is False and notifier.watchdog_ping() is False


def test_datagrams(receiver):
    path, sock = receiver
    notifier = Notifier(path, watchdog=1.0)
    assert notifier.ready("connected as dev1")
    assert sock.recv(4096) == b"READY=1\nSTATUS=connected as dev1"
    assert notifier.status("two\nlines")
    assert sock.recv(4096) == b"STATUS=two lines"  # a newline would start a new field
    assert notifier.watchdog_ping()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping("stopping: SIGTERM")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping: SIGTERM"
    notifier.close()


def test_no_watchdog_pings_unless_enabled(receiver):
    path, sock = receiver
    notifier = Notifier(path)
    assert notifier.watchdog_ping() is False
    notifier.status("x")
    assert sock.recv(4096) == b"STATUS=x"  # nothing was queued before it


def test_abstract_namespace():
    name = f"chariotd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        notifier = Notifier.from_environment({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_a_vanished_systemd_is_logged_once(tmp_path, caplog):
    notifier = Notifier(str(tmp_path / "gone"))
    with caplog.at_level(logging.WARNING):
        assert notifier.status("a") is False
        assert notifier.status("b") is False
    assert len(caplog.records) == 1 and "cannot notify systemd" in caplog.text


def test_link_health_for_the_watchdog():
    from chariotd.broker_link import main as link_main

    link = object.__new__(link_main.Link)  # only the state and the clock matter here
    now = [100.0]
    link.clock = lambda: now[0]
    link.deadlines = link_main.Deadlines()
    link.connection = types.SimpleNamespace()
    deadline = 2 * max(link.deadlines.connack, link.deadlines.suback)
    for state in (link_main.WAITING, link_main.CONNECTING, link_main.SUBSCRIBING,
                  link_main.UP):
        link.connection.state, link.connection.since = state, now[0] - deadline + 1
        assert link.healthy(), state
        link.connection.since = now[0] - deadline - 1
        stuck = state in (link_main.CONNECTING, link_main.SUBSCRIBING)
        assert link.healthy() is not stuck, state
