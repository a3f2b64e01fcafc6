"""Job documents: both forms, strings for booleans and numbers, rejections."""

import pytest
from hypothesis import given, strategies as st

from chariotd.jobs.document import (MAX_ARGS, RUN_COMMAND, RUN_HANDLER, JobDocument,
                                    Rejected, Step, command_argv, handler_name_problem,
                                    parse)


def test_legacy_document_is_one_handler_step():
    doc = parse({"operation": "install.sh", "args": ["a", "b c"], "allowStdErr": 2,
                 "includeStdOut": "true", "path": "default"})
    assert doc.steps == (Step("install.sh", RUN_HANDLER, "install.sh", ("a", "b c"),
                              allow_stderr=2),)
    assert doc.include_stdout and doc.final_step is None and doc.ignored == ()


def test_schema_document_with_final_step():
    doc = parse({"version": "1.0", "includeStdOut": True, "steps": [
        {"action": {"name": "dl", "type": "runHandler", "runAsUser": "nobody",
                    "allowStdErr": "3", "ignoreStepFailure": "true",
                    "input": {"handler": "download.sh", "args": ["u"], "path": "default"}}},
        {"action": {"name": "cmd", "type": "runCommand",
                    "input": {"command": "echo, a\\,b , c"}}}],
        "finalStep": {"action": {"name": "fin", "type": "runHandler",
                                 "input": {"handler": "health"}}}})
    first, second = doc.steps
    assert first == Step("dl", RUN_HANDLER, "download.sh", ("u",), "nobody", 3, True)
    assert second == Step("cmd", RUN_COMMAND, "", ("echo", "a,b", "c"))
    assert doc.final_step.handler == "health"
    assert [s.name for s in doc.all_steps] == ["dl", "cmd", "fin"]


def test_unknown_fields_are_listed_not_refused():
    doc = parse({"version": "1.0", "extra": 1, "steps": [
        {"note": 2, "action": {"name": "a", "type": "runHandler", "x": 3,
                               "input": {"handler": "h", "y": 4}}}]})
    assert set(doc.ignored) == {"'extra'", "steps[0].'note'", "steps[0].action.'x'",
                                "steps[0].action.input.'y'"}


@pytest.mark.parametrize("document, words", [
    ([], "not an object"),
    ({"args": []}, "neither a string version nor an operation"),
    ({"operation": "../bin/sh"}, "not a plain file name"),
    ({"operation": ".chariotd-jobs"}, "starts with a dot"),
    ({"operation": "h", "path": "/usr/bin"}, "path '/usr/bin' refused"),
    ({"operation": "h", "path": ""}, "refused"),
    ({"operation": "h", "args": "a b"}, "array of strings"),
    ({"operation": "h", "args": [1]}, "must be a string"),
    ({"operation": "h", "args": ["a\0b"]}, "NUL"),
    ({"operation": "h", "args": ["\ud800"]}, "not valid text"),
    ({"operation": "h", "args": ["x"] * (MAX_ARGS + 1)}, "at most"),
    ({"operation": "h", "includeStdOut": "yes"}, "true or false"),
    ({"operation": "h", "allowStdErr": -1}, "count"),
    ({"operation": "h", "allowStdErr": True}, "count"),
    ({"operation": "h", "blob": "x" * 40000}, "characters; at most"),
    ({"version": "2.0", "steps": []}, "not known"),
    ({"version": "1.0", "steps": []}, "non-empty array"),
    ({"version": "1.0", "steps": [{"action": []}]}, "action object"),
    ({"version": "1.0", "steps": [{"action": {"name": "a", "type": "runScript",
                                              "input": {}}}]}, "neither"),
    ({"version": "1.0", "steps": [{"action": {"name": "a", "type": "runHandler",
                                              "input": {"handler": "h"},
                                              "runAsUser": "root;id"}}]}, "user name"),
    ({"version": "1.0", "steps": [{"action": {"name": "a", "type": "runCommand",
                                              "input": {"command": " ,x"}}}]}, "program"),
    ({"version": "1.0", "conditions": [{"key": "k", "value": ["v"]}], "steps": [
        {"action": {"name": "a", "type": "runHandler", "input": {"handler": "h"}}}]},
     "conditions"),
])
def test_rejections_say_why(document, words):
    with pytest.raises(Rejected, match=None) as caught:
        parse(document)
    assert words in str(caught.value)


def test_numeric_version_is_legacy_like_the_device_client():
    assert parse({"version": 1, "operation": "h"}).steps[0].handler == "h"


def test_command_tokens():
    assert command_argv("ls,-l, /tmp ") == ("ls", "-l", "/tmp")
    assert command_argv("a,,b") == ("a", "", "b")
    assert command_argv("printf,%s\\,%s") == ("printf", "%s,%s")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["operation", "args", "path", "version", "steps",
                                       "action", "name", "type", "input", "handler",
                                       "command", "finalStep", "runAsUser",
                                       "includeStdOut", "allowStdErr",
                                       "ignoreStepFailure", "x"]) | st.text(max_size=5),
                      children, max_size=6),
    max_leaves=30)


@given(json_values)
def test_any_value_is_a_document_or_a_rejection(value):
    try:
        doc = parse(value)
    except Rejected as error:
        assert str(error)
        return
    assert isinstance(doc, JobDocument) and doc.steps
    for step in doc.all_steps:
        assert all(isinstance(a, str) and "\0" not in a for a in step.args)
        if step.kind == RUN_HANDLER:
            assert handler_name_problem(step.handler) is None


@given(st.text(max_size=300))
def test_a_handler_name_that_passes_is_a_plain_name(name):
    if handler_name_problem(name) is None:
        assert name and "/" not in name and not name.startswith(".") and "\0" not in name
        assert len(name.encode("utf-8")) <= 255
