import pytest

from chariotd.cli import ConfigError, ThingShadow, parse

BASE = ["--clientid=dev1", "--cacert=/ca.pem", "--certstore=/store"]


def test_defaults():
    config = parse(BASE)
    assert (config.clientid, config.cacert, config.certstore) == ("dev1", "/ca.pem", "/store")
    assert config.keepalive == 1200 and config.messages == [] and config.log_level == "info"


def test_keepalive_zero_means_1200_as_on_aws():
    assert parse(BASE + ["--keepalive=0"]).keepalive == 1200
    assert parse(BASE + ["--keepalive", "30"]).keepalive == 30


def test_message_dirs_defaults_and_per_directory_overrides():
    config = parse(BASE + ["--messages=/a", "--messages=/b:c/",
                           "--default-message-concurrency=5", "--default-message-retries=0",
                           "--message-concurrency=/b:c:7", "--message-keep-failed=/a:3",
                           "--message-jam-timeout=/a:2.5"])
    a, b = config.messages
    assert (a.path, a.concurrency, a.retries, a.keep_failed, a.jam_timeout) == (
        "/a", 5, 0, 3, 2.5)
    assert (b.path, b.concurrency, b.retries, b.keep_failed, b.jam_timeout) == (
        "/b:c", 7, 0, 100, 300.0)


@pytest.mark.parametrize("argv,message", [
    (["--messages=/a", "--messages=/a/"], "the same directory is given twice"),
    (["--messages=/a", "--message-retries=/b:1"], "DIR one of the --messages"),
    (["--messages=/a", "--default-message-concurrency=0"], "must be at least 1"),
    (["--messages=/a", "--default-message-jam-timeout=0"], "positive number of seconds"),
    (["--clientid=$bad"], "not starting with '$'"),
])
def test_errors(argv, message):
    with pytest.raises(ConfigError, match=message.replace("$", r"\$")):
        parse(BASE + argv)


def test_thing_forms_are_parsed_before_being_refused():
    # Parsing THING:DIR works already; the capability itself is refused for now.
    from chariotd.cli import parse_thing, split_pair
    assert parse_thing("MyThing", "x") == ThingShadow("MyThing", None)
    assert parse_thing("MyThing/cfg", "x") == ThingShadow("MyThing", "cfg")
    assert str(ThingShadow("T", "s")) == "T/s"
    assert split_pair("MyThing:/var/x:y", "updates", "THING:DIR") == ("MyThing", "/var/x:y")
    for bad in ("", "bad thing", "x" * 129):
        with pytest.raises(ConfigError):
            parse_thing(bad, "updates")
    with pytest.raises(ConfigError, match="expected THING:DIR"):
        split_pair("nocolon", "updates", "THING:DIR")


def test_defender_flags():
    assert parse(BASE).defender is None
    config = parse(BASE + ["--defender=dev1", "--defender-interval=600",
                           "--defender-short-names", "--defender-custom=/m"])
    assert (config.defender.thing, config.defender.interval, config.defender.short_names,
            config.defender.custom_dir) == ("dev1", 600, True, "/m")
    assert parse(BASE + ["--defender=dev1"]).defender.interval == 300


@pytest.mark.parametrize("argv,message", [
    (["--defender=dev1", "--defender-interval=299"], "--defender-interval: 300 to 86400"),
    (["--defender=dev1", "--defender-interval=86401"], "--defender-interval: 300 to 86400"),
    (["--defender=dev1", "--defender-interval=5m"], "invalid int value"),
    (["--defender=bad/thing"], "not a valid thing name"),
    (["--defender-custom=/m"], "need --defender=THING"),
    (["--defender-interval=600"], "need --defender=THING"),
])
def test_defender_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse(BASE + argv)


@pytest.mark.parametrize("typo,hint", [
    ("--messsages=/x", "; did you mean --messages?"),
    ("--keepalve=30", "; did you mean --keepalive?"),
    ("--message-concurency=/x:3", "; did you mean --message-concurrency?"),
    ("-messages=/x", "; did you mean --messages?"),
    ("--zzz", ""),
    ("stray", ""),
])
def test_a_misspelled_flag_gets_the_closest_one(typo, hint):
    with pytest.raises(ConfigError) as error:
        parse(BASE + [typo])
    assert str(error.value) == f"unrecognized arguments: {typo}{hint}"


def test_several_misspelled_flags_each_get_theirs():
    with pytest.raises(ConfigError) as error:
        parse(BASE + ["--messsages=/x", "--keepalve", "3"])
    assert str(error.value).endswith("; did you mean --messages (for --messsages), "
                                     "--keepalive (for --keepalve)?")


def help_text() -> str:
    from chariotd.cli import build_parser
    return build_parser().format_help()


def test_help_lists_every_flag_with_repeatable_ones_marked():
    import argparse

    from chariotd.cli import MESSAGE_OPTIONS, build_parser
    text = help_text()
    actions = [a for a in build_parser()._actions if a.option_strings]
    assert all(a.help and a.help != argparse.SUPPRESS for a in actions)
    for name in MESSAGE_OPTIONS:  # the per-directory forms are listed too
        assert f"--{name} DIR:VALUE" in text
    repeatable = [a for a in actions if isinstance(a, argparse._AppendAction)]
    assert len(repeatable) >= 15
    assert all(a.help.endswith(" (repeatable)") and a.help.count("repeatable") == 1
               for a in repeatable)
    assert not [a for a in actions if "repeatable" in a.help and a not in repeatable]


def test_help_ends_with_the_exit_statuses_and_the_examples():
    from chariotd.cli import EXAMPLES
    from chariotd.supervisor import EXIT_STATUSES
    text = help_text()
    assert text.startswith("usage: chariotd --clientid=ID --cacert=FILE --certstore=DIR")
    tail = text[text.index("\nexit status:\n"):]
    assert tail.index("examples:") > 0
    for status in EXIT_STATUSES:
        assert f"\n  {status}  " in tail
    for _, command in EXAMPLES:
        for line in command.split("\n"):
            assert f"\n    {line}\n" in tail + "\n"  # commands as they are, to copy
    assert max(len(line) for line in text.splitlines()) <= 80
