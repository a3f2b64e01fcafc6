"""One-way latency of one small frame between two processes, sent one at a time with
the receiver idle in between (how the latency run (d) of bench/drain.py sends):
ZeroMQ PUSH->PULL over ipc:// (chariotd's mailboxes, DESIGN.md section 2) next to an
AF_UNIX socketpair, the floor for any hop between two processes on this machine.

    .venv/bin/python bench/hop.py [--count 2000] [--gap-ms 2]

The receiver stamps CLOCK_MONOTONIC when its poll returns and the frame is read; the
sender stamps right before its send. The difference is one hop: on the ZeroMQ side it
includes the sender's I/O thread, the receiver's I/O thread and the receiver's own
wake-up (three thread wake-ups), on the socketpair side only the receiver's wake-up.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import tempfile
import time

import zmq

FRAME = struct.Struct("<d")
PAD = b"x" * 160  # about the size of a one-message publish frame


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def zmq_receiver(address: str, count: int, ready_w: int, out_w: int) -> None:
    context = zmq.Context(1)
    pull = context.socket(zmq.PULL)
    pull.bind(address)
    os.write(ready_w, b"r")
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    delays = []
    while len(delays) < count:
        poller.poll()
        data = pull.recv(zmq.NOBLOCK)
        delays.append(time.monotonic() - FRAME.unpack_from(data)[0])
    os.write(out_w, struct.pack(f"<{count}d", *delays))
    pull.close(0)
    context.term()


def zmq_sender(address: str, count: int, gap: float) -> None:
    context = zmq.Context(1)
    push = context.socket(zmq.PUSH)
    push.connect(address)
    time.sleep(0.2)
    for _ in range(count):
        push.send(FRAME.pack(time.monotonic()) + PAD)
        time.sleep(gap)
    push.close(500)
    context.term()


def pair_receiver(sock: socket.socket, count: int, out_w: int) -> None:
    import select
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    delays = []
    while len(delays) < count:
        poller.poll()
        data = sock.recv(4096)
        delays.append(time.monotonic() - FRAME.unpack_from(data)[0])
    os.write(out_w, struct.pack(f"<{count}d", *delays))


def pair_sender(sock: socket.socket, count: int, gap: float) -> None:
    time.sleep(0.2)
    for _ in range(count):
        sock.send(FRAME.pack(time.monotonic()) + PAD)
        time.sleep(gap)


def read_all(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def measure(kind: str, count: int, gap: float):
    out_r, out_w = os.pipe()
    if kind == "zmq":
        rundir = tempfile.mkdtemp(prefix="chariotd-hop-")
        address = f"ipc://{rundir}/box"
        ready_r, ready_w = os.pipe()
        receiver = os.fork()
        if receiver == 0:
            zmq_receiver(address, count, ready_w, out_w)
            os._exit(0)
        os.read(ready_r, 1)
        sender = os.fork()
        if sender == 0:
            zmq_sender(address, count, gap)
            os._exit(0)
    else:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        receiver = os.fork()
        if receiver == 0:
            pair_receiver(b, count, out_w)
            os._exit(0)
        sender = os.fork()
        if sender == 0:
            pair_sender(a, count, gap)
            os._exit(0)
    os.close(out_w)
    data = read_all(out_r, 8 * count)
    for pid in (sender, receiver):
        os.waitpid(pid, 0)
    delays = struct.unpack(f"<{count}d", data)[50:]  # the first ones warm up
    return [d * 1e6 for d in delays]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--gap-ms", type=float, default=2.0,
                        help="pause between frames, so the receiver is idle (default 2)")
    args = parser.parse_args()
    rows = []
    for kind in ("zmq", "socketpair", "zmq", "socketpair"):
        delays = measure(kind, args.count, args.gap_ms / 1000)
        rows.append((kind, statistics.median(delays), percentile(delays, 0.9),
                     percentile(delays, 0.99)))
    print("| transport (one hop, idle receiver) | p50 [us] | p90 [us] | p99 [us] |")
    print("|---|---:|---:|---:|")
    for kind, p50, p90, p99 in rows:
        print(f"| {kind} | {p50:.0f} | {p90:.0f} | {p99:.0f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
