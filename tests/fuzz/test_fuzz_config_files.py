"""Fuzz: service definition files (.js and .json content; any file name and encoding,
.py included: a .py's content is trusted code and not fuzzed) and the fleet-provisioning
configuration and the provisioning responses from the cloud. A bad definition is a
DefinitionError (skipped with its reason), a bad config a FleetProvError (exit 2), a
bad response a FleetProvError (the attempt fails); never anything else."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from chariotd.provisioning import fleetprov
from chariotd.formats import FormatError
from chariotd.services.definitions import (KNOWN_KEYS, DefinitionError, load_directory,
                                           load_file)
from chariotd.services.jsmodule import JSModuleError, read_exported_object

from fuzz_values import documents, dumps, fuzz_settings, hostile_bytes, json_values, mutated

definition_values = st.one_of(json_values, st.sampled_from(
    ["JSON", "SHELL", "PLAINTEXT", "json", "/abs/out", "rel/out", "true", "a.b", "x/y"]))
definitions = documents(KNOWN_KEYS, definition_values)


def js_module(fields: dict) -> str:
    body = ",\n".join(f"  {key if key.isidentifier() else repr(key)}: {dumps(value).decode('utf-8', 'surrogatepass')}"
                      for key, value in fields.items())
    return "'use strict';\n// a service\nmodule.exports = {\n" + body + ",\n};\n"


js_texts = st.one_of(
    definitions.map(js_module),
    mutated(definitions.map(lambda d: js_module(d).encode("utf-8", "surrogatepass"))).map(
        lambda b: b.decode("utf-8", "replace")),
    st.text(max_size=200),
    st.sampled_from(["module.exports = { validate: function (c) { return c } }",
                     "module.exports = { key: 'a', validate: (c) => c }",
                     "module.exports = {} ; require('fs')", "module.exports = 5",
                     "module.exports = { key: `tpl` }", "/* unterminated",
                     "module.exports = { key: 'a' /* x */ ", "module.exports = {a: 'x\\"]))


@fuzz_settings(250)
@given(js_texts)
def test_js_modules(text):
    try:
        value = read_exported_object(text)
    except JSModuleError:
        return
    assert isinstance(value, dict)


@fuzz_settings(150)
@given(st.lists(st.tuples(
    st.one_of(st.text(min_size=1, max_size=10), st.binary(min_size=1, max_size=10).map(
        os.fsdecode)).map(lambda n: n.replace("/", "_").replace("\0", "_")),
    st.sampled_from([".js", ".json", ".py", ".txt", ""]),
    st.one_of(js_texts.map(lambda t: t.encode("utf-8", "surrogatepass")),
              definitions.map(dumps), hostile_bytes(KNOWN_KEYS))), max_size=5))
def test_definition_files(files):
    with tempfile.TemporaryDirectory() as root:
        for stem, suffix, data in files:
            if suffix == ".py":  # trusted code: only its name and encoding are fuzzed
                data = b"key = 'k'\nnotifycmd = 'true'\n" if data[:1] != b"\xff" else data
            try:
                with open(os.path.join(root, stem + suffix), "wb") as f:
                    f.write(data)
            except OSError:
                continue  # a name the file system refuses
        loaded, errors = load_directory(root)
        for definition in loaded:
            assert definition.key and definition.notifycmd.strip()
        for path, reason in errors:
            assert isinstance(reason, str) and reason
        for name in os.listdir(root):
            try:
                load_file(os.path.join(root, name))
            except DefinitionError:
                pass


fleetprov_keys = ("claimstore", "template", "parameters", "outfile", "outformat",
                  "notifycmd", "csr")
fleetprov_values = st.one_of(json_values, st.sampled_from(
    ["/claims", "my-template", "JSON", "SHELL", "PLAINTEXT", "bad template!"]),
    st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), json_values),
                    max_size=3))


@fuzz_settings(400)
@given(st.one_of(documents(fleetprov_keys, fleetprov_values).map(dumps),
                 hostile_bytes(fleetprov_keys)))
def test_fleetprov_config(data):
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        try:
            config = fleetprov.load(f.name)
        except fleetprov.FleetProvError as error:
            assert "\n" not in str(error)  # one line on stderr, exit 2
            return
    assert config.claimstore and fleetprov.TEMPLATE_RE.match(config.template)
    assert all(isinstance(v, str) for v in config.parameters.values())


response_keys = ("certificateId", "certificatePem", "privateKey",
                 "certificateOwnershipToken", "thingName", "deviceConfiguration",
                 "statusCode", "errorCode", "errorMessage")


@fuzz_settings(300)
@given(st.one_of(documents(response_keys, st.one_of(
    json_values, st.just("-----BEGIN CERTIFICATE-----\nx"), st.just("ab12"))).map(dumps),
    hostile_bytes(response_keys)), st.sampled_from(["JSON", "SHELL"]))
def test_provisioning_responses(payload, outformat):
    for with_key in (True, False):
        try:
            fleetprov.parse_created(payload, with_key)
        except fleetprov.FleetProvError:
            pass
    assert isinstance(fleetprov.describe_rejection(payload), str)
    try:
        registered = fleetprov.parse_registered(payload)
    except fleetprov.FleetProvError:
        return
    config = fleetprov.FleetProv("/c", "t", outfile="/o", outformat=outformat)
    try:
        fleetprov.outfile_text(config, registered)
    except FormatError:
        pass
