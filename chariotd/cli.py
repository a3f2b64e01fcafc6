"""Every command-line flag: spelling, default, help text, and the checks that need
nothing but the command line (THING:DIR and DIR:VALUE forms, numbers, choices).

The result is the records of `chariotd/config.py`; this module is imported only by
the entry point (`main.py`), the man-page generator and tests. Checks that look at
the file system (certstore, action directories) are in `main.validate`. `--help`, the man page in docs/ and this table come from the same
source: FLAGS below.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import textwrap
from typing import Dict, List, Tuple

from chariotd import __version__
from chariotd.config import (MESSAGE_ORDERS, SHADOW_RE, THING_RE, Config, ConfigError,
                             DefenderConfig, HttpProxy, JobsConfig, MessageDir,
                             ThingShadow)


# Per-directory message options (EXTENSIONS A): option name -> (MessageDir field, parser,
# help). Each exists as --default-NAME=VALUE and --NAME=DIR:VALUE.
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number of seconds")
    return value


def _order(text: str) -> str:
    if text not in MESSAGE_ORDERS:
        raise ValueError(f"must be one of {', '.join(MESSAGE_ORDERS)}")
    return text


def _allow(text: str) -> bool:
    if text not in ("allow", "refuse"):
        raise ValueError("must be allow or refuse")
    return text == "allow"


MESSAGE_OPTIONS = {
    "message-concurrency": ("concurrency", _positive_int,
                            "messages published but not yet acknowledged at once (default 10)"),
    "message-retries": ("retries", _count,
                        "extra attempts after a failed publish, then failed/ (default 2)"),
    "message-keep-failed": ("keep_failed", _count,
                            "files kept in failed/, oldest pruned first (default 100)"),
    "message-jam-timeout": ("jam_timeout", _seconds,
                            "seconds the window may stay full with no acknowledgement "
                            "before chariotd exits 1 (default 300)"),
    "message-order": ("order", _order,
                      "backlog order: lexical, reverse-lexical, newest-first, oldest-first"),
    "message-topic-prefix": ("topic_prefix", str, "text added before every topic"),
    "message-topic-suffix": ("topic_suffix", str, "text added after every topic"),
    "letterhead-file": ("letterhead_file", str,
                        "JSON file each message is merged on top of"),
    "letterhead-generator": ("letterhead_generator", str,
                             "program whose JSON output is each message's letterhead"),
    "message-reserved-topics": ("reserved_topics", _allow,
                                "allow: message files may publish to reserved $ topics "
                                "such as $aws/things/... (shadow, jobs); refuse (default): "
                                "only $aws/rules/... (Basic Ingest) among them"),
}

# Flags accepted with their original spelling whose capability is not built yet. They
# are refused with "not supported yet" rather than silently ignored.
NOT_SUPPORTED_YET: set = set()


# The examples at the end of --help and in the manual page (scripts/manpage): what it
# does (`code` spans allowed), then the command line.
EXAMPLES = [
    ("Publish every file dropped into /var/lib/chariotd/mqtt/new (JSON with `topic` and "
     "`payload`):",
     "chariotd --clientid=my-device --cacert=/etc/chariotd/AmazonRootCA1.pem \\\n"
     "    --certstore=/var/lib/chariotd/certs --messages=/var/lib/chariotd/mqtt"),
    ("Keep the shadow of thing my-device in local files, as the service definitions in "
     "/etc/chariotd/services say, and take local changes from an updates directory:",
     "chariotd --clientid=my-device --cacert=/etc/chariotd/AmazonRootCA1.pem \\\n"
     "    --certstore=/var/lib/chariotd/certs \\\n"
     "    --services=my-device:/etc/chariotd/services \\\n"
     "    --updates=my-device:/var/lib/chariotd/updates"),
]

HELP_WIDTH = 79


def epilog() -> str:
    """The end of --help: the exit statuses and the examples. Lines that start with a
    space are kept as they are (see _Formatter)."""
    from chariotd.supervisor import EXIT_STATUSES  # only when help is shown
    lines = ["exit status:"]
    for status, meaning in sorted(EXIT_STATUSES.items()):
        lines += textwrap.wrap(meaning, HELP_WIDTH, initial_indent=f"  {status}  ",
                               subsequent_indent="     ")
    lines += ["", "examples:"]
    for text, command in EXAMPLES:
        lines += textwrap.wrap(text.replace("`", ""), HELP_WIDTH, initial_indent="  ",
                               subsequent_indent="  ")
        lines += ["    " + line for line in command.split("\n")] + [""]
    return "\n".join(lines).rstrip("\n")


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, except that in the description and epilog a line that
    starts with a space is printed as it is (a table, a command) and the others are
    filled as paragraphs."""

    def _fill_text(self, text, width, indent):
        out, paragraph = [], []
        for line in text.split("\n") + [""]:
            if line and not line[0].isspace():
                paragraph.append(line)
                continue
            if paragraph:
                out.append(super()._fill_text(" ".join(paragraph), width, indent))
                paragraph = []
            if line or out:
                out.append(indent + line)
        return "\n".join(out).rstrip("\n")


def suggestion(unknown: List[str], options: List[str]) -> str:
    """`; did you mean --messages?` when a flag of UNKNOWN is close to one of OPTIONS
    (several: `; did you mean --messages (for --messsages), --keepalive (for ...)?`)."""
    hints = {}
    for argument in unknown:
        if not argument.startswith("-"):
            continue
        name = argument.split("=", 1)[0]
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.75)
        if close:
            hints.setdefault(name, close[0])
    if not hints:
        return ""
    if len(hints) == 1:
        return f"; did you mean {next(iter(hints.values()))}?"
    return "; did you mean " + ", ".join(f"{hint} (for {name})"
                                         for name, hint in hints.items()) + "?"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage too)
        raise ConfigError(message)

    def parse_args(self, args=None, namespace=None):
        """argparse's, with the closest flag suggested for a misspelled one (argparse
        does that only from Python 3.14, `suggest_on_error`)."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            options = [option for action in self._actions
                       for option in action.option_strings if option.startswith("--")]
            raise ConfigError(f"unrecognized arguments: {' '.join(unknown)}"
                              + suggestion(unknown, options))
        return parsed

    def format_help(self) -> str:
        self.epilog = epilog()
        return super().format_help()


def _mark_repeatable(parser: argparse.ArgumentParser) -> None:
    """"(repeatable)" at the end of the help of every flag that may be given again."""
    for action in parser._actions:
        if (isinstance(action, argparse._AppendAction) and action.help
                and action.help != argparse.SUPPRESS and "(repeatable)" not in action.help):
            action.help += " (repeatable)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="chariotd",
        usage="%(prog)s --clientid=ID --cacert=FILE --certstore=DIR [OPTION]...",
        description="Userspace glue for AWS IoT Core: publish MQTT messages, keep device "
                    "shadow keys as local config files, provision certificates, all "
                    "through files and commands. Run it under runit or systemd.",
        allow_abbrev=False,
        formatter_class=lambda prog: _Formatter(prog, width=HELP_WIDTH + 1),
    )
    add = parser.add_argument
    add("--version", action="version", version=f"chariotd {__version__}")
    core = parser.add_argument_group("connection (required: --clientid, --cacert, --certstore)")
    core.add_argument("--clientid", metavar="ID", help="MQTT client id, unique per device")
    core.add_argument("--cacert", metavar="FILE", help="CA certificate that signs the endpoint")
    core.add_argument("--certstore", metavar="DIR",
                      help="certificate store: endpoint.txt and one directory per certificate")
    core.add_argument("--keepalive", metavar="SECONDS", type=int, default=1200,
                      help="MQTT keep-alive; 0 means 1200 as on AWS (default 1200)")
    core.add_argument("--last-will-topic", metavar="TOPIC", help="topic of the QoS 1 last will")
    core.add_argument("--last-will-payload", metavar="TEXT", help="payload of the last will")
    core.add_argument("--http-proxy", metavar="URL",
                      help="reach the endpoint through this HTTP proxy: "
                           "http://[USER:PASS@]HOST:PORT, or env (https_proxy, no_proxy)")
    core.add_argument("--log-level", choices=("error", "warning", "info", "debug"),
                      default="info", help="least important log lines shown (default info)")

    features = parser.add_argument_group("capabilities")
    features.add_argument("--fleetprov", metavar="CONFIG.json",
                          help="fleet provisioning configuration")
    features.add_argument("--services", metavar="THING:DIR", action="append", default=[],
                          help="service definitions for THING (or THING/SHADOW)")
    features.add_argument("--updates", metavar="THING:DIR", action="append", default=[],
                          help="action directory of shadow updates for THING")
    features.add_argument("--defaultshadow", metavar="THING:CMD", action="append", default=[],
                          help="command whose JSON output seeds a missing shadow")
    features.add_argument("--messages", metavar="DIR", action="append", default=[],
                          help="action directory of MQTT messages to publish")
    features.add_argument("--commands", metavar="DIR", help="action directory of commands")
    features.add_argument("--subscribe-write", metavar="TOPIC:PATH", action="append",
                          default=[], help="write each message on TOPIC to PATH (a FIFO)")
    features.add_argument("--subscribe-exec", metavar="TOPIC:PATH", action="append",
                          default=[], help="run PATH with each message on TOPIC as stdin")
    features.add_argument("--tunnelmappings", metavar="THING:SVC=PORT,...", action="append",
                          default=[], help="secure tunneling services of THING")
    features.add_argument("--tunnelproxy", metavar="PATH", help="local proxy program")
    features.add_argument("--tunnelcadir", metavar="DIR", help="CA directory for the proxy")
    features.add_argument("--empty-array-as-delete-request", action="store_true",
                          help="an empty array in the shadow means DELETE")

    _add_defender_flags(parser)
    _add_jobs_flags(parser)

    messages = parser.add_argument_group(
        "message directory options (--default-X=VALUE for all, --X=DIR:VALUE for one)")
    for name, (_, _, text) in MESSAGE_OPTIONS.items():
        messages.add_argument(f"--default-{name}", metavar="VALUE", help=text)
        messages.add_argument(f"--{name}", metavar="DIR:VALUE", action="append", default=[],
                              help="the same for the --messages directory DIR")
    _mark_repeatable(parser)
    return parser


# -- Device Defender (chariotd/defender/) --------------------------------------------------
DEFENDER_MIN_INTERVAL = 300  # AWS: one report per thing per 300 s
DEFENDER_MAX_INTERVAL = 86400


def _add_defender_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Device Defender metrics")
    group.add_argument("--defender", metavar="THING",
                       help="report THING's listening ports, connections, traffic and "
                            "custom metrics to Device Defender")
    group.add_argument("--defender-interval", metavar="SECONDS", type=int,
                       default=DEFENDER_MIN_INTERVAL,
                       help="seconds between reports, 300 to 86400 (default 300)")
    group.add_argument("--defender-short-names", action="store_true",
                       help="send the reports with AWS's short names (hed, met, tp, ...)")
    group.add_argument("--defender-custom", metavar="DIR",
                       help="directory of custom metrics: one JSON file per metric, "
                            "named as the metric")


def _defender(args: argparse.Namespace):
    if args.defender is None:
        if args.defender_custom or args.defender_short_names or (
                args.defender_interval != DEFENDER_MIN_INTERVAL):
            raise ConfigError("--defender-interval, --defender-short-names and "
                              "--defender-custom need --defender=THING")
        return None
    if not THING_RE.match(args.defender):
        raise ConfigError(f"--defender: {args.defender!r} is not a valid thing name")
    if not DEFENDER_MIN_INTERVAL <= args.defender_interval <= DEFENDER_MAX_INTERVAL:
        raise ConfigError(f"--defender-interval: {DEFENDER_MIN_INTERVAL} to "
                          f"{DEFENDER_MAX_INTERVAL} seconds (AWS takes one report per "
                          f"thing per {DEFENDER_MIN_INTERVAL} s)")
    return DefenderConfig(thing=args.defender, interval=args.defender_interval,
                          short_names=args.defender_short_names,
                          custom_dir=args.defender_custom)


# -- AWS IoT Jobs (chariotd/jobs/) ----------------------------------------------------------
JOB_TIMEOUT = 3600.0
JOB_TIMEOUT_MAX = 7 * 86400  # AWS's longest step timeout (10080 minutes)


def _add_jobs_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS IoT Jobs")
    group.add_argument("--jobs", metavar="THING:DIR", action="append", default=[],
                       help="run THING's job executions with the handler programs in DIR "
                            "(owned by root or the daemon's user, not group/world-writable)")
    group.add_argument("--jobs-allow-commands", action="store_true",
                       help="allow runCommand steps (a command line chosen by the cloud); "
                            "off: only the handlers in DIR run")
    group.add_argument("--job-timeout", metavar="SECONDS", default=None,
                       help="a handler's time limit, or the cloud's in-progress timer when "
                            "shorter (default 3600)")
    group.add_argument("--jobs-state", metavar="DIR",
                       help="where the running execution is recorded (default "
                            "DIR/.chariotd-jobs in each handler directory, made 0711)")


def _jobs(args: argparse.Namespace):
    if not args.jobs:
        if args.jobs_allow_commands or args.job_timeout is not None or args.jobs_state:
            raise ConfigError("--jobs-allow-commands, --job-timeout and --jobs-state need "
                              "--jobs=THING:DIR")
        return None
    things = []
    for text in args.jobs:
        thing, directory = split_pair(text, "jobs", "THING:DIR")
        if not THING_RE.match(thing):
            raise ConfigError(f"--jobs: {thing!r} is not a valid thing name")
        if any(thing == known for known, _ in things):
            raise ConfigError(f"--jobs: the thing {thing} is given twice")
        things.append((thing, os.path.abspath(directory)))
    timeout = JOB_TIMEOUT
    if args.job_timeout is not None:
        try:
            timeout = float(args.job_timeout)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= JOB_TIMEOUT_MAX:
            raise ConfigError(f"--job-timeout={args.job_timeout}: a number of seconds, more "
                              f"than 0 and at most {JOB_TIMEOUT_MAX} (7 days)")
    return JobsConfig(things=tuple(things), allow_commands=args.jobs_allow_commands,
                      timeout=timeout,
                      state_dir=os.path.abspath(args.jobs_state) if args.jobs_state else None)


def split_pair(text: str, flag: str, what: str) -> Tuple[str, str]:
    head, sep, tail = text.partition(":")
    if not sep or not head or not tail:
        raise ConfigError(f"--{flag}={text}: expected {what}")
    return head, tail


def parse_thing(text: str, flag: str) -> ThingShadow:
    thing, _, shadow = text.partition("/")
    if not THING_RE.match(thing):
        raise ConfigError(f"--{flag}: {thing!r} is not a valid thing name")
    if _ and not SHADOW_RE.match(shadow):
        raise ConfigError(f"--{flag}: {shadow!r} is not a valid shadow name")
    return ThingShadow(thing, shadow or None)


def _thing_pairs(values: List[str], flag: str) -> List[Tuple[ThingShadow, str]]:
    pairs = []
    for text in values:
        thing, rest = split_pair(text, flag, "THING:VALUE")
        pairs.append((parse_thing(thing, flag), rest))
    return pairs


def parse_subscription(text: str, flag: str) -> Tuple[str, str]:
    """TOPIC:PATH with PATH absolute, split at the first ':/' (so a topic may contain
    ':', a path anything); TOPIC must be a valid filter (`+` and `#` allowed)."""
    from chariotd.kernel.topics import BadTopic, check_filter
    index = text.find(":/")
    if index < 1:
        raise ConfigError(f"--{flag}={text}: expected TOPIC:PATH with an absolute PATH")
    topic, path = text[:index], text[index + 1:]
    try:
        check_filter(topic)
    except BadTopic as error:
        raise ConfigError(f"--{flag}={text}: {error}") from None
    return topic, path


def _tunnel_mapping(text: str) -> Tuple[str, Dict[str, int]]:
    thing, mapping = split_pair(text, "tunnelmappings", "THING:SVC=PORT[,SVC=PORT...]")
    services = {}
    for item in mapping.split(","):
        name, sep, port = item.partition("=")
        if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"--tunnelmappings={text}: {item!r} is not SVC=PORT")
        services[name] = int(port)
    return parse_thing(thing, "tunnelmappings").thing, services


def _tunnel_mappings(values: List[str]) -> List[Tuple[str, Dict[str, int]]]:
    mappings = [_tunnel_mapping(text) for text in values]
    things = [thing for thing, _ in mappings]
    if len(set(things)) != len(things):
        raise ConfigError("--tunnelmappings: the same thing is given twice")
    return mappings


def _message_dirs(args: argparse.Namespace) -> List[MessageDir]:
    dirs = [MessageDir(path=os.path.normpath(path)) for path in args.messages]
    by_path = {d.path: d for d in dirs}
    own_letterhead: Dict[str, set] = {}
    if len(by_path) != len(dirs):
        raise ConfigError("--messages: the same directory is given twice")
    for name, (attribute, convert, _) in MESSAGE_OPTIONS.items():
        default = getattr(args, f"default_{name.replace('-', '_')}")
        if default is not None:
            try:
                value = convert(default)
            except ValueError as error:
                raise ConfigError(f"--default-{name}={default}: {error}") from None
            for d in dirs:
                setattr(d, attribute, value)
        for text in getattr(args, name.replace("-", "_")):
            # DIR:VALUE; DIR is matched against the --messages directories so that
            # either side may itself contain a colon.
            match = [p for p in by_path if text.startswith(p + ":")] or [
                p for p in by_path if text.startswith(p.rstrip("/") + "/:")]
            if not match:
                raise ConfigError(f"--{name}={text}: expected DIR:VALUE with DIR one of "
                                  "the --messages directories")
            path = max(match, key=len)
            raw = text[text.index(":", len(path)) + 1:]
            try:
                setattr(by_path[path], attribute, convert(raw))
            except ValueError as error:
                raise ConfigError(f"--{name}={text}: {error}") from None
            if name in LETTERHEADS:
                own_letterhead.setdefault(path, set()).add(attribute)
    _one_letterhead_each(args, dirs, own_letterhead)
    return dirs


LETTERHEADS = {"letterhead-file": "letterhead_file",
               "letterhead-generator": "letterhead_generator"}


def _one_letterhead_each(args: argparse.Namespace, dirs: List[MessageDir],
                         own_letterhead: Dict[str, set]) -> None:
    """A directory's letterhead (of either kind) replaces the default one; they never
    stack, and one level gives at most one."""
    if all(getattr(args, f"default_{name.replace('-', '_')}") for name in LETTERHEADS):
        raise ConfigError("--default-letterhead-file and --default-letterhead-generator: "
                          "give one default letterhead")
    for d in dirs:
        own = own_letterhead.get(d.path, set())
        if len(own) > 1:
            raise ConfigError(f"--letterhead-file and --letterhead-generator both for "
                              f"{d.path}: give one letterhead per directory")
        for attribute in own and set(LETTERHEADS.values()) - own:
            setattr(d, attribute, None)


def _refuse_unsupported(args: argparse.Namespace) -> None:
    for name in sorted(NOT_SUPPORTED_YET):
        if name in MESSAGE_OPTIONS:
            given = (getattr(args, f"default_{name.replace('-', '_')}") is not None
                     or getattr(args, name.replace("-", "_")))
            flag = name
        else:
            given = getattr(args, name) not in (None, [], False)
            flag = name.replace("_", "-")
        if given:
            raise ConfigError(f"--{flag} is not supported yet")


# -- --http-proxy (kernel/mqtt/proxy.py) ------------------------------------------------
def parse_proxy_url(text: str, flag: str = "--http-proxy") -> HttpProxy:
    """http://[USER:PASS@]HOST:PORT as an HttpProxy, or ConfigError. The error
    line never shows the URL (it may hold the password)."""
    from urllib.parse import unquote, urlsplit
    try:
        url = urlsplit(text.strip())
        port = url.port
    except ValueError:
        raise ConfigError(f"{flag}: not a URL (want http://[USER:PASS@]HOST:PORT)") from None
    if url.scheme.lower() != "http":
        raise ConfigError(f"{flag}: the scheme must be http (got "
                          f"{url.scheme or 'none'!r}): http://[USER:PASS@]HOST:PORT")
    if not url.hostname:
        raise ConfigError(f"{flag}: no proxy host (want http://[USER:PASS@]HOST:PORT)")
    if port is None or port == 0:
        raise ConfigError(f"{flag}: no proxy port (want http://[USER:PASS@]HOST:PORT)")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise ConfigError(f"{flag}: a proxy URL has no path: http://[USER:PASS@]HOST:PORT")
    username = unquote(url.username) if url.username is not None else None
    password = unquote(url.password) if url.password is not None else None
    for part in (url.hostname, username or "", password or ""):
        if any(c in part for c in "\r\n\0"):
            raise ConfigError(f"{flag}: control characters in the proxy URL")
    return HttpProxy(url.hostname, port, username, password)


def http_proxy(value, environ=os.environ):
    """--http-proxy's HttpProxy: the URL given, or with "env" https_proxy (or
    HTTPS_PROXY) of ENVIRON and its no_proxy (or NO_PROXY); None without a proxy."""
    if value is None:
        return None
    if value != "env":
        return parse_proxy_url(value)
    url = environ.get("https_proxy") or environ.get("HTTPS_PROXY")
    if not url:
        return None
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    proxy = parse_proxy_url(url, "--http-proxy=env: https_proxy")
    return proxy._replace(no_proxy=tuple(e.strip() for e in no_proxy.split(",") if e.strip()))


def parse(argv: List[str]) -> Config:
    """Parse ARGV (without the program name) into a Config, or raise ConfigError."""
    args = build_parser().parse_args(argv)
    for required in ("clientid", "cacert", "certstore"):
        if not getattr(args, required):
            raise ConfigError(f"--{required} is required")
    if len(args.clientid.encode()) > 128 or args.clientid.startswith("$"):
        raise ConfigError("--clientid: at most 128 bytes and not starting with '$'")
    _refuse_unsupported(args)
    if args.keepalive < 0 or args.keepalive > 65535:
        raise ConfigError("--keepalive: must be between 0 and 65535 seconds")
    if (args.last_will_topic is None) != (args.last_will_payload is None):
        raise ConfigError("--last-will-topic and --last-will-payload go together")
    if args.last_will_topic is not None:
        from chariotd.kernel.topics import BadTopic, check_publish_topic
        try:
            check_publish_topic(args.last_will_topic)
        except BadTopic as error:
            raise ConfigError(f"--last-will-topic: {error}") from None
    return Config(
        clientid=args.clientid,
        cacert=args.cacert,
        certstore=args.certstore,
        fleetprov=args.fleetprov,
        services=_thing_pairs(args.services, "services"),
        updates=_thing_pairs(args.updates, "updates"),
        defaultshadow=_thing_pairs(args.defaultshadow, "defaultshadow"),
        messages=_message_dirs(args),
        commands=args.commands,
        subscribe_write=[parse_subscription(t, "subscribe-write")
                         for t in args.subscribe_write],
        subscribe_exec=[parse_subscription(t, "subscribe-exec")
                        for t in args.subscribe_exec],
        tunnelmappings=_tunnel_mappings(args.tunnelmappings),
        tunnelproxy=args.tunnelproxy or "localproxy",
        tunnelcadir=args.tunnelcadir,
        keepalive=args.keepalive or 1200,
        last_will_topic=args.last_will_topic,
        last_will_payload=args.last_will_payload,
        empty_array_as_delete_request=args.empty_array_as_delete_request,
        defender=_defender(args),
        jobs=_jobs(args),
        log_level=args.log_level,
        http_proxy=http_proxy(args.http_proxy),
    )


def print_help(stream=sys.stdout) -> None:
    build_parser().print_help(stream)
