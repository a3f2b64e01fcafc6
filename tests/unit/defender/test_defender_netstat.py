"""defender/netstat.py: the kernel's socket and interface tables read as Device Defender
reports them; real sockets opened here are found in this machine's /proc."""

import ipaddress
import socket
import struct
from contextlib import ExitStack

import pytest
from hypothesis import given, strategies as st

from chariotd.defender import netstat
from chariotd.defender.netstat import Connection, Counters, ListeningPort


def kernel_address(address: str, port: int) -> str:
    """ADDRESS:PORT as the kernel prints it in /proc/net/tcp[6] (host-order words)."""
    raw = ipaddress.ip_address(address).packed
    words = struct.unpack(f"={len(raw) // 4}I", raw)
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def row(local, lport, remote, rport, state):
    return (f"   0: {kernel_address(local, lport)} {kernel_address(remote, rport)} "
            f"{state:02X} 00000000:00000000 00:00000000 00000000     0        0 1 1 0")


HEADING = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when "
           "retrnsmt   uid  timeout inode")
ADDRESSES = {ipaddress.ip_address("127.0.0.1"): "lo", ipaddress.ip_address("::1"): "lo",
             ipaddress.ip_address("192.0.2.2"): "eth0",
             ipaddress.ip_address("fd00::2"): "eth0"}


# ---- pure parsers -------------------------------------------------------------

@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(0, 65535))
def test_socket_address_round_trip(address, port):
    parsed, parsed_port = netstat.parse_socket_address(kernel_address(str(address), port))
    assert (parsed, parsed_port) == (address, port)


def test_loopback_row_as_little_endian_kernel_prints_it():
    # 127.0.0.1:631 on x86 as /proc/net/tcp shows it
    if struct.pack("=I", 1) != b"\x01\0\0\0":
        pytest.skip("the literal below is a little-endian kernel's")
    assert netstat.parse_socket_address("0100007F:0277") == (
        ipaddress.ip_address("127.0.0.1"), 631)


@given(st.text(max_size=300))
def test_odd_socket_lines_never_raise(text):
    table = netstat.parse_sockets(text.splitlines())
    assert table.rows == [] or all(isinstance(r, netstat.SocketRow) for r in table.rows)


def test_odd_and_overlong_lines_are_counted_and_skipped():
    lines = [HEADING, row("127.0.0.1", 22, "0.0.0.0", 0, 0x0A), "garbage here",
             "   1: ZZZZZZZZ:0016 00000000:0000 0A", "x" * 5000,
             row("127.0.0.1", 23, "0.0.0.0", 0, 0x0A)]
    table = netstat.parse_sockets(lines)
    assert [r.local_port for r in table.rows] == [22, 23]
    assert table.odd_lines == 3


def test_rows_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(netstat, "MAX_ROWS", 5)
    lines = [row("127.0.0.1", 1000 + i, "0.0.0.0", 0, 0x0A) for i in range(20)]
    table = netstat.parse_sockets(lines)
    assert len(table.rows) == 5 and table.dropped == 15


def test_ipv4_mapped_peer_is_reported_as_ipv4():
    lines = [row("::ffff:127.0.0.1", 8883, "::ffff:127.0.0.1", 40000, 0x01)]
    rows = netstat.parse_sockets(lines).rows
    assert netstat.connections(rows, ADDRESSES) == [
        Connection("127.0.0.1:40000", 8883, "lo")]


def test_listeners_udp_and_interfaces():
    tcp = netstat.parse_sockets([
        HEADING,
        row("0.0.0.0", 22, "0.0.0.0", 0, 0x0A),           # everywhere (IPv4)
        row("::", 22, "::", 0, 0x0A),                      # everywhere (IPv6): same entry
        row("127.0.0.1", 22, "0.0.0.0", 0, 0x0A),          # subsumed by the wildcard
        row("127.0.0.53", 53, "0.0.0.0", 0, 0x0A),         # loopback, not listed exactly
        row("fd00::2", 443, "::", 0, 0x0A),
        row("192.0.2.2", 443, "0.0.0.0", 0, 0x0A),         # same port, same interface
        row("10.9.9.9", 80, "0.0.0.0", 0, 0x0A),           # no interface holds it
        row("192.0.2.2", 50000, "198.51.100.7", 443, 0x01),
        row("192.0.2.2", 50001, "198.51.100.7", 443, 0x06),  # TIME_WAIT: not reported
    ]).rows
    listeners = [r for r in tcp if netstat.is_tcp_listener(r)]
    assert netstat.listening_ports(listeners, ADDRESSES) == [
        ListeningPort(22, None), ListeningPort(53, "lo"), ListeningPort(80, None),
        ListeningPort(443, "eth0")]
    established = [r for r in tcp if netstat.is_established(r)]
    assert netstat.connections(established, ADDRESSES) == [
        Connection("198.51.100.7:443", 50000, "eth0")]
    udp = netstat.parse_sockets([
        row("0.0.0.0", 5353, "0.0.0.0", 0, 0x07),
        row("fd00::2", 547, "::", 0, 0x07),
        row("192.0.2.2", 40000, "192.0.2.1", 53, 0x01),  # connected: not listening
    ], netstat.is_udp_listener).rows
    assert netstat.listening_ports(udp, ADDRESSES) == [
        ListeningPort(547, "eth0"), ListeningPort(5353, None)]


def test_if_inet6_and_ifconf_parsers():
    lines = ["00000000000000000000000000000001 01 80 10 80       lo",
             "fd000000000000000000000000000002 02 40 00 80     eth0",
             "nonsense", "fe80 02 40 20 80 eth0"]
    assert netstat.parse_if_inet6(lines) == {
        ipaddress.ip_address("::1"): "lo", ipaddress.ip_address("fd00::2"): "eth0"}
    size = 40

    def ifreq(name, family, address):
        record = name.ljust(16, b"\0") + struct.pack("=H", family) + b"\0\0"
        return (record + ipaddress.IPv4Address(address).packed).ljust(size, b"\0")
    buffer = (ifreq(b"lo", socket.AF_INET, "127.0.0.1")
              + ifreq(b"eth0:1", socket.AF_INET, "192.0.2.9")
              + ifreq(b"weird", socket.AF_INET6, "1.2.3.4") + b"\x01\x02")
    assert netstat.parse_ifconf(buffer, size) == {
        ipaddress.ip_address("127.0.0.1"): "lo", ipaddress.ip_address("192.0.2.9"): "eth0"}


NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000  10    0    0    0     0          0         0 1000  10    0    0    0     0       0          0
  eth0: 5000   50    0    0    0     0          0         0  700   7    0    0    0     0       0          0
  bad0: x y
"""


def test_net_dev_parser():
    assert netstat.parse_net_dev(NET_DEV.splitlines()) == {
        "lo": Counters(1000, 1000, 10, 10), "eth0": Counters(5000, 700, 50, 7)}


@given(st.text(max_size=400))
def test_odd_net_dev_never_raises(text):
    for counters in netstat.parse_net_dev(text.splitlines()).values():
        assert min(counters.bytes_in, counters.packets_out) >= 0


@pytest.mark.parametrize("previous,current,moved", [
    (100, 150, 50),
    ((1 << 32) - 10, 5, 15),            # a 32-bit counter wrapped
    ((1 << 64) - 10, 5, 15),            # a 64-bit counter wrapped
    (5_000_000_000, 100, 100),          # a 64-bit counter reset: counts from zero
    (1000, 10, 10),                     # a small counter reset
])
def test_counter_delta_wrap_and_reset(previous, current, moved):
    assert netstat.counter_delta(previous, current) == moved


@given(st.integers(0, (1 << 64) - 1), st.integers(0, (1 << 64) - 1))
def test_counter_delta_never_negative(previous, current):
    assert netstat.counter_delta(previous, current) >= 0


def test_traffic_baseline_zero_first_then_deltas_without_loopback():
    baseline = netstat.TrafficBaseline()
    first = {"lo": Counters(1, 1, 1, 1), "eth0": Counters(100, 10, 5, 1)}
    assert baseline.measure(first) == Counters()
    baseline.commit(first)
    later = {"lo": Counters(9, 9, 9, 9), "eth0": Counters(150, 30, 6, 3),
             "wlan0": Counters(7, 7, 1, 1)}                # new interface: all of it
    assert baseline.measure(later) == Counters(57, 27, 2, 3)
    assert baseline.measure(later) == Counters(57, 27, 2, 3)  # measure moves nothing
    baseline.commit(later)
    assert baseline.measure(later) == Counters()


# ---- this machine's tables ----------------------------------------------------

def _listen(stack, family, kind, address):
    sock = stack.enter_context(socket.socket(family, kind))
    if family == socket.AF_INET6 and address == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, 0))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock, sock.getsockname()[1]


def _non_loopback_ipv4():
    addresses, _ = netstat.interface_addresses()
    return next(((str(a), n) for a, n in addresses.items()
                 if a.version == 4 and not a.is_loopback), None)


def test_real_listeners_of_every_family_and_address_are_found():
    binds = [(socket.AF_INET, "127.0.0.1", "lo"), (socket.AF_INET6, "::1", "lo"),
             (socket.AF_INET, "0.0.0.0", None), (socket.AF_INET6, "::", None)]
    extra = _non_loopback_ipv4()
    if extra:
        binds.append((socket.AF_INET, extra[0], extra[1]))
    with ExitStack() as stack:
        want_tcp, want_udp = set(), set()
        for family, address, interface in binds:
            _, port = _listen(stack, family, socket.SOCK_STREAM, address)
            want_tcp.add(ListeningPort(port, interface))
            _, port = _listen(stack, family, socket.SOCK_DGRAM, address)
            want_udp.add(ListeningPort(port, interface))
        view = netstat.read_network()
    assert want_tcp <= set(view.tcp_ports)
    assert want_udp <= set(view.udp_ports)
    assert view.notes == []


@pytest.mark.parametrize("family,address", [(socket.AF_INET, "127.0.0.1"),
                                            (socket.AF_INET6, "::1")])
def test_real_established_connection_is_found(family, address):
    with ExitStack() as stack:
        server, port = _listen(stack, family, socket.SOCK_STREAM, address)
        client = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
        client.connect((address, port))
        stack.enter_context(server.accept()[0])
        client_port = client.getsockname()[1]
        view = netstat.read_network()
    assert Connection(f"{address}:{port}", client_port, "lo") in view.connections
    assert Connection(f"{address}:{client_port}", port, "lo") in view.connections


def test_real_counters_move_after_traffic():
    lines, _ = netstat.read_lines("/proc/net/dev")
    before = netstat.parse_net_dev(lines)
    with ExitStack() as stack:
        receiver, port = _listen(stack, socket.AF_INET, socket.SOCK_DGRAM, "127.0.0.1")
        sender = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        for _ in range(20):
            sender.sendto(b"x" * 1000, ("127.0.0.1", port))
            receiver.recv(2000)
    lines, _ = netstat.read_lines("/proc/net/dev")
    after = netstat.parse_net_dev(lines)
    moved = netstat.traffic_delta(before, after, exclude=())  # loopback traffic counted here
    assert moved.bytes_out >= 20_000 and moved.packets_out >= 20
    assert moved.bytes_in >= 20_000 and moved.packets_in >= 20
    assert after["lo"].bytes_in - before["lo"].bytes_in >= 20_000


def test_read_lines_keeps_whole_lines_within_the_bound(tmp_path):
    path = tmp_path / "table"
    path.write_text("".join(f"line {i}\n" for i in range(1000)))
    lines, truncated = netstat.read_lines(str(path), 100)
    assert truncated and lines == [f"line {i}" for i in range(len(lines))]
    assert sum(len(x) + 1 for x in lines) <= 100
    assert netstat.read_lines(str(tmp_path / "missing")) == ([], False)


def test_fake_proc_with_odd_tables_gives_notes(tmp_path):
    (tmp_path / "tcp").write_text(HEADING + "\nnot a row\n"
                                  + row("0.0.0.0", 22, "0.0.0.0", 0, 0x0A) + "\n")
    (tmp_path / "udp").write_text("\0\0\0\n")
    (tmp_path / "dev").write_text(NET_DEV)
    view = netstat.read_network(str(tmp_path))
    assert view.tcp_ports == [ListeningPort(22, None)]
    assert view.udp_ports == [] and view.connections == []
    assert "eth0" in view.counters
    assert any("tcp: 1 lines not understood" in note for note in view.notes)
