"""Outfile and informat formats: pure text <-> value transforms, no I/O.

errors     FormatError, raised by every format for what it cannot write or read
json       JSON: insertion order, indent 2, trailing newline, no nulls
shell      SHELL: flattened single-quoted shell assignments, safe to source in sh and bash
plaintext  PLAINTEXT: the value is one string, the whole file

`get(name)` returns the module for a format name as service definitions spell it.
"""

from __future__ import annotations

from types import ModuleType

from . import json, plaintext, shell
from .errors import FormatError

__all__ = ["FormatError", "NAMES", "get", "json", "plaintext", "shell"]

_BY_NAME = {module.NAME: module for module in (json, shell, plaintext)}

NAMES = tuple(_BY_NAME)  # ('JSON', 'SHELL', 'PLAINTEXT')


def get(name: str) -> ModuleType:
    """The format module called NAME: exactly 'JSON', 'SHELL' or 'PLAINTEXT'.

    The module has `parse(text) -> value` and `stringify(value) -> text`.
    Any other name (including other spellings such as 'json') raises FormatError.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise FormatError(f"unknown format {name!r}: expected one of "
                          f"{', '.join(NAMES)} (upper case)") from None
