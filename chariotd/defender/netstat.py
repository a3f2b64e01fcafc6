"""What the device's own network looks like, from the kernel's tables (IOT_CORE.md 8.2).

Pure parsers of `/proc/net/{tcp,tcp6,udp,udp6}`, `/proc/net/if_inet6` and
`/proc/net/dev`, the rules that turn their rows into Device Defender's blocks, and a thin
reader (`read_network`) of this machine's tables. Better than AWS's device client
(IOT_CORE.md 8.5): IPv6 as well as IPv4, listeners on every address (0.0.0.0 and ::)
kept (reported without an interface, since they are on all of them), UDP ports found
(an unconnected bound UDP socket is state 07, not LISTEN), interface names for IPv6 too.

Nothing here trusts the tables' shape: an odd line is counted and skipped, lines and
files are read to a bound, and at most MAX_ROWS rows of a table are kept.
"""

from __future__ import annotations

import array
import errno
import fcntl
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

PROC_NET = "/proc/net"
MAX_PROC_BYTES = 4 << 20  # of one table: ~27,000 sockets; the rest is left unread
MAX_LINE = 512            # a socket row is ~150 characters; a longer line is odd
MAX_ROWS = 4096           # rows kept from one table (listeners and connections only)
MAX_INTERFACES = 1024     # rows kept from /proc/net/dev and interface addresses

TCP_ESTABLISHED = 0x01
TCP_LISTEN = 0x0A
UDP_UNCONNECTED = 0x07    # TCP_CLOSE: how the kernel shows a bound, unconnected UDP socket
LOOPBACK_INTERFACE = "lo"  # the loopback device's name in every network namespace


@dataclass(frozen=True)
class SocketRow:
    """One row of /proc/net/{tcp,udp}[6]."""
    local: IPAddress
    local_port: int
    remote: IPAddress
    remote_port: int
    state: int


@dataclass(frozen=True)
class ListeningPort:
    port: int
    interface: Optional[str]  # None: bound to every address, or to one no interface holds


@dataclass(frozen=True)
class Connection:
    remote_addr: str  # "ip:port"; an IPv6 address is written as is, without brackets
    local_port: int
    local_interface: Optional[str]


@dataclass(frozen=True)
class Counters:
    bytes_in: int = 0
    bytes_out: int = 0
    packets_in: int = 0
    packets_out: int = 0


@dataclass
class Table:
    """Rows read from one table, and how many lines were odd or left unread."""
    rows: list = field(default_factory=list)
    odd_lines: int = 0
    dropped: int = 0


def _unmapped(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (a dual-stack socket's IPv4 peer) as plain IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_socket_address(text: str) -> Tuple[IPAddress, int]:
    """`0100007F:0277` or 32 hex digits and a port, as /proc/net/tcp[6] prints them.

    The kernel prints each 32-bit word of the address as a host-order integer, so the
    bytes are put back in network order with the machine's own byte order (right on
    little- and big-endian devices alike). ValueError when TEXT is not one."""
    host, sep, port_hex = text.partition(":")
    if not sep or len(port_hex) != 4 or len(host) not in (8, 32):
        raise ValueError(f"not an address:port: {text[:64]!r}")
    words = [int(host[i:i + 8], 16) for i in range(0, len(host), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    address = ipaddress.ip_address(raw)
    return address, int(port_hex, 16)


def parse_sockets(lines: Iterable[str], keep=None) -> Table:
    """The rows of a socket table (its heading line skipped) for which KEEP(row) holds
    (every row without KEEP), at most MAX_ROWS of them."""
    table = Table()
    for number, line in enumerate(lines):
        if number == 0 and "local_address" in line:
            continue
        fields = line.split(None, 5) if len(line) <= MAX_LINE else []
        try:
            if len(fields) < 4 or not fields[0].endswith(":"):
                raise ValueError(line[:64])
            local, local_port = parse_socket_address(fields[1])
            remote, remote_port = parse_socket_address(fields[2])
            if len(fields[3]) != 2:
                raise ValueError(fields[3][:8])
            row = SocketRow(_unmapped(local), local_port, _unmapped(remote), remote_port,
                            int(fields[3], 16))
        except ValueError:
            if line.strip():
                table.odd_lines += 1
            continue
        if keep is not None and not keep(row):
            continue
        if len(table.rows) < MAX_ROWS:
            table.rows.append(row)
        else:
            table.dropped += 1
    return table


def is_tcp_listener(row: SocketRow) -> bool:
    return row.state == TCP_LISTEN and row.local_port > 0


def is_udp_listener(row: SocketRow) -> bool:
    """A bound UDP socket not connected to a peer: it takes datagrams from anyone."""
    return (row.state == UDP_UNCONNECTED and row.local_port > 0 and row.remote_port == 0
            and row.remote.is_unspecified)


def is_established(row: SocketRow) -> bool:
    return row.state == TCP_ESTABLISHED and row.remote_port > 0


InterfaceAddresses = Mapping[IPAddress, str]


def interface_of(address: IPAddress, addresses: InterfaceAddresses) -> Optional[str]:
    """The interface holding ADDRESS; any loopback address is the loopback interface's
    (127.0.0.53 is on `lo` though only 127.0.0.1/8 is listed); None for the
    unspecified address (every interface) or one no interface holds."""
    address = _unmapped(address)
    if address.is_unspecified:
        return None
    name = addresses.get(address)
    if name is None and address.is_loopback:
        name = next((n for a, n in addresses.items() if a.is_loopback
                     and a.version == address.version), None)
    return name


def listening_ports(rows: Iterable[SocketRow],
                    addresses: InterfaceAddresses) -> List[ListeningPort]:
    """One entry per (port, interface), sorted; a port open on every address (0.0.0.0
    or ::) is one entry without an interface, and its per-interface entries are left
    out (the one entry already says the port is open everywhere)."""
    seen = {ListeningPort(row.local_port, interface_of(row.local, addresses))
            for row in rows}
    everywhere = {entry.port for entry in seen if entry.interface is None}
    kept = [e for e in seen if e.interface is None or e.port not in everywhere]
    return sorted(kept, key=lambda e: (e.port, e.interface or ""))


def connections(rows: Iterable[SocketRow],
                addresses: InterfaceAddresses) -> List[Connection]:
    """Established TCP connections, one entry per socket, sorted."""
    found = [Connection(f"{row.remote}:{row.remote_port}", row.local_port,
                        interface_of(row.local, addresses)) for row in rows]
    return sorted(found, key=lambda c: (c.remote_addr, c.local_port, c.local_interface or ""))


def parse_if_inet6(lines: Iterable[str]) -> Dict[IPAddress, str]:
    """IPv6 address -> interface from /proc/net/if_inet6 (address in network order,
    32 hex digits, then index, prefix, scope, flags, name)."""
    found: Dict[IPAddress, str] = {}
    for line in lines:
        fields = line.split() if len(line) <= MAX_LINE else []
        if len(fields) != 6 or len(fields[0]) != 32:
            continue
        try:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
        except ValueError:
            continue
        if len(found) < MAX_INTERFACES:
            found.setdefault(address, fields[5])
    return found


def parse_ifconf(buffer: bytes, record_size: int) -> Dict[IPAddress, str]:
    """IPv4 address -> interface from the `struct ifreq` records SIOCGIFCONF fills; an
    alias label (`eth0:1`) names its device (`eth0`)."""
    found: Dict[IPAddress, str] = {}
    for start in range(0, len(buffer) - record_size + 1, record_size):
        record = buffer[start:start + record_size]
        name = record[:16].split(b"\0", 1)[0].decode("ascii", "replace").split(":", 1)[0]
        family = struct.unpack_from("=H", record, 16)[0]
        if family != socket.AF_INET or not name:
            continue
        address = ipaddress.IPv4Address(record[20:24])
        if len(found) < MAX_INTERFACES:
            found.setdefault(address, name)
    return found


def parse_net_dev(lines: Iterable[str]) -> Dict[str, Counters]:
    """Interface -> its counters from /proc/net/dev (receive bytes and packets are the
    1st and 2nd numbers, transmit the 9th and 10th)."""
    found: Dict[str, Counters] = {}
    for line in lines:
        name, sep, rest = line.partition(":") if len(line) <= MAX_LINE else ("", "", "")
        numbers = rest.split()
        if not sep or len(numbers) < 10 or "|" in line:
            continue
        try:
            rx_bytes, rx_packets, tx_bytes, tx_packets = (
                int(numbers[0]), int(numbers[1]), int(numbers[8]), int(numbers[9]))
        except ValueError:
            continue
        if min(rx_bytes, rx_packets, tx_bytes, tx_packets) < 0:
            continue
        if len(found) < MAX_INTERFACES:
            found[name.strip()] = Counters(rx_bytes, tx_bytes, rx_packets, tx_packets)
    return found


def counter_delta(previous: int, current: int) -> int:
    """How far a kernel counter moved from PREVIOUS to CURRENT.

    A counter below its previous value wrapped (32-bit counters of some drivers and of
    32-bit kernels, 64-bit ones elsewhere) or was reset (the interface was re-created).
    A wrap is taken when it means a move of less than half the counter's range;
    otherwise it was a reset and the counter counts from zero: CURRENT."""
    if current >= previous:
        return current - previous
    for width in (32, 64):
        if previous < 1 << width:
            moved = current + (1 << width) - previous
            if moved < 1 << (width - 1):
                return moved
    return current


def traffic_delta(previous: Mapping[str, Counters], current: Mapping[str, Counters],
                  exclude: Iterable[str] = (LOOPBACK_INTERFACE,)) -> Counters:
    """The traffic since PREVIOUS, summed over the interfaces of CURRENT but EXCLUDE
    (loopback traffic never leaves the device). An interface new since PREVIOUS counts
    all of its counters; one gone since is left out."""
    skip = set(exclude)
    totals = [0, 0, 0, 0]
    for name, now in current.items():
        if name in skip:
            continue
        before = previous.get(name, Counters())
        for i, attr in enumerate(("bytes_in", "bytes_out", "packets_in", "packets_out")):
            totals[i] += counter_delta(getattr(before, attr), getattr(now, attr))
    return Counters(*totals)


class TrafficBaseline:
    """Deltas since the last report that went out: zero in a run's first report.

    `measure` reads against the baseline without moving it; `commit` moves it once the
    report carrying the measure was delivered, so traffic in a report that was lost
    is counted in the next one."""

    def __init__(self) -> None:
        self._base: Optional[Dict[str, Counters]] = None

    def measure(self, current: Mapping[str, Counters]) -> Counters:
        if self._base is None:
            return Counters()
        return traffic_delta(self._base, current)

    def commit(self, current: Mapping[str, Counters]) -> None:
        self._base = dict(current)


# ---- the thin reader of this machine's tables -----------------------------------

def read_lines(path: str, limit: int = MAX_PROC_BYTES) -> Tuple[List[str], bool]:
    """The whole lines of PATH within its first LIMIT bytes, and whether more was left
    unread. A missing file (no IPv6 in this kernel) is no lines."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return [], False
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    truncated = size > limit
    if truncated:
        data = data[:data.rfind(b"\n", 0, limit) + 1]
    return data.decode("ascii", "replace").splitlines(), truncated


_SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 16 + max(16, struct.calcsize("@LLHBBB0L"))  # name + the ifr_ifru union


def ipv4_interface_addresses(limit: int = MAX_INTERFACES) -> Dict[IPAddress, str]:
    """IPv4 address -> interface, as AWS's client finds them (SIOCGIFCONF on a socket
    that is never bound or connected: nothing goes on the network)."""
    buffer = array.array("B", bytes(_IFREQ_SIZE * limit))
    address, _ = buffer.buffer_info()
    request = struct.pack("@iP", len(buffer), address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        reply = fcntl.ioctl(probe.fileno(), _SIOCGIFCONF, request)
    length = struct.unpack_from("@i", reply)[0]
    return parse_ifconf(buffer.tobytes()[:max(0, min(length, len(buffer)))], _IFREQ_SIZE)


def interface_addresses(proc_net: str = PROC_NET) -> Tuple[Dict[IPAddress, str], List[str]]:
    """Every local address -> its interface, and notes on what could not be read."""
    notes: List[str] = []
    try:
        found = ipv4_interface_addresses()
    except OSError as error:
        if error.errno not in (errno.EAFNOSUPPORT,):
            notes.append(f"IPv4 interface addresses unknown: {error.strerror or error}")
        found = {}
    lines, _ = read_lines(os.path.join(proc_net, "if_inet6"), 1 << 20)
    found.update(parse_if_inet6(lines))
    return found, notes


@dataclass
class NetworkView:
    """What one look at the tables found, with notes for the log."""
    tcp_ports: List[ListeningPort]
    udp_ports: List[ListeningPort]
    connections: List[Connection]
    counters: Dict[str, Counters]
    notes: List[str]


def _read_table(proc_net: str, name: str, keep, notes: List[str]) -> list:
    lines, truncated = read_lines(os.path.join(proc_net, name))
    table = parse_sockets(lines, keep)
    if truncated:
        notes.append(f"/proc/net/{name} is over {MAX_PROC_BYTES} bytes; the rest was not read")
    if table.odd_lines:
        notes.append(f"/proc/net/{name}: {table.odd_lines} lines not understood, skipped")
    if table.dropped:
        notes.append(f"/proc/net/{name}: {table.dropped} sockets over {MAX_ROWS} left out")
    return table.rows


def read_network(proc_net: str = PROC_NET) -> NetworkView:
    """Listening ports, established connections and interface counters of this
    network namespace (the reader's own)."""
    addresses, notes = interface_addresses(proc_net)

    def tcp_keep(row):
        return is_tcp_listener(row) or is_established(row)
    tcp = [row for name in ("tcp", "tcp6")
           for row in _read_table(proc_net, name, tcp_keep, notes)]
    udp = [row for name in ("udp", "udp6")
           for row in _read_table(proc_net, name, is_udp_listener, notes)]
    dev_lines, _ = read_lines(os.path.join(proc_net, "dev"), 1 << 20)
    return NetworkView(
        tcp_ports=listening_ports((r for r in tcp if is_tcp_listener(r)), addresses),
        udp_ports=listening_ports(udp, addresses),
        connections=connections((r for r in tcp if is_established(r)), addresses),
        counters=parse_net_dev(dev_lines),
        notes=notes)
