"""Running the original's `.js` service definitions in an embedded JavaScript engine.

A definition that `jsmodule` cannot read as data (a `validate` function, expressions,
code around the export) is evaluated here with QuickJS (the `quickjs-ng` package, the
optional extra `chariotd[js]`). The module runs as CommonJS: the source is the body
of a function of `exports, require, module, __filename, __dirname`, as Node runs it;
`require` of anything throws. The engine has no file, network, process or timer
functions (no `std`/`os` module is registered and no host function is added), and
pending jobs (Promises) are never run.

Every evaluation gets a new runtime with its own limits (TIME_LIMIT seconds of CPU time,
MEMORY_LIMIT bytes, STACK_LIMIT bytes of JavaScript stack) and is dropped afterwards: loading the
definition, and each call of a function member, which evaluates the module again and
then calls the function with the value passed as JSON and its result read back as
JSON. So nothing is kept between calls (no state in closures, no garbage piling up
towards the memory limit), and a runaway loop or allocation costs one refused call.

Runtimes are made only in the applier, on its main thread, when a definition loads or
a function runs (never before the supervisor forks, and never from a second thread:
QuickJS runtimes are not thread-safe). The C module `_quickjs` is imported rather than
the `quickjs` package, whose import starts a worker thread this daemon does not use.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from typing import Any, Dict, Optional, Tuple

from chariotd.formats import FormatError
from chariotd.formats.json import load as load_json

TIME_LIMIT = 1.0  # CPU seconds of one evaluation (QuickJS counts clock()); the loop waits
MEMORY_LIMIT = 16 << 20  # bytes of one runtime
STACK_LIMIT = 256 << 10  # bytes of JavaScript stack (well inside the thread's C stack)
MESSAGE_LIMIT = 300  # characters of an exception's message kept for the log line

EXTRA = "pip install 'chariotd[js]'"
ENGINE_MODULE = "_quickjs"  # the C module of the quickjs-ng package

# The shim, run as one evaluation. The module's source and its path come in as
# globals (strings, never pasted into code); `JSON`'s functions are taken before the
# module runs, so a module replacing them changes nothing here.
_SHIM = r"""
(function () {
  const parse = JSON.parse, stringify = JSON.stringify, keys = Object.keys;
  const source = globalThis.__chariotd_source, path = globalThis.__chariotd_path;
  const input = globalThis.__chariotd_input, member = globalThis.__chariotd_member;
  delete globalThis.__chariotd_source; delete globalThis.__chariotd_input;
  function require(name) {
    throw new Error("require(" + stringify(String(name)) + ") is not available: " +
                    "definitions run without modules, files or network");
  }
  const module = { exports: {} };
  const dir = path.lastIndexOf("/") > 0 ? path.slice(0, path.lastIndexOf("/")) : "/";
  Function("exports", "require", "module", "__filename", "__dirname", source)
    .call(module.exports, module.exports, require, module, path, dir);
  const exported = module.exports;
  if (exported === null || typeof exported !== "object" || Array.isArray(exported))
    throw new TypeError("module.exports must be an object, not " +
                        (exported === null ? "null" : Array.isArray(exported) ?
                         "an array" : typeof exported));
  if (member === undefined) {
    const data = {}, functions = [];
    for (const key of keys(exported)) {
      const value = exported[key];
      if (typeof value === "function") functions.push(key); else data[key] = value;
    }
    return stringify({ data: data, functions: functions });
  }
  const result = exported[member].call(exported, parse(input));
  if (result instanceof Promise)
    throw new TypeError("returned a Promise; an async " + member + " cannot be waited for");
  if (typeof result === "function" || typeof result === "symbol")
    throw new TypeError("returned a " + typeof result + ", not a configuration");
  const text = stringify(result === undefined ? null : result);
  return text === undefined ? "null" : text;
})()
"""


# `Function(...)` puts its parameter list on two lines before the source, so a
# SyntaxError's first `<input>:LINE:COLUMN` is LINE - 2 in the file.
_HEADER_LINES = 2
_SYNTAX_WHERE = re.compile(r"^\s*at <input>:(\d+):\d+$", re.MULTILINE)


class EngineMissing(RuntimeError):
    """No JavaScript engine is installed; the message names the extra to install."""


class JSError(ValueError):
    """The JavaScript failed: it threw, ran past a limit, or gave something unusable."""


_engine: Optional[Any] = None


def engine() -> Any:
    """The `_quickjs` module, imported on first use; EngineMissing when absent."""
    global _engine
    if _engine is None:
        try:
            _engine = importlib.import_module(ENGINE_MODULE)
        except ImportError:
            raise EngineMissing(f"needs a JavaScript engine: {EXTRA}") from None
    return _engine


def available() -> bool:
    try:
        engine()
    except EngineMissing:
        return False
    return True


def _message(error: BaseException, lines: int) -> str:
    """One line saying why an evaluation failed (LINES: the source's line count)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if first.startswith("InternalError: interrupted"):
        return f"stopped after its time limit of {TIME_LIMIT:g} s (CPU)"
    if first.startswith("InternalError: out of memory"):
        return f"stopped at its memory limit of {MEMORY_LIMIT >> 20} MiB"
    if type(error).__name__ == "StackOverflow" or "call stack size exceeded" in first:
        return f"stopped at its stack limit of {STACK_LIMIT >> 10} KiB"
    if first.startswith("SyntaxError"):  # only the module's source is parsed at run time
        where = _SYNTAX_WHERE.search(text)
        if where:
            line = int(where.group(1)) - _HEADER_LINES  # past the end: at the end
            first += f" (line {min(max(1, line), lines)})"
    if first in ("", "null"):
        # QuickJS throws null when memory runs out while it reports running out.
        return (f"failed with no error value: `throw null`, or stopped at its memory "
                f"limit of {MEMORY_LIMIT >> 20} MiB")
    return first if len(first) <= MESSAGE_LIMIT else first[:MESSAGE_LIMIT] + "..."


def _evaluate(source: str, path: str, member: Optional[str] = None,
              value: Any = None) -> str:
    """Run the shim in a new runtime: the module's exports as JSON text (MEMBER None),
    or MEMBER called with VALUE, its result as JSON text. JSError when it fails."""
    context = engine().Context()
    context.set_memory_limit(MEMORY_LIMIT)
    context.set_max_stack_size(STACK_LIMIT)
    context.set_time_limit(TIME_LIMIT)
    try:
        # The value goes as ASCII JSON; a path holding undecodable bytes (surrogate
        # escapes from listdir) has them replaced, so the binding can encode it.
        context.set("__chariotd_source", source)
        context.set("__chariotd_path", path.encode("utf-8", "replace").decode("utf-8"))
        if member is not None:
            context.set("__chariotd_member", member)
            context.set("__chariotd_input", json.dumps(value, allow_nan=False))
        result = context.eval(_SHIM)
    except Exception as error:  # JSException, StackOverflow, or the binding's own
        raise JSError(_message(error, source.count("\n") + 1)) from None
    finally:
        del context  # the runtime and everything in it go now, not at the next gc
    if not isinstance(result, str):  # pragma: no cover - the shim returns a string
        raise JSError(f"gave {type(result).__name__}, not JSON text")
    return result


def _load(text: str, envelope: int, what: str) -> Any:
    try:
        return load_json(text, envelope=envelope)
    except FormatError as error:
        raise JSError(f"{what} cannot be read back: {error}") from None


class JSFunction:
    """A function member of a `.js` definition, called through the engine.

    Calling it evaluates the module in a new runtime and calls the member with
    CONFIG (converted to JSON); the result, read back from JSON, is returned.
    Raises JSError (a ValueError) when the function throws, passes a limit or
    returns something that is not JSON (a Promise, a function, a cycle)."""

    def __init__(self, source: str, path: str, name: str) -> None:
        self._source = source
        self.path = path
        self.name = name

    def __call__(self, config: Any) -> Any:
        try:
            text = _evaluate(self._source, self.path, self.name, config)
        except JSError as error:
            raise JSError(f"{self.name} in {os.path.basename(self.path)}: {error}") from None
        return _load(text, 0, f"what {self.name} returned")

    def __repr__(self) -> str:
        return f"<JavaScript function {self.name} of {self.path}>"


def load_module(source: str, path: str) -> Tuple[Dict[str, Any], Tuple[str, ...]]:
    """What the CommonJS module SOURCE (the file PATH) exports: its data members as
    values and its function members as JSFunction, and the names of the latter.

    Raises EngineMissing without the engine, JSError when the module fails."""
    result = _load(_evaluate(source, path), 1, "module.exports")
    if not isinstance(result, dict) or not isinstance(result.get("data"), dict):
        raise JSError("module.exports cannot be read back")  # pragma: no cover
    fields: Dict[str, Any] = dict(result["data"])
    functions = tuple(result.get("functions", ()))
    for name in functions:
        fields[name] = JSFunction(source, path, name)
    return fields, functions
