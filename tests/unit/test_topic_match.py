"""Topic filter matching as AWS IoT Core does it (IOT_CORE.md section 1), covering
filters, and the TOPIC:PATH form of --subscribe-write / --subscribe-exec."""

import pytest
from hypothesis import given, strategies as st

from chariotd.cli import ConfigError, parse, parse_subscription
from chariotd.kernel.topics import BadTopic, check_filter, covers, matches, without_covered


@pytest.mark.parametrize("topic_filter,topic,expected", [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/b", "a/b/c", False),
    ("a/b", "A/b", False),  # case-sensitive
    ("a/+", "a/b", True),
    ("a/+", "a/", True),  # an empty level is a level
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("+/b", "a/b", True),
    ("+/+", "a/b", True),
    ("+", "a", True),
    ("+", "", True),
    ("a/#", "a/b", True),
    ("a/#", "a/b/c/d", True),
    ("a/#", "a/", True),
    ("a/#", "a", False),  # AWS: unlike the MQTT spec, a/# does not match its parent
    ("a/+/#", "a/b", False),
    ("a/+/#", "a/b/c", True),
    ("#", "a", True),
    ("#", "a/b/c", True),
    ("#", "$aws/things/t/shadow/get", False),  # wildcards never match a $ first level
    ("+/things/t/tunnels/notify", "$aws/things/t/tunnels/notify", False),
    ("$aws/things/+/tunnels/notify", "$aws/things/t/tunnels/notify", True),
    ("$aws/#", "$aws/things/t", True),
    ("a:b/c", "a:b/c", True),
])
def test_matches(topic_filter, topic, expected):
    assert check_filter(topic_filter) == topic_filter
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize("general,specific,expected", [
    ("a/#", "a/b", True),
    ("a/#", "a/+/c", True),
    ("a/#", "a/#", True),
    ("a/#", "a", False),
    ("#", "a", True),
    ("#", "$aws/x", False),
    ("a/+", "a/b", True),
    ("a/+", "a/#", False),
    ("a/+/#", "a/#", False),
    ("a/b", "a/+", False),
    ("+/b", "a/+", False),
])
def test_covers(general, specific, expected):
    assert covers(general, specific) is expected


def test_without_covered_keeps_order_and_drops_duplicates_and_covered():
    assert without_covered(["x/1", "a/b", "a/#", "x/1", "c", "a/+/d"]) == ["x/1", "a/#", "c"]
    assert without_covered(["a/+", "+/b"]) == ["a/+", "+/b"]  # overlap, no cover


LEVEL = st.sampled_from(["a", "b", "", "$x"])
FILTER_LEVEL = st.sampled_from(["a", "b", "", "+"])


@st.composite
def filters(draw):
    levels = draw(st.lists(FILTER_LEVEL, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@given(filters(), filters(), st.lists(LEVEL, min_size=1, max_size=5))
def test_covers_is_sound(general, specific, levels):
    topic = "/".join(levels)
    if covers(general, specific) and matches(specific, topic):
        assert matches(general, topic)


@given(filters(), st.lists(LEVEL, min_size=1, max_size=5))
def test_hash_never_matches_the_parent_level(topic_filter, levels):
    if topic_filter.endswith("/#"):
        parent = topic_filter[:-2]
        topic = "/".join(levels)
        if "+" not in parent and "#" not in parent:
            assert not matches(topic_filter, parent)
        assert matches(topic_filter, topic) == (
            any(matches(parent + "/" + rest, topic) for rest in ["+", "+/+", "+/+/+", "+/+/+/+",
                                                                  "+/+/+/+/+"]))


@pytest.mark.parametrize("text,expected", [
    ("a/b:/run/fifo", ("a/b", "/run/fifo")),
    ("a:b/c:/run/fifo", ("a:b/c", "/run/fifo")),  # ':' in a topic: split at ':/'
    ("a/#:/run/x:y", ("a/#", "/run/x:y")),
    ("a:/b:/c", ("a", "/b:/c")),  # the first ':/' wins: the path may contain anything
    ("+/cmd:/usr/bin/handler", ("+/cmd", "/usr/bin/handler")),
])
def test_subscription_split(text, expected):
    assert parse_subscription(text, "subscribe-write") == expected


@pytest.mark.parametrize("text,message", [
    ("a/b", "expected TOPIC:PATH with an absolute PATH"),
    ("a/b:relative", "expected TOPIC:PATH with an absolute PATH"),
    (":/run/fifo", "expected TOPIC:PATH"),
    ("a/#/b:/run/fifo", "'#' must be a whole last level"),
    ("a/b+:/run/fifo", "'+' must be a whole level"),
])
def test_subscription_errors(text, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        parse_subscription(text, "subscribe-exec")


def test_config_with_subscriptions_and_tunnels_wants_the_applier():
    base = ["--clientid=dev1", "--cacert=/ca.pem", "--certstore=/store"]
    assert not parse(base).wants_applier
    config = parse(base + ["--subscribe-write=a/+:/run/a", "--subscribe-exec=b/#:/bin/b"])
    assert config.subscribe_write == [("a/+", "/run/a")]
    assert config.subscribe_exec == [("b/#", "/bin/b")] and config.wants_applier
    config = parse(base + ["--tunnelmappings=dev1:SSH=22,VNC=5900",
                           "--tunnelproxy=/opt/lp", "--tunnelcadir=/etc/ca"])
    assert config.tunnelmappings == [("dev1", {"SSH": 22, "VNC": 5900})]
    assert (config.tunnelproxy, config.tunnelcadir) == ("/opt/lp", "/etc/ca")
    assert config.wants_applier
    assert parse(base + ["--tunnelmappings=dev1:SSH=22"]).tunnelproxy == "localproxy"
    with pytest.raises(ConfigError, match="the same thing is given twice"):
        parse(base + ["--tunnelmappings=d:SSH=22", "--tunnelmappings=d:VNC=1"])
    with pytest.raises(ConfigError, match="is not SVC=PORT"):
        parse(base + ["--tunnelmappings=d:SSH=70000"])


def test_bad_filter_is_refused_by_check_filter():
    with pytest.raises(BadTopic):
        check_filter("")
