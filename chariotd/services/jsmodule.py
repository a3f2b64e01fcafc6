"""Reading `module.exports = { ... }` CommonJS files as data, without running JavaScript.

The original chariotd's service definitions are CommonJS modules. Those that
export an object literal (unquoted keys, single quotes, trailing commas and
comments allowed, an optional `'use strict';` first) are read here with json5.
Anything that needs a JavaScript engine (functions, expressions, `require`,
code around the export) raises JSModuleError here; the caller then runs the
module in the engine (`jsengine`) when it is installed.
"""

from __future__ import annotations

import re
from typing import List, Tuple

import json5

from chariotd.shadow.values import MAX_DEPTH, deeper_than


class JSModuleError(ValueError):
    """The file is not a CommonJS module exporting a plain object literal.

    `function_keys` names the keys whose values are JavaScript functions, if any.
    """

    def __init__(self, message: str, function_keys: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.function_keys = function_keys


_EXPORT_RE = re.compile(r"module\s*\.\s*exports\s*=(?!=)")
_DIRECTIVE_RE = re.compile(r"""(['"])use strict\1""")

# Keys whose value is JavaScript code: `k: function`, `k: async function`,
# `k: (a) =>`, `k: a =>`, and method shorthand `k(a) {`.
_FUNCTION_VALUE_RE = re.compile(
    r"""(?:^|[{,\s])['"]?([A-Za-z_$][\w$]*)['"]?\s*"""
    r"""(?::\s*(?:async\s+)?(?:function\b|\([^()]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>)"""
    r"""|\([^()]*\)\s*\{)""")


def _skip_trivia(text: str, pos: int) -> int:
    """POS moved past white space and comments."""
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
        elif text.startswith("//", pos):
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end + 1
        elif text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                raise JSModuleError("unterminated /* comment")
            pos = end + 2
        else:
            return pos
    return pos


def _string_end(text: str, pos: int) -> int:
    """The index after the string literal starting at POS."""
    quote = text[pos]
    pos += 1
    while pos < len(text):
        c = text[pos]
        if c == "\\":
            pos += 2
        elif c == quote:
            return pos + 1
        elif c == "\n" and quote != "`":
            break
        else:
            pos += 1
    raise JSModuleError("unterminated string")


def _object_span(text: str, start: int) -> Tuple[int, str]:
    """The end of the object literal opening at START, and its text without comments."""
    depth = 0
    pos = start
    pieces: List[str] = []
    while pos < len(text):
        c = text[pos]
        if c in "'\"`":
            end = _string_end(text, pos)
            pieces.append(text[pos:end])
            pos = end
            continue
        if text.startswith("//", pos) or text.startswith("/*", pos):
            end = _skip_trivia(text, pos)
            pieces.append(" ")
            pos = end
            continue
        pieces.append(c)
        pos += 1
        if c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
            if depth == 0:
                return pos, "".join(pieces)
    raise JSModuleError("the exported object is not closed")


def function_keys(object_text: str) -> List[str]:
    """Keys whose value looks like a JavaScript function, in order of appearance."""
    return [m.group(1) for m in _FUNCTION_VALUE_RE.finditer(object_text)]


def read_exported_object(text: str) -> dict:
    """The object a `module.exports = { ... };` module exports.

    Raises JSModuleError saying what is not supported; when values are
    JavaScript functions, the message names their keys (see `function_keys`).
    """
    pos = _skip_trivia(text, 0)
    directive = _DIRECTIVE_RE.match(text, pos)
    if directive:
        pos = _skip_trivia(text, directive.end())
        if text.startswith(";", pos):
            pos = _skip_trivia(text, pos + 1)
    export = _EXPORT_RE.match(text, pos)
    if not export:
        raise JSModuleError("expected `module.exports = { ... }` (optionally after "
                            "comments and 'use strict'), found other code first")
    pos = _skip_trivia(text, export.end())
    if not text.startswith("{", pos):
        raise JSModuleError("module.exports must be set to an object literal { ... }")
    end, object_text = _object_span(text, pos)
    rest = _skip_trivia(text, end)
    if text.startswith(";", rest):
        rest = _skip_trivia(text, rest + 1)
    if rest < len(text):
        raise JSModuleError("code after the exported object is not supported")
    try:
        value = json5.loads(object_text)
    except RecursionError:
        raise JSModuleError("the exported object is nested too deeply") from None
    except ValueError as e:
        functions = tuple(function_keys(object_text))
        if functions:
            raise JSModuleError(f"{', '.join(functions)}: JavaScript functions, not data",
                                functions) from None
        raise JSModuleError(f"the exported object is not a plain object literal: {e}") from None
    if deeper_than(value, MAX_DEPTH):  # the one limit of chariotd.shadow.values
        raise JSModuleError(f"the exported object is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(value, dict):  # pragma: no cover - the text starts with {
        raise JSModuleError("module.exports must be an object")
    return value
