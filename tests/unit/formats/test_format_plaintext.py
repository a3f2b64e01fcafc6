from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chariotd.formats import FormatError, plaintext


def test_value_is_the_whole_file():
    assert plaintext.stringify("hello\nworld") == "hello\nworld"
    assert plaintext.stringify("") == ""
    assert plaintext.parse("a\n b \n") == "a\n b \n"


@pytest.mark.parametrize("bad", [1, 1.5, True, None, ["a"], {"a": "b"}])
def test_non_strings_are_refused(bad):
    with pytest.raises(FormatError, match="PLAINTEXT writes one string"):
        plaintext.stringify(bad)


def test_parse_refuses_non_text():
    with pytest.raises(FormatError):
        plaintext.parse(b"bytes")


@given(st.text())
def test_round_trip(text):
    assert plaintext.parse(plaintext.stringify(text)) == text
