from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from chariotd.services import definitions
from chariotd.services.definitions import (
    JS_VALIDATE_REFUSED,
    DefinitionError,
    ServiceDefinition,
    load_directory,
    load_file,
)

# The README's two service definition examples, exactly as printed.
README_QUICK_EXAMPLE = """\
     module.exports = {
       key: 'foo',
       outfile: '/config/foo.rc',
       outformat: 'SHELL',
       informat: 'SHELL',
       notifycmd: 'sv restart foo',
     }
"""

README_EXAMPLE = """\
module.exports = {
  key: 'firmware',
  outfile: '/config/firmware.rc',
  outformat: 'SHELL',
  informat: 'SHELL',
  notifycmd: 'sv up firmware',
}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text) if not text.startswith("module") else text)
    return path


def load_text(tmp_path: Path, name: str, text: str) -> ServiceDefinition:
    return load_file(write(tmp_path, name, text))


def error_of(tmp_path: Path, name: str, text: str) -> str:
    with pytest.raises(DefinitionError) as info:
        load_text(tmp_path, name, text)
    return str(info.value)


# ---------------------------------------------------------------- the README examples

def test_readme_example(tmp_path):
    path = tmp_path / "firmware.js"
    path.write_text(README_EXAMPLE)
    assert load_file(path) == ServiceDefinition(
        key="firmware", notifycmd="sv up firmware", source=str(path),
        outfile="/config/firmware.rc", outformat="SHELL", informat="SHELL",
        outkeys=None, notifykeys=None, initialnotify=False, validate=None,
        ephemeraldata=False, timeout=10.0, unknown_keys=())


def test_readme_quick_example(tmp_path):
    path = tmp_path / "foo.js"
    path.write_text(README_QUICK_EXAMPLE)
    definition = load_file(path)
    assert (definition.key, definition.outfile, definition.outformat, definition.informat,
            definition.notifycmd) == ("foo", "/config/foo.rc", "SHELL", "SHELL", "sv restart foo")


def test_readme_examples_load_from_a_directory(tmp_path):
    (tmp_path / "firmware.js").write_text(README_EXAMPLE)
    (tmp_path / "foo.js").write_text(README_QUICK_EXAMPLE)
    loaded, errors = load_directory(tmp_path)
    assert errors == []
    assert [d.key for d in loaded] == ["firmware", "foo"]


# ---------------------------------------------------------------- the three file kinds

EVERY_KEY_JS = """\
'use strict';
/* A definition using every key
   the original knew. */
module.exports = {
  key: 'net',                 // the shadow key
  "outfile": "/config/net.json",
  outformat: 'JSON',
  informat: 'PLAINTEXT',
  notifycmd: 'sv restart net; echo "done // not a comment"',
  outkeys: ['ssid', 'psk',],
  notifykeys: [ 'ssid' ],
  initialnotify: true,
  timeout: 2.5,
};  // end
"""


def test_js_with_every_plain_key_comments_quotes_and_trailing_commas(tmp_path):
    definition = load_text(tmp_path, "net.js", EVERY_KEY_JS)
    assert definition == ServiceDefinition(
        key="net", notifycmd='sv restart net; echo "done // not a comment"',
        source=str(tmp_path / "net.js"), outfile="/config/net.json", outformat="JSON",
        informat="PLAINTEXT", outkeys=("ssid", "psk"), notifykeys=("ssid",),
        initialnotify=True, validate=None, ephemeraldata=False, timeout=2.5)


def test_json_definition(tmp_path):
    definition = load_text(tmp_path, "net.json", """\
        {"key": "net", "outfile": "/config/net.rc", "outformat": "SHELL",
         "notifycmd": "true", "outkeys": ["a"], "timeout": 3}
        """)
    assert (definition.key, definition.outformat, definition.informat, definition.outkeys,
            definition.timeout) == ("net", "SHELL", "JSON", ("a",), 3.0)


def test_py_definition_with_validate(tmp_path):
    definition = load_text(tmp_path, "net.py", """\
        import os

        key = 'net'
        outfile = os.path.join('/config', 'net.rc')
        outformat = 'SHELL'
        notifycmd = 'sv restart net'
        notifykeys = ('ssid',)
        helper_constant = 42  # other names are the module's own

        def validate(cfg):
            if 'ssid' not in cfg:
                raise ValueError('no ssid')
            return dict(cfg, checked=True)
        """)
    assert definition.outfile == "/config/net.rc"
    assert definition.notifykeys == ("ssid",)
    assert definition.validate({"ssid": "x"}) == {"ssid": "x", "checked": True}
    with pytest.raises(ValueError, match="no ssid"):
        definition.validate({})
    assert definition.unknown_keys == ()


def test_py_definition_leaves_no_bytecode_or_module_behind(tmp_path):
    import sys
    load_text(tmp_path, "quiet.py", "key='q'\nnotifycmd='true'\nephemeraldata=True\n")
    assert sorted(os.listdir(tmp_path)) == ["quiet.py"]
    assert not any(name.endswith("quiet") for name in sys.modules)


def test_ephemeral_service_needs_no_outfile(tmp_path):
    definition = load_text(tmp_path, "reboot.js",
                           "module.exports = { key: 'reboot', notifycmd: 'reboot', "
                           "ephemeraldata: true, initialnotify: false }")
    assert definition.ephemeraldata and definition.outfile is None
    assert definition.outformat is None and definition.informat == "JSON"


def test_ephemeral_service_may_keep_an_outfile_which_is_still_checked(tmp_path):
    assert load_text(tmp_path, "a.json", '{"key": "a", "notifycmd": "x", "ephemeraldata": true,'
                     '"outfile": "/x", "outformat": "JSON"}').outfile == "/x"
    assert "outformat: unknown format" in error_of(
        tmp_path, "b.json", '{"key": "b", "notifycmd": "x", "ephemeraldata": true,'
        '"outformat": "YAML"}')


def test_unknown_keys_are_kept_for_a_warning_and_the_definition_loads(tmp_path):
    definition = load_text(tmp_path, "a.js", "module.exports = { key: 'a', notifycmd: 'x', "
                           "outfile: '/a', outformat: 'JSON', notifykey: ['typo'], extra: 1 }")
    assert definition.unknown_keys == ("notifykey", "extra")


# ---------------------------------------------------------------- errors

BASE = {"key": "'a'", "notifycmd": "'true'", "outfile": "'/a'", "outformat": "'JSON'"}


def js(**changes) -> str:
    fields = dict(BASE, **changes)
    body = ", ".join(f"{k}: {v}" for k, v in fields.items() if v is not None)
    return f"module.exports = {{ {body} }};\n"


@pytest.mark.parametrize("changes, message", [
    ({"key": None}, "missing key 'key'"),
    ({"notifycmd": None}, "missing key 'notifycmd'"),
    ({"outfile": None}, "missing key 'outfile' (needed unless ephemeraldata is true)"),
    ({"outformat": None}, "missing key 'outformat' (needed unless ephemeraldata is true)"),
    ({"ephemeraldata": "false", "outfile": None}, "missing key 'outfile'"),
    ({"key": "42"}, "key must be a string, not a number"),
    ({"key": "''"}, "key '' must be non-empty without '.' or '/'"),
    ({"key": "'a.b'"}, "key 'a.b' must be non-empty without '.' or '/'"),
    ({"key": "'a/b'"}, "without '.' or '/'"),
    ({"notifycmd": "['sv', 'up']"}, "notifycmd must be a string, not an array"),
    ({"notifycmd": "'  '"}, "notifycmd must not be empty"),
    ({"outfile": "'config/a.rc'"}, "outfile must be a full path, not 'config/a.rc'"),
    ({"outfile": "null"}, "outfile must be a string, not null"),
    ({"outfile": "'/a\\u0000b'"}, "outfile must not contain a NUL character"),
    ({"outformat": "'json'"}, "outformat: unknown format 'json': expected one of JSON, SHELL, PLAINTEXT"),
    ({"outformat": "'YAML'"}, "outformat: unknown format 'YAML'"),
    ({"informat": "'INI'"}, "informat: unknown format 'INI'"),
    ({"informat": "1"}, "informat must be a string, not a number"),
    ({"outkeys": "'a'"}, "outkeys must be an array of strings, not a string"),
    ({"outkeys": "['a', 1]"}, "outkeys must be an array of strings, not an array"),
    ({"notifykeys": "{a: 1}"}, "notifykeys must be an array of strings, not an object"),
    ({"initialnotify": "'yes'"}, "initialnotify must be true or false, not a string"),
    ({"initialnotify": "1"}, "initialnotify must be true or false, not a number"),
    ({"ephemeraldata": "null"}, "ephemeraldata must be true or false, not null"),
    ({"timeout": "0"}, "timeout must be a positive number of seconds, not 0"),
    ({"timeout": "-1"}, "timeout must be a positive number of seconds"),
    ({"timeout": "'10'"}, "timeout must be a positive number of seconds, not '10'"),
    ({"timeout": "true"}, "timeout must be a positive number of seconds, not True"),
    ({"timeout": "Infinity"}, "timeout must be a positive number of seconds, not inf"),
    ({"validate": "'x'"}, "validate must be a function, not a string"),
    ({"validate": "null"}, "validate must be a function, not null"),
])
def test_js_field_errors(tmp_path, changes, message):
    assert message in error_of(tmp_path, "a.js", js(**changes))


VALIDATES = [
    "function(cfg) { return cfg; }",
    "function check(cfg) { if (!cfg.a) throw new Error('no'); return cfg; }",
    "(cfg) => cfg",
    "cfg => ({ ...cfg, b: 1 })",
    "async function(cfg) { return cfg; }",
]
SHORTHAND = ("module.exports = {\n  key: 'a', notifycmd: 'x', outfile: '/a', outformat: 'JSON',\n"
             "  validate(cfg) {\n    return cfg;\n  },\n};\n")


@pytest.mark.parametrize("validate", VALIDATES)
def test_js_validate_without_the_engine_names_the_extra(tmp_path, validate, no_engine):
    assert error_of(tmp_path, "a.js", js(validate=validate)) == JS_VALIDATE_REFUSED
    assert JS_VALIDATE_REFUSED == ("validate written in JavaScript needs a JavaScript engine: "
                                   "pip install 'chariotd[js]' (or use a .py definition)")


@pytest.mark.parametrize("validate", VALIDATES)
def test_js_validate_with_the_engine_loads(tmp_path, validate):
    assert callable(load_text(tmp_path, "a.js", js(validate=validate)).validate)


def test_js_validate_method_shorthand(tmp_path):
    assert load_text(tmp_path, "a.js", SHORTHAND).validate({"a": 1}) == {"a": 1}


def test_js_validate_method_shorthand_without_the_engine(tmp_path, no_engine):
    assert error_of(tmp_path, "a.js", SHORTHAND) == JS_VALIDATE_REFUSED


NEEDS = "; running it as JavaScript needs a JavaScript engine: pip install 'chariotd[js]'"


MODULE_ERRORS = [
    ("const base = require('./base');\nmodule.exports = { key: 'a' };",
     "expected `module.exports = { ... }`",
     'running it failed: Error: require("./base") is not available'),
    ("module.exports = 'a';", "must be set to an object literal",
     "running it failed: TypeError: module.exports must be an object, not string"),
    ("module.exports = { key: 'a' };\nmodule.exports.b = 1;",
     "code after the exported object", "missing key 'notifycmd'"),
    ("module.exports = { key: 'a', notifycmd: 'x' + 'y' }", "not a plain object literal",
     "missing key 'outfile'"),
    ("module.exports = { key: 'a', notifycmd: `sv ${x}` }", "not a plain object literal",
     "running it failed: ReferenceError: x is not defined"),
    ("module.exports = { key: 'a', other: () => 1 }", "other: JavaScript functions, not data",
     "missing key 'notifycmd'"),
    ("module.exports = { key: 'a'", "not closed", "running it failed: SyntaxError"),
    ("module.exports = { key: 'a }", "unterminated string", "running it failed: SyntaxError"),
    ("/* unterminated comment", "unterminated /* comment", "running it failed: SyntaxError"),
    ("", "expected `module.exports = { ... }`", "missing key 'key'"),
]


@pytest.mark.parametrize("text, without_engine, with_engine", MODULE_ERRORS)
def test_js_module_errors(tmp_path, text, without_engine, with_engine):
    assert with_engine in error_of(tmp_path, "a.js", text)


@pytest.mark.parametrize("text, without_engine, with_engine", MODULE_ERRORS)
def test_js_module_errors_without_the_engine(tmp_path, no_engine, text, without_engine,
                                             with_engine):
    message = error_of(tmp_path, "a.js", text)
    assert without_engine in message and message.endswith(NEEDS)


@pytest.mark.parametrize("text, message", [
    ("{key: 'a'}", "not valid JSON"),
    ("[1]", "must hold a JSON object, not an array"),
    ('{"key": "a", "notifycmd": "x", "outfile": "/a", "outformat": "JSON", "validate": "f"}',
     "validate must be a function, not a string"),
])
def test_json_errors(tmp_path, text, message):
    assert message in error_of(tmp_path, "a.json", text)


@pytest.mark.parametrize("text, message", [
    ("key = 'a'\nnotifycmd = \n", "SyntaxError: invalid syntax (line 2)"),
    ("raise RuntimeError('boom')\n", "running it failed: RuntimeError: boom"),
    ("import sys\nsys.exit(3)\n", "running it failed: SystemExit: 3"),
    ("import no_such_module_here\n", "running it failed: ModuleNotFoundError"),
    ("key = 'a'\n", "missing key 'notifycmd'"),
    ("key = 'a'\nnotifycmd = 'x'\nephemeraldata = True\nvalidate = 'no'\n",
     "validate must be a function, not a string"),
    ("key = 'a'\nnotifycmd = 'x'\nephemeraldata = True\ndef validate():\n    return {}\n",
     "validate must take one argument (the configuration)"),
    ("key = 'a'\nnotifycmd = 'x'\nephemeraldata = True\ndef validate(a, b):\n    return a\n",
     "validate must take one argument"),
])
def test_py_errors(tmp_path, text, message):
    assert message in error_of(tmp_path, "a.py", text)


def test_py_validate_with_extra_defaults_is_fine(tmp_path):
    definition = load_text(tmp_path, "a.py", "key='a'\nnotifycmd='x'\nephemeraldata=True\n"
                           "def validate(cfg, strict=False):\n    return cfg\n")
    assert definition.validate({"x": 1}) == {"x": 1}


def test_file_errors(tmp_path):
    (tmp_path / "bin.js").write_bytes(b"module.exports = { key: '\xff' }")
    with pytest.raises(DefinitionError, match="not UTF-8 text"):
        load_file(tmp_path / "bin.js")
    (tmp_path / "dir.js").mkdir()
    with pytest.raises(DefinitionError, match="not a regular file"):
        load_file(tmp_path / "dir.js")
    with pytest.raises(DefinitionError, match="not a service definition file"):
        load_file(tmp_path / "a.txt")


# ---------------------------------------------------------------- directories

def test_directory_skips_bad_files_and_loads_the_rest(tmp_path, no_engine):
    (tmp_path / "a.js").write_text(README_EXAMPLE)
    (tmp_path / "b.js").write_text(js(validate="(cfg) => cfg"))
    (tmp_path / "c.json").write_text('{"key": "c"}')
    (tmp_path / "d.py").write_text("key = 'd'\nnotifycmd = 'x'\nephemeraldata = True\n")
    (tmp_path / "e.js").symlink_to(tmp_path / "missing-target.js")
    loaded, errors = load_directory(tmp_path)
    assert [d.key for d in loaded] == ["firmware", "d"]
    assert errors == [
        (str(tmp_path / "b.js"), JS_VALIDATE_REFUSED),
        (str(tmp_path / "c.json"), "missing key 'notifycmd'"),
        (str(tmp_path / "e.js"),
         "not a regular file: a symbolic link (definitions are not read through links)"),
    ]


def test_directory_ignores_other_hidden_and_backup_files(tmp_path):
    (tmp_path / "a.js").write_text(README_EXAMPLE)
    for name in ["a.js~", "a.js.bak", ".a.js.swp", ".#a.js", ".hidden.js", "#a.js#",
                 "README.md", "a.pyc", "a.js.dpkg-old"]:
        (tmp_path / name).write_text("garbage")
    (tmp_path / "__pycache__").mkdir()
    loaded, errors = load_directory(tmp_path)
    assert [d.key for d in loaded] == ["firmware"] and errors == []


def test_first_definition_of_a_key_in_filename_order_wins(tmp_path):
    (tmp_path / "firmware.js").write_text(README_EXAMPLE)
    (tmp_path / "firmware.py").write_text(
        "key = 'firmware'\nnotifycmd = 'x'\nephemeraldata = True\n")
    (tmp_path / "0-other.json").write_text(
        '{"key": "firmware", "notifycmd": "y", "ephemeraldata": true}')
    loaded, errors = load_directory(tmp_path)
    assert [d.source for d in loaded] == [str(tmp_path / "0-other.json")]
    assert errors == [
        (str(tmp_path / "firmware.js"),
         f"key 'firmware' is already defined by {tmp_path / '0-other.json'}"),
        (str(tmp_path / "firmware.py"),
         f"key 'firmware' is already defined by {tmp_path / '0-other.json'}"),
    ]


def test_symlinked_definitions_are_not_followed(tmp_path):
    # A link's target may sit where others write (tests/unit/services/
    # test_definition_modes.py); the directory itself may be reached through one.
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "real.js").write_text(README_EXAMPLE)
    services = tmp_path / "svcs"
    services.mkdir()
    (services / "firmware.js").symlink_to(target / "real.js")
    loaded, errors = load_directory(services)
    assert loaded == [] and errors == [(str(services / "firmware.js"), "not a regular file: "
                                        "a symbolic link (definitions are not read through links)")]
    (tmp_path / "linked").symlink_to(target)
    loaded, errors = load_directory(tmp_path / "linked")
    assert [d.key for d in loaded] == ["firmware"] and errors == []


def test_empty_and_missing_directories(tmp_path):
    assert load_directory(tmp_path) == ([], [])
    with pytest.raises(DefinitionError, match="cannot list service definitions"):
        load_directory(tmp_path / "missing")


def test_definitions_are_frozen(tmp_path):
    definition = load_text(tmp_path, "a.js", README_EXAMPLE)
    with pytest.raises(Exception):
        definition.key = "other"  # type: ignore[misc]
    assert definitions.KNOWN_KEYS == (
        "key", "notifycmd", "outfile", "outformat", "informat", "outkeys", "notifykeys",
        "initialnotify", "validate", "ephemeraldata", "timeout")
