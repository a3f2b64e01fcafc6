"""Secure tunneling: one local proxy per thing, started by a tunnel notification or an
open-tunnel command, stopped by the next one for that thing, by close-tunnel, or when
the applier stops.

The proxy runs detached from the daemon's work: its own session (so signals meant for
chariotd's process group, such as Ctrl-C, do not reach it and its own children go with
it), `/` as working directory, stdin from /dev/null, its output on chariotd's stderr, and
no deadline; it is started the one way every child is (chariotd/kernel/spawn.py `start`: the
allowed environment, nothing that cannot reach exec). Unlike the original daemon's, it
never outlives the tree: the applier stops it (SIGTERM to its process group, SIGKILL
after STOP_GRACE) when it exits, and PR_SET_PDEATHSIG sends it SIGTERM if the applier is
killed outright. Its exit is noticed through a pidfd in the applier's loop.

The access token reaches the proxy only through its environment and is never logged.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from typing import Dict, List, Optional

from chariotd.config import Config
from chariotd.kernel.loop import Loop
from chariotd.kernel.spawn import CannotStart, child_environment, start
from chariotd.aws.tunnel_request import (BadTunnelRequest, TunnelRequest, notify_topic,
                                     parse_close_command, parse_notification,
                                     parse_open_command, plan, proxy_argv,
                                     proxy_environment)

log = logging.getLogger(__name__)

STOP_GRACE = 0.5  # seconds between SIGTERM and SIGKILL (the parent's own grace is 1 s)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class Tunnels:
    def __init__(self, config: Config, loop: Loop):
        self.loop = loop
        self.mappings = dict(config.tunnelmappings)
        self.proxy = config.tunnelproxy
        self.cadir = config.tunnelcadir
        self.topics = {notify_topic(thing): thing for thing in self.mappings}
        self.running: Dict[str, subprocess.Popen] = {}
        self.stopping: List[subprocess.Popen] = []
        self.pidfds: Dict[int, int] = {}  # pid -> pidfd watched by the loop

    # -- requests ---------------------------------------------------------------------
    def on_message(self, topic: str, payload: bytes) -> bool:
        """A tunnel notification (True), or not one of ours (False)."""
        thing = self.topics.get(topic)
        if thing is None:
            return False
        try:
            request = parse_notification(thing, payload)
        except BadTunnelRequest as error:
            log.warning("%s: ignored a tunnel notification: %s", thing, error)
            return True
        reason = self.open(request)
        if reason is not None:
            log.warning("%s: tunnel notification: %s", thing, reason)
        return True

    def command(self, name: str, data: bytes) -> Optional[str]:
        """open-tunnel or close-tunnel; None when done, else why not."""
        try:
            if name == "open-tunnel":
                return self.open(parse_open_command(data))
            thing = parse_close_command(data)
        except BadTunnelRequest as error:
            return str(error)
        if thing not in self.mappings:
            return f"no --tunnelmappings for thing {thing!r}"
        if not self.close(thing):
            log.info("%s: close-tunnel: no tunnel proxy is running", thing)
        return None

    def open(self, request: TunnelRequest) -> Optional[str]:
        mapping = self.mappings.get(request.thing)
        if mapping is None:
            return f"no --tunnelmappings for thing {request.thing!r}"
        mapped, unmapped = plan(request.services, mapping)
        if unmapped:
            log.info("%s: tunnel services not mapped, ignored: %s", request.thing,
                     ", ".join(unmapped))
        if not mapped:
            return (f"none of the requested services ({', '.join(request.services)}) is "
                    "mapped; no proxy started")
        self.close(request.thing)
        argv = proxy_argv(self.proxy, mapped, self.cadir)
        try:
            process = start(argv, child_environment(proxy_environment(request)),
                            stdout=2, stderr=2, with_parent=True)
        except CannotStart as error:
            if error.refused:
                return f"the tunnel proxy was not started: {error}"
            return f"cannot start the tunnel proxy {self.proxy}: {error}"
        self.running[request.thing] = process
        self._watch(request.thing, process)
        log.info("%s: tunnel proxy started (pid %d, region %s): %s", request.thing,
                 process.pid, request.region, " ".join(argv))
        return None

    def close(self, thing: str) -> bool:
        """Stop THING's proxy, if one runs; the loop does not wait for it."""
        process = self.running.pop(thing, None)
        if process is None:
            return False
        if process.poll() is None:
            log.info("%s: stopping tunnel proxy pid %d", thing, process.pid)
            _signal_group(process, signal.SIGTERM)
            self.stopping.append(process)
            self.loop.call_later(STOP_GRACE, lambda: _signal_group(process, signal.SIGKILL))
        return True

    # -- exits ------------------------------------------------------------------------
    def _watch(self, thing: str, process: subprocess.Popen) -> None:
        try:
            pidfd = os.pidfd_open(process.pid)
        except (AttributeError, OSError):
            return  # no pidfd (old kernel): reaped when replaced or at exit
        self.pidfds[process.pid] = pidfd
        self.loop.add_reader(pidfd, lambda: self._exited(thing, process))

    def _exited(self, thing: str, process: subprocess.Popen) -> None:
        status = process.poll()
        if status is None:
            return
        pidfd = self.pidfds.pop(process.pid, None)
        if pidfd is not None:
            self.loop.forget(pidfd)
            os.close(pidfd)
        if process in self.stopping:
            self.stopping.remove(process)
            log.info("%s: tunnel proxy pid %d stopped", thing, process.pid)
        elif self.running.get(thing) is process:
            del self.running[thing]
            log.warning("%s: tunnel proxy pid %d exited with status %s", thing,
                        process.pid, status)

    def stop_all(self) -> None:
        """At the applier's exit: stop every proxy and wait for it (at most STOP_GRACE,
        then SIGKILL)."""
        processes = list(self.running.values()) + self.stopping
        self.running.clear()
        self.stopping = []
        for process in processes:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            time.sleep(0.01)
        for process in processes:
            if process.poll() is None:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        for pidfd in self.pidfds.values():
            os.close(pidfd)
        self.pidfds.clear()
