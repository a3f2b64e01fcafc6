"""The ceiling chariotd is measured against: a bare paho-mqtt publisher in one process.

    python bench/baseline.py --host H --port P --cafile CA --cert C --key K \
        --clientid ID --dir DIR [--inflight 10] [--keepalive 1200]

It does what chariotd's messages path does, and nothing more: one poll loop over the
paho socket and an inotify fd on DIR/new; files present at start are taken in filename
order, then arrivals as inotify reports them; each file is read, parsed as JSON
({"topic", "payload", "qos"}), its payload re-encoded as compact JSON and published at
QoS 1 with at most --inflight unacknowledged; the file is unlinked on its PUBACK.
On a lost connection the unacknowledged files go back to the head of the queue and a
new client connects 1 s after the previous attempt (AWS allows one CONNECT per second;
chariotd never retries sooner). Keep-alive housekeeping runs every min(5, keepalive/4)
seconds, as chariotd's link does, and no other timer exists: idle means asleep in poll.

On CONNACK it prints `baseline: connected to HOST:PORT as ID` on stderr, the line the
benchmark times. SIGTERM ends it. Not part of chariotd; used only by bench/drain.py.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import select
import signal
import ssl
import sys
import time

import paho.mqtt.client as mqtt
from inotify_simple import INotify, flags
from paho.mqtt.enums import CallbackAPIVersion

RECONNECT_INTERVAL = 1.0


def log(text: str) -> None:
    sys.stderr.write(f"baseline: {text}\n")
    sys.stderr.flush()


class Publisher:
    def __init__(self, args):
        self.args = args
        self.new = os.path.join(args.dir, "new")
        self.queue = collections.deque()
        self.known = set()                 # names queued or in flight
        self.inflight = {}                 # mid -> name
        self.client = None
        self.sock = None
        self.fd = None
        self.up = False
        self.last_attempt = -RECONNECT_INTERVAL
        self.reconnect_at = None
        self.misc_interval = max(0.5, min(5.0, args.keepalive / 4))
        self.misc_at = None
        self.poller = select.poll()
        self.inotify = INotify()
        self.inotify.add_watch(self.new, flags.MOVED_TO | flags.CLOSE_WRITE)
        self.poller.register(self.inotify.fileno(), select.POLLIN)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.tls.check_hostname = True
        self.tls.load_verify_locations(cafile=args.cafile)
        self.tls.load_cert_chain(args.cert, args.key)

    # -- queue ----------------------------------------------------------------------
    def add(self, name: str) -> None:
        if name not in self.known:
            self.known.add(name)
            self.queue.append(name)

    def scan(self) -> None:
        with os.scandir(self.new) as entries:
            names = sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
        for name in names:
            self.add(name)

    def on_inotify(self) -> None:
        for event in self.inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                self.scan()
            elif event.name:
                self.add(event.name)
        self.pump()

    def pump(self) -> None:
        while self.up and self.queue and len(self.inflight) < self.args.inflight:
            name = self.queue.popleft()
            path = os.path.join(self.new, name)
            try:
                with open(path, "rb") as f:
                    document = json.loads(f.read())
            except FileNotFoundError:
                self.known.discard(name)
                continue
            payload = document["payload"]
            if not isinstance(payload, str):
                payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            info = self.client.publish(document["topic"], payload.encode(),
                                       qos=document.get("qos", 1))
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.queue.appendleft(name)
                return
            self.inflight[info.mid] = name

    # -- connection ---------------------------------------------------------------------
    def connect(self) -> None:
        self.reconnect_at = None
        self.last_attempt = time.monotonic()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.args.clientid,
                             protocol=mqtt.MQTTv311, clean_session=True)
        client.tls_set_context(self.tls)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_connect = self.on_connect
        client.on_disconnect = self.on_disconnect
        client.on_publish = self.on_publish
        try:
            client.connect(self.args.host, self.args.port, keepalive=self.args.keepalive)
        except (OSError, ssl.SSLError) as error:
            log(f"cannot connect: {error}")
            self.schedule_reconnect()
            return
        self.client = client
        self.sock = client.socket()
        self.fd = self.sock.fileno()
        self.poller.register(self.fd, select.POLLIN)
        self.misc_at = time.monotonic() + self.misc_interval

    def schedule_reconnect(self) -> None:
        self.reconnect_at = self.last_attempt + RECONNECT_INTERVAL

    def on_connect(self, client, userdata, flags_, reason_code, properties) -> None:
        if reason_code.is_failure:
            log(f"refused: {reason_code}")
            return
        self.up = True
        log(f"connected to {self.args.host}:{self.args.port} as {self.args.clientid}")
        self.pump()

    def on_disconnect(self, client, userdata, flags_, reason_code, properties) -> None:
        if client is not self.client:
            return
        log(f"connection lost ({reason_code})")
        self.lost()

    def lost(self) -> None:
        if self.fd is not None:
            try:
                self.poller.unregister(self.fd)
            except (KeyError, ValueError, OSError):
                pass
            self.fd = None
        self.up = False
        self.client = None
        self.sock = None
        self.misc_at = None
        pending = sorted(self.inflight.values())
        self.inflight.clear()
        self.queue.extendleft(reversed(pending))
        self.schedule_reconnect()

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        name = self.inflight.pop(mid, None)
        if name is None:
            return
        try:
            os.unlink(os.path.join(self.new, name))
        except FileNotFoundError:
            pass
        self.known.discard(name)
        self.pump()

    # -- loop -------------------------------------------------------------------------------
    def timeout_ms(self):
        deadlines = [t for t in (self.reconnect_at, self.misc_at) if t is not None]
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - time.monotonic()) * 1000) + 1)

    def run(self) -> None:
        self.scan()
        self.connect()
        ino = self.inotify.fileno()
        while True:
            for fd, events in self.poller.poll(self.timeout_ms()):
                if fd == ino:
                    self.on_inotify()
                    continue
                client = self.client
                if client is None or fd != self.fd:
                    continue
                if events & (select.POLLIN | select.POLLERR | select.POLLHUP):
                    client.loop_read()
                    while self.client is client and self.sock.pending():
                        client.loop_read()
                if events & select.POLLOUT and self.client is client:
                    client.loop_write()
            now = time.monotonic()
            if self.reconnect_at is not None and now >= self.reconnect_at:
                self.connect()
            if self.misc_at is not None and now >= self.misc_at and self.client is not None:
                self.client.loop_misc()
                if self.client is not None:
                    self.misc_at = now + self.misc_interval
            if self.client is not None and self.sock is not None:
                if self.client.socket() is None:  # paho closed it
                    self.lost()
                    continue
                mask = select.POLLIN | (select.POLLOUT if self.client.want_write() else 0)
                self.poller.modify(self.fd, mask)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--clientid", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--inflight", type=int, default=10)
    parser.add_argument("--keepalive", type=int, default=1200)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    publisher = Publisher(args)
    try:
        publisher.run()
    finally:
        if publisher.client is not None and publisher.up:
            publisher.client.disconnect()


if __name__ == "__main__":
    main()
