"""MQTT topic checks, with AWS IoT Core's limits: a topic of at most 256 bytes and
7 slashes, no wildcards in a publish, and AWS's matching of filters."""

from __future__ import annotations

MAX_TOPIC_BYTES = 256
MAX_TOPIC_SLASHES = 7
BASIC_INGEST = "$aws/rules/"


class BadTopic(ValueError):
    pass


def check_publish_topic(topic: object) -> str:
    """Return TOPIC if a device may publish to it, else raise BadTopic saying why."""
    if not isinstance(topic, str):
        raise BadTopic(f"topic must be a string, not {type(topic).__name__}")
    if not topic:
        raise BadTopic("topic is empty")
    if "+" in topic or "#" in topic:
        raise BadTopic(f"topic {topic!r} contains a wildcard (+ or #)")
    if "\0" in topic:
        raise BadTopic("topic contains a NUL character")
    try:
        encoded = topic.encode("utf-8")
    except UnicodeEncodeError:
        raise BadTopic("topic is not valid UTF-8") from None
    counted = topic
    if topic.startswith(BASIC_INGEST):
        # $aws/rules/<rule>/ does not count toward AWS's limits.
        rest = topic[len(BASIC_INGEST):]
        counted = rest.partition("/")[2]
        encoded = counted.encode("utf-8")
    if len(encoded) > MAX_TOPIC_BYTES:
        raise BadTopic(f"topic is {len(encoded)} bytes long; AWS allows {MAX_TOPIC_BYTES}")
    if counted.count("/") > MAX_TOPIC_SLASHES:
        raise BadTopic(f"topic has {counted.count('/')} levels separators; "
                       f"AWS allows {MAX_TOPIC_SLASHES}")
    return topic


def check_not_reserved(topic: str) -> str:
    """Return TOPIC unless it is reserved (starts with `$`) and not a Basic Ingest
    topic (`$aws/rules/...`); raise BadTopic then. Message files may publish to other
    `$aws/...` topics (shadow, jobs, ...) only where the operator allows it
    (`message-reserved-topics=allow`): a shadow update there could change what the
    device's own services are told to do."""
    if topic.startswith("$") and not topic.startswith(BASIC_INGEST):
        raise BadTopic(f"topic {topic[:60]!r} is reserved: only {BASIC_INGEST}... (Basic "
                       "Ingest) is allowed without message-reserved-topics=allow")
    return topic


def check_filter(topic_filter: str) -> str:
    """Return TOPIC_FILTER if it is a valid subscription filter, else raise BadTopic."""
    if not topic_filter:
        raise BadTopic("topic filter is empty")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise BadTopic(f"'#' must be a whole last level in {topic_filter!r}")
        if "+" in level and level != "+":
            raise BadTopic(f"'+' must be a whole level in {topic_filter!r}")
    if len(topic_filter.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise BadTopic(f"topic filter is longer than {MAX_TOPIC_BYTES} bytes")
    return topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """True when TOPIC_FILTER (valid, see check_filter) matches the concrete TOPIC.

    As AWS IoT Core matches (IOT_CORE.md section 1), which is MQTT 3.1.1 with one
    difference: `+` is one whole level and `#` the remaining levels, neither matches a
    first level starting with `$`, but `a/#` does not match `a` itself (it matches `a/`,
    `a/b`, ...). chariotd follows AWS so that a device behaves the same against any
    broker.
    """
    levels = topic.split("/")
    wanted = topic_filter.split("/")
    if topic.startswith("$") and wanted[0] in ("+", "#"):
        return False
    for index, level in enumerate(wanted):
        if level == "#":
            return len(levels) > index
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(levels) == len(wanted)


def covers(general: str, specific: str) -> bool:
    """True when every topic the filter SPECIFIC matches is also matched by GENERAL."""
    levels = specific.split("/")
    wanted = general.split("/")
    if specific.startswith("$") and wanted[0] in ("+", "#"):
        return False
    for index, level in enumerate(wanted):
        if level == "#":
            return len(levels) > index
        if index >= len(levels) or levels[index] == "#":
            return False
        if level != "+" and level != levels[index]:
            return False
    return len(levels) == len(wanted)


def without_covered(filters) -> list:
    """FILTERS in their order without duplicates and without the filters another one
    covers: MQTT 3.1.1 lets a broker send one copy of a message per matching
    subscription, and each copy would be handled again. (Filters that merely overlap,
    such as `a/+` and `+/b`, can still bring a message twice from such a broker.)"""
    kept = []
    for topic_filter in filters:
        if topic_filter in kept:
            continue
        if any(other != topic_filter and covers(other, topic_filter) for other in filters):
            continue
        kept.append(topic_filter)
    return kept
