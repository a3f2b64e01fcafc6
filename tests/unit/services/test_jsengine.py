"""`.js` definitions with JavaScript functions, run in the embedded engine (QuickJS):
the original's README style loads and its validate runs; every call has a time,
memory and stack limit, no host function, and a failure is a refused change."""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path

import pytest

from chariotd.services import jsengine
from chariotd.services.definitions import (JS_VALIDATE_REFUSED, DefinitionError, load_directory,
                                           load_file)
from chariotd.services.reconcile import ChangeRefused, reconcile

# A definition in the original README's style, with a validate function and helper
# code around the export (the original ran it with Node's require).
ORIGINAL_STYLE = """\
/* Firmware selection */
'use strict';

const ALLOWED = [ 'stable', 'beta' ];

function check(cfg) {
  if (ALLOWED.indexOf(cfg.channel) < 0)
    throw new Error(`unknown channel '${cfg.channel}'`);
}

module.exports = {
  key: 'firmware',
  outfile: '/config/firmware.rc',
  outformat: 'SHELL',
  informat: 'SHELL',
  notifycmd: 'sv up firmware',
  notifykeys: [ 'channel', ],
  validate: function(cfg) {
    if (cfg == null)
      return cfg;
    check(cfg);
    cfg.validated_by = this.key;
    return cfg;
  },
};
"""


def module(tmp_path: Path, text: str, name: str = "svc.js"):
    """The definition in file NAME holding TEXT."""
    path = tmp_path / name
    path.write_text(text)
    return load_file(path)


def definition(tmp_path: Path, validate: str, **fields):
    """A plain definition with `validate: VALIDATE` (and FIELDS replacing members)."""
    members = {"key": "'a'", "notifycmd": "'true'", "outfile": "'/tmp/a'",
               "outformat": "'JSON'", **fields, "validate": validate}
    return module(tmp_path, "module.exports = {\n" + "".join(
        f"  {k}: {v},\n" for k, v in members.items()) + "};\n")


def refusal(tmp_path: Path, validate: str, value=None) -> str:
    with pytest.raises(jsengine.JSError) as info:
        definition(tmp_path, validate).validate({} if value is None else value)
    return str(info.value)


# ---------------------------------------------------------------- the original's style

def test_original_style_definition_loads_and_validate_runs(tmp_path):
    d = module(tmp_path, ORIGINAL_STYLE, "firmware.js")
    assert (d.key, d.outfile, d.outformat, d.informat, d.notifycmd, d.notifykeys) == (
        "firmware", "/config/firmware.rc", "SHELL", "SHELL", "sv up firmware", ("channel",))
    assert d.validate({"channel": "beta"}) == {"channel": "beta", "validated_by": "firmware"}
    assert d.validate(None) is None
    with pytest.raises(jsengine.JSError, match=r"^validate in firmware\.js: Error: unknown "
                                               r"channel 'nightly'$"):
        d.validate({"channel": "nightly"})


def test_validate_through_reconcile_applies_or_refuses(tmp_path):
    d = module(tmp_path, ORIGINAL_STYLE, "firmware.js")
    change = reconcile(d, on_disk=None, reported=None, patch={"channel": "stable"})
    assert change.config == {"channel": "stable", "validated_by": "firmware"}
    assert change.write == "channel='stable'\nvalidated_by='firmware'\n"
    with pytest.raises(ChangeRefused, match="validate refused the change: validate in "
                                            "firmware.js: Error: unknown channel 'x'"):
        reconcile(d, on_disk=None, reported=None, patch={"channel": "x"})


@pytest.mark.parametrize("validate", [
    "function (cfg) { return cfg; }",
    "function check(cfg) { return cfg; }",
    "(cfg) => cfg",
    "cfg => ({ ...cfg })",
])
def test_every_function_form_runs(tmp_path, validate):
    assert definition(tmp_path, validate).validate({"a": [1, {"b": None}]}) == \
        {"a": [1, {"b": None}]}


def test_method_shorthand_and_computed_members(tmp_path):
    d = module(tmp_path, textwrap.dedent("""\
        const name = 'net';
        module.exports = {
          key: name, notifycmd: `sv restart ${name}`, outfile: '/config/' + name + '.json',
          outformat: 'JSON', timeout: 2 * 3,
          validate(cfg) { return Object.assign({}, cfg, { from: __filename }); },
          describe() { return 'not a known member'; },
        };
        """), "net.js")
    assert (d.key, d.notifycmd, d.outfile, d.timeout) == (
        "net", "sv restart net", "/config/net.json", 6.0)
    assert d.validate({}) == {"from": str(tmp_path / "net.js")}
    assert d.unknown_keys == ("describe",)


def test_exports_assigned_member_by_member(tmp_path):
    d = module(tmp_path, "exports.key = 'a'; exports.notifycmd = 'true';\n"
                             "exports.ephemeraldata = true;\n"
                             "exports.validate = c => c;\n")
    assert d.key == "a" and d.ephemeraldata and d.validate({"x": 1}) == {"x": 1}


def test_a_function_where_data_belongs_is_an_error(tmp_path):
    with pytest.raises(DefinitionError, match="notifycmd must be a string, not a function"):
        definition(tmp_path, "c => c", notifycmd="() => 'sv up a'")


def test_nothing_is_kept_between_calls(tmp_path):
    d = module(tmp_path, "let calls = 0;\nmodule.exports = { key: 'a', notifycmd: 'x',"
                             " ephemeraldata: true, validate: c => ({ calls: ++calls }) };\n")
    assert [d.validate({}) for _ in range(3)] == [{"calls": 1}] * 3


# ---------------------------------------------------------------- what validate returns

@pytest.mark.parametrize("returned, config", [
    ("cfg", {"a": 1}),
    ("undefined", None),     # the original normalises undefined to null: no configuration
    ("null", None),
    ("true", True),          # the original takes any value as the configuration
    ("false", False),
    ("42", 42),
    ("'text'", "text"),
    ("[1, 'DELETE']", [1, "DELETE"]),
    ("NaN", None),           # JSON has no NaN: JSON.stringify gives null
    ("{ a: undefined, b: 1 }", {"b": 1}),
    ("new Date(0)", "1970-01-01T00:00:00.000Z"),
])
def test_the_returned_value_is_the_configuration(tmp_path, returned, config):
    """As in the original (and a .py validate): what validate returns becomes the
    configuration; reconcile then checks it like any other (normalise, the format)."""
    assert definition(tmp_path, f"function (cfg) {{ return {returned}; }}").validate(
        {"a": 1}) == config


@pytest.mark.parametrize("returned, message", [
    ("Promise.resolve(cfg)", "returned a Promise; an async validate cannot be waited for"),
    ("function () {}", "returned a function, not a configuration"),
    ("Symbol('x')", "returned a symbol, not a configuration"),
    ("10n", "TypeError: BigInt are forbidden in JSON.stringify"),
    ("(() => { const o = {}; o.o = o; return o; })()", "TypeError: circular reference"),
    ("JSON.parse('['.repeat(40) + ']'.repeat(40))", "nested deeper than 32 levels"),
])
def test_a_return_that_is_no_configuration_is_refused(tmp_path, returned, message):
    assert message in refusal(tmp_path, f"function (cfg) {{ return {returned}; }}")


def test_async_validate_is_refused(tmp_path):
    assert "returned a Promise" in refusal(tmp_path, "async function (cfg) { return cfg; }")


def test_a_throw_is_one_line(tmp_path):
    assert refusal(tmp_path, "c => { throw new RangeError('port\\nout of range'); }") == \
        "validate in svc.js: RangeError: port"
    assert refusal(tmp_path, "c => { throw 'bare string'; }") == "validate in svc.js: bare string"
    assert refusal(tmp_path, "c => { throw null; }") == (
        "validate in svc.js: failed with no error value: `throw null`, or stopped at its "
        "memory limit of 16 MiB")
    long = refusal(tmp_path, "c => { throw new Error('x'.repeat(5000)); }")
    assert len(long) < jsengine.MESSAGE_LIMIT + 40 and long.endswith("...")


# ---------------------------------------------------------------- limits

class Stopwatch:
    """CPU and wall seconds of a block. The engine's limit is CPU time (C `clock()`), so
    a loop stops after TIME_LIMIT of CPU; wall time is longer on a busy machine."""

    def __enter__(self):
        self.cpu, self.wall = time.process_time(), time.monotonic()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = time.process_time() - self.cpu, time.monotonic() - self.wall

    def within_limit(self) -> bool:
        return self.cpu < jsengine.TIME_LIMIT + 0.3 and self.wall < 10 * jsengine.TIME_LIMIT


def test_an_endless_loop_is_stopped_within_the_time_limit(tmp_path):
    d = definition(tmp_path, "c => { for (;;) {} }")
    stopped = r"stopped after its time limit of 1 s \(CPU\)$"
    with Stopwatch() as took, pytest.raises(jsengine.JSError, match=stopped):
        d.validate({})
    assert took.within_limit() and took.cpu >= jsengine.TIME_LIMIT - 0.05


@pytest.mark.parametrize("body", [
    "c => { for (;;) { try { for (;;) {} } catch (e) {} } }",  # catching the interrupt
    "c => /(a+)+$/.test('a'.repeat(40) + 'b')",  # catastrophic backtracking
    "c => [3, 2, 1].sort(() => { for (;;) {} })",  # inside a builtin's callback
])
def test_loops_that_try_to_escape_are_stopped_too(tmp_path, body):
    with Stopwatch() as took:
        message = refusal(tmp_path, body)
    assert "time limit" in message and took.within_limit()


def test_a_loop_in_the_module_itself_fails_the_load(tmp_path):
    with pytest.raises(DefinitionError, match="running it failed: stopped after its time "
                                              "limit"):
        module(tmp_path, "for (;;) {}\nmodule.exports = {};\n", "loop.js")


@pytest.mark.parametrize("body", [
    "c => { const a = []; for (;;) a.push('x'.repeat(1000) + a.length); }",
    "c => new ArrayBuffer(1 << 30)",
    "c => 'x'.repeat(1 << 27)",
    "c => { let s = 'ab'; for (let i = 0; i < 40; i++) s = s + s; return s; }",
    "c => new Array(1e8).fill(0)",
])
def test_a_huge_allocation_is_refused_and_the_next_call_works(tmp_path, body):
    d = definition(tmp_path, f"c => c.grow ? ({body})(c) : c")
    with pytest.raises(jsengine.JSError) as info:
        d.validate({"grow": True})
    assert "memory limit of 16 MiB" in str(info.value) or "string too long" in str(info.value)
    assert d.validate({"ok": 1}) == {"ok": 1}  # a new runtime: nothing left behind


def test_deep_recursion_is_stopped(tmp_path):
    assert "stack limit of 256 KiB" in refusal(
        tmp_path, "function f(c) { return f(c) + 1; }")


# ---------------------------------------------------------------- no host access

def test_require_of_anything_is_refused(tmp_path):
    for name in ("fs", "child_process", "./base", "qjs:os"):
        message = refusal(tmp_path, f"c => require('{name}')")
        assert message == (f'validate in svc.js: Error: require("{name}") is not available: '
                           "definitions run without modules, files or network")
    with pytest.raises(DefinitionError, match=r'running it failed: Error: require\("fs"\)'):
        module(tmp_path, "const fs = require('fs');\nmodule.exports = {};\n", "fs.js")


def test_no_host_object_or_function_is_there(tmp_path):
    names = ["process", "std", "os", "print", "console", "scriptArgs", "setTimeout",
             "fetch", "XMLHttpRequest", "WebAssembly", "Deno", "Bun", "__chariotd_source",
             "__chariotd_input"]
    d = definition(tmp_path, "c => ({ types: c.names.map(n => typeof globalThis[n]) })")
    assert d.validate({"names": names}) == {"types": ["undefined"] * len(names)}


def test_modules_cannot_be_imported(tmp_path):
    d = definition(tmp_path, "c => { let r = 'not run';"
                             " import('qjs:os').then(() => { r = 'loaded'; });"
                             " return r; }")
    assert d.validate({}) == "not run"  # pending jobs never run
    with pytest.raises(DefinitionError, match="running it failed: SyntaxError"):
        module(tmp_path, "import * as os from 'qjs:os';\nmodule.exports = {};\n", "m.js")


def test_a_module_replacing_json_does_not_change_the_conversion(tmp_path):
    d = module(tmp_path, "JSON.stringify = () => '{\"evil\": 1}';\n"
                             "JSON.parse = () => ({ evil: 2 });\n"
                             "module.exports = { key: 'a', notifycmd: 'x', ephemeraldata: true,"
                             " validate: c => c };\n")
    assert d.key == "a" and d.validate({"good": 1}) == {"good": 1}


@pytest.mark.parametrize("text, message", [
    ("module.exports = 'a';", "module.exports must be an object, not string"),
    ("module.exports = [1];", "module.exports must be an object, not an array"),
    ("module.exports = null;", "module.exports must be an object, not null"),
    ("module.exports = { key: 'a', notifycmd: `sv ${x}` }", "ReferenceError: x is not defined"),
    ("module.exports = { key: 'a'", "SyntaxError"),
    ("/* unterminated comment", "SyntaxError"),
    ("module.exports = { key: 'a', notifycmd: 'x', v: 10n };",
     "BigInt are forbidden in JSON.stringify"),
])
def test_module_failures_are_definition_errors(tmp_path, text, message):
    path = tmp_path / "bad.js"
    path.write_text(text)
    with pytest.raises(DefinitionError, match="running it failed: .*" + message.replace(
            "$", r"\$").replace("{", r"\{").replace("(", r"\(")):
        load_file(path)


@pytest.mark.parametrize("text, message", [
    ("module.exports = {\n  key: 'a',\n  notifycmd: 'x' 'y',\n};\n",
     "SyntaxError: Unexpected string (line 3)"),
    ("\n\nmodule.exports = { key: 'x', ", "SyntaxError: expecting ';' (line 3)"),
])
def test_a_syntax_error_names_its_line(tmp_path, text, message):
    with pytest.raises(DefinitionError) as info:
        module(tmp_path, text)
    assert str(info.value) == "running it failed: " + message


def test_no_thread_is_started(tmp_path):
    before = threading.active_count()
    module(tmp_path, ORIGINAL_STYLE, "firmware.js").validate({"channel": "beta"})
    assert threading.active_count() == before


def test_a_path_with_undecodable_bytes_still_loads(tmp_path):
    directory = tmp_path / "svcs"
    directory.mkdir()
    (directory / "caf\udce9.js").write_text("module.exports = { key: 'a', notifycmd: 'x',"
                                            " ephemeraldata: true, validate: c => c };\n")
    loaded, errors = load_directory(directory)
    assert errors == [] and loaded[0].validate({"a": 1}) == {"a": 1}


# ---------------------------------------------------------------- without the engine

def test_without_the_engine_validate_names_the_extra(tmp_path, no_engine):
    with pytest.raises(DefinitionError) as info:
        module(tmp_path, ORIGINAL_STYLE, "firmware.js")
    assert str(info.value) == JS_VALIDATE_REFUSED == (
        "validate written in JavaScript needs a JavaScript engine: "
        "pip install 'chariotd[js]' (or use a .py definition)")
    assert not jsengine.available()


def test_without_the_engine_other_code_names_the_extra(tmp_path, no_engine):
    path = tmp_path / "a.js"
    path.write_text("module.exports = { key: 'a', notifycmd: 'x' + 'y' }")
    with pytest.raises(DefinitionError, match=r"^the exported object is not a plain object "
                       r"literal: .*; running it as JavaScript needs a JavaScript engine: "
                       r"pip install 'chariotd\[js\]'$"):
        load_file(path)


def test_without_the_engine_plain_definitions_still_load(tmp_path, no_engine):
    path = tmp_path / "a.js"
    path.write_text("'use strict';\nmodule.exports = { key: 'a', notifycmd: 'x', "
                    "ephemeraldata: true, };\n")
    assert load_file(path).key == "a"
