"""PLAINTEXT: the service's value is one string, written as the whole file.

`stringify` returns the string unchanged (no newline is added) and refuses any
other type; `parse` returns the file's text unchanged.
"""

from __future__ import annotations

from .errors import FormatError

NAME = "PLAINTEXT"


def parse(text: str) -> str:
    if not isinstance(text, str):
        raise FormatError(f"PLAINTEXT reads text, not {type(text).__name__}")
    return text


def stringify(value: object) -> str:
    if not isinstance(value, str):
        raise FormatError(
            f"PLAINTEXT writes one string; the value is {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("PLAINTEXT: the value holds a lone surrogate, not writable as "
                          "UTF-8") from None
    return value


def held(value: object) -> str:
    """What a PLAINTEXT outfile holds for VALUE: the string itself."""
    return stringify(value)


def read_held(text: str) -> str:
    return parse(text)
