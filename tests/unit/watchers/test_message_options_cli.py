"""The per-directory message options of EXTENSIONS A on the command line."""

from __future__ import annotations

import pytest

from chariotd.cli import ConfigError, parse

BASE = ["--clientid=dev1", "--cacert=/ca.pem", "--certstore=/store",
        "--messages=/a", "--messages=/b"]


def test_every_option_has_a_default_and_a_per_directory_form():
    config = parse(BASE + [
        "--default-message-order=oldest-first", "--message-order=/b:reverse-lexical",
        "--default-message-topic-prefix=dev1/", "--message-topic-prefix=/b:x:y/",
        "--message-topic-suffix=/a:/up",
        "--default-letterhead-file=/lh.json", "--letterhead-generator=/b:/bin/gen",
    ])
    a, b = config.messages
    assert (a.order, a.topic_prefix, a.topic_suffix) == ("oldest-first", "dev1/", "/up")
    assert (b.order, b.topic_prefix, b.topic_suffix) == ("reverse-lexical", "x:y/", "")
    # b's own letterhead replaces the default one; they do not stack
    assert (a.letterhead_file, a.letterhead_generator) == ("/lh.json", None)
    assert (b.letterhead_file, b.letterhead_generator) == (None, "/bin/gen")


def test_a_directory_letterhead_file_replaces_a_default_generator():
    config = parse(BASE + ["--default-letterhead-generator=/g", "--letterhead-file=/a:/f"])
    a, b = config.messages
    assert (a.letterhead_file, a.letterhead_generator) == ("/f", None)
    assert (b.letterhead_file, b.letterhead_generator) == (None, "/g")


@pytest.mark.parametrize("argv,message", [
    (["--default-message-order=random"], "must be one of lexical"),
    (["--message-order=/a:newest"], "must be one of lexical"),
    (["--letterhead-file=/a:/f", "--letterhead-generator=/a:/g"],
     "give one letterhead per directory"),
    (["--default-letterhead-file=/f", "--default-letterhead-generator=/g"],
     "give one default letterhead"),
])
def test_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        parse(BASE + argv)
