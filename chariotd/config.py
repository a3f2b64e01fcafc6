"""The configuration records every role reads: what the command line means once parsed.

`cli.py` builds them from argv (and is imported only by the entry point, `main.py`);
roles and the kernel import these records from here, never the parser."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

THING_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
SHADOW_RE = re.compile(r"^[$A-Za-z0-9:_-]{1,64}$")
JOBS_STATE_NAME = ".chariotd-jobs"  # default state directory, inside the handler directory
MESSAGE_ORDERS = ("lexical", "reverse-lexical", "newest-first", "oldest-first")


class ConfigError(Exception):
    """A configuration problem: one line on stderr, exit status 2."""


class ThingShadow(NamedTuple):
    """A thing's classic shadow (shadow is None) or one of its named shadows."""
    thing: str
    shadow: Optional[str] = None

    def __str__(self) -> str:
        return self.thing if self.shadow is None else f"{self.thing}/{self.shadow}"


@dataclass
class MessageDir:
    """One --messages directory with its effective per-directory options (mutable:
    cli.py sets them option by option)."""
    path: str
    concurrency: int = 10
    retries: int = 2
    keep_failed: int = 100
    jam_timeout: float = 300.0
    order: str = "lexical"
    topic_prefix: str = ""
    topic_suffix: str = ""
    letterhead_file: Optional[str] = None
    letterhead_generator: Optional[str] = None
    reserved_topics: bool = False  # may publish to $aws/... beyond $aws/rules/...


class DefenderConfig(NamedTuple):
    """--defender=THING and its options: Device Defender reports (chariotd/defender/)."""
    thing: str
    interval: int = 300          # seconds between reports; AWS's minimum and default
    short_names: bool = False
    custom_dir: Optional[str] = None


class JobsConfig(NamedTuple):
    """--jobs=THING:DIR (one entry per thing) and its options: AWS IoT Jobs run through
    the handler programs in DIR (chariotd/jobs/)."""
    things: Tuple[Tuple[str, str], ...]  # (thing, handler directory)
    allow_commands: bool = False         # --jobs-allow-commands
    timeout: float = 3600.0              # --job-timeout, seconds
    state_dir: Optional[str] = None      # --jobs-state; None: DIR/.chariotd-jobs per thing

    def state_of(self, handler_dir: str) -> str:
        """The state directory of the thing whose handlers are in HANDLER_DIR."""
        return self.state_dir or os.path.join(handler_dir, JOBS_STATE_NAME)


class HttpProxy(NamedTuple):
    """--http-proxy: the HTTP proxy the MQTT connections are tunnelled through
    (kernel/mqtt/proxy.py). The password is a secret: `repr` and `str` never show it."""
    host: str
    port: int
    username: Optional[str] = None
    password: Optional[str] = None
    no_proxy: Tuple[str, ...] = ()  # hosts reached directly (--http-proxy=env only)

    def __str__(self) -> str:
        """host:port, as log lines name the proxy."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        user = f"{self.username}:***@" if self.username is not None else ""
        return f"HttpProxy(http://{user}{self}, no_proxy={self.no_proxy!r})"


@dataclass(frozen=True)
class Config:
    clientid: str
    cacert: str
    certstore: str
    fleetprov: Optional[str] = None
    services: List[Tuple[ThingShadow, str]] = field(default_factory=list)
    updates: List[Tuple[ThingShadow, str]] = field(default_factory=list)
    defaultshadow: List[Tuple[ThingShadow, str]] = field(default_factory=list)
    messages: List[MessageDir] = field(default_factory=list)
    commands: Optional[str] = None
    subscribe_write: List[Tuple[str, str]] = field(default_factory=list)
    subscribe_exec: List[Tuple[str, str]] = field(default_factory=list)
    tunnelmappings: List[Tuple[str, Dict[str, int]]] = field(default_factory=list)
    tunnelproxy: str = "localproxy"
    tunnelcadir: Optional[str] = None
    keepalive: int = 1200
    last_will_topic: Optional[str] = None
    last_will_payload: Optional[str] = None
    empty_array_as_delete_request: bool = False
    defender: Optional[DefenderConfig] = None
    jobs: Optional[JobsConfig] = None
    log_level: str = "info"
    http_proxy: Optional[HttpProxy] = None

    def shadow_targets(self) -> List[ThingShadow]:
        """Every shadow chariotd keeps in step, in the order first named."""
        targets: List[ThingShadow] = []
        for target, _ in self.services + self.updates + self.defaultshadow:
            if target not in targets:
                targets.append(target)
        return targets

    @property
    def wants_applier(self) -> bool:
        return bool(self.shadow_targets() or self.commands or self.subscribe_write
                    or self.subscribe_exec or self.tunnelmappings)
