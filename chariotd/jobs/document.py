"""Job documents (pure): the two forms AWS IoT Device Client understands, read into
one `JobDocument`, or `Rejected` with a reason the cloud is told.

Legacy: `{"operation", "args", "allowStdErr", "includeStdOut", "path"}`, one handler.
Schema: `{"version": "1.0", "steps": [{"action": {...}}], "finalStep": {"action":
{...}}, "includeStdOut"}`, an action being `{"name", "type": "runHandler" |
"runCommand", "input": {"handler", "args", "path"} | {"command"}, "runAsUser",
"allowStdErr", "ignoreStepFailure"}`. A string `version` selects the schema (as the
device client does); only "1.0" is known.

Booleans and numbers may also be written as strings ("true", "3"), as the device client
reads them. A `path` other than "default" (or absent) is rejected: nothing outside the
handler directory ever runs. `conditions` are rejected when not empty (the device client
validates them but never evaluates them; running a step its author meant to be
conditional would be worse than saying no). Other fields are ignored and listed in
`ignored` for a debug line. Every string that could reach exec is free of NUL, and
every list and string is bounded, so a document can neither fail at exec nor hold the
role's memory.

`allowStdErr` is read (a count, as the device client takes it) and kept, but output on
stderr never decides an outcome and never turns a failing exit into success.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

from chariotd.formats.json import kind_of as json_kind

RUN_HANDLER = "runHandler"
RUN_COMMAND = "runCommand"
SCHEMA_VERSIONS = ("1.0",)

MAX_DOCUMENT_CHARS = 32768  # AWS's limit on a job document
MAX_STEPS = 32
MAX_ARGS = 128
MAX_ARG_CHARS = 4096
MAX_NAME_BYTES = 255  # a file name (NAME_MAX)
MAX_STEP_NAME_CHARS = 256
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_DECIMAL = re.compile(r"[0-9]{1,9}")


class Rejected(ValueError):
    """A document that is not run; str() says why, for the REJECTED update."""


@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # RUN_HANDLER or RUN_COMMAND
    handler: str  # runHandler: the handler's file name; runCommand: ""
    args: Tuple[str, ...]  # runHandler: its arguments; runCommand: the whole argv
    run_as_user: str = ""  # "": the daemon's own user
    allow_stderr: Optional[int] = None
    ignore_failure: bool = False


@dataclass(frozen=True)
class JobDocument:
    steps: Tuple[Step, ...]
    final_step: Optional[Step] = None
    include_stdout: bool = False
    ignored: Tuple[str, ...] = ()  # fields not understood, e.g. "steps[0].action.foo"

    @property
    def all_steps(self) -> Tuple[Step, ...]:
        """The steps in the order they may run (the final step last)."""
        return self.steps + ((self.final_step,) if self.final_step else ())


def handler_name_problem(name: object) -> Optional[str]:
    """Why NAME cannot name a handler in the handler directory, or None: a plain file
    name, not starting with a dot, at most MAX_NAME_BYTES bytes of UTF-8, no NUL."""
    if not isinstance(name, str):
        return f"handler must be a string, not {json_kind(name)}"
    if not name:
        return "handler name is empty"
    if "/" in name or "\0" in name:
        return f"handler {_shown(name)} is not a plain file name"
    if name.startswith("."):
        return f"handler {_shown(name)} starts with a dot (never run)"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "handler name is not valid text"
    if size > MAX_NAME_BYTES:
        return f"handler name is {size} bytes; at most {MAX_NAME_BYTES}"
    return None


def parse(document: object) -> JobDocument:
    """The job document DOCUMENT (the parsed JSON the cloud sent), or Rejected."""
    if not isinstance(document, dict):
        raise Rejected(f"the job document is {json_kind(document)}, not an object")
    try:
        size = len(json.dumps(document, ensure_ascii=False))
    except (TypeError, ValueError):
        raise Rejected("the job document holds something JSON cannot") from None
    if size > MAX_DOCUMENT_CHARS:
        raise Rejected(f"the job document is {size} characters; at most "
                       f"{MAX_DOCUMENT_CHARS}")
    ignored: List[str] = []
    if isinstance(document.get("version"), str):
        parsed = _schema(document, ignored)
    else:
        parsed = _legacy(document, ignored)
    return JobDocument(parsed[0], parsed[1], parsed[2], tuple(ignored))


# ------------------------------------------------------------------ the two forms

_LEGACY_FIELDS = ("operation", "args", "allowStdErr", "includeStdOut", "path", "version")


def _legacy(doc: Mapping[str, Any], ignored: List[str]):
    if "operation" not in doc:
        raise Rejected("the job document has neither a string version nor an operation")
    _note_unknown(doc, _LEGACY_FIELDS, "", ignored)
    handler = doc["operation"]
    problem = handler_name_problem(handler)
    if problem:
        raise Rejected(f"operation: {problem}")
    _path(doc, "path")
    step = Step(name=handler, kind=RUN_HANDLER, handler=handler,
                args=_args(doc.get("args"), "args"),
                allow_stderr=_count(doc, "allowStdErr", "allowStdErr"))
    return (step,), None, _flag(doc, "includeStdOut", "includeStdOut")


_SCHEMA_FIELDS = ("version", "steps", "finalStep", "includeStdOut", "conditions")
_ACTION_FIELDS = ("name", "type", "input", "runAsUser", "allowStdErr", "ignoreStepFailure")
_HANDLER_INPUT = ("handler", "args", "path")
_COMMAND_INPUT = ("command",)


def _schema(doc: Mapping[str, Any], ignored: List[str]):
    version = doc["version"]
    if version not in SCHEMA_VERSIONS:
        raise Rejected(f"version {_shown(version)} is not known (known: "
                       f"{', '.join(SCHEMA_VERSIONS)})")
    _note_unknown(doc, _SCHEMA_FIELDS, "", ignored)
    conditions = doc.get("conditions")
    if conditions not in (None, []):
        raise Rejected("conditions are not supported; the job would run unconditionally")
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise Rejected("steps must be a non-empty array")
    if len(steps) > MAX_STEPS:
        raise Rejected(f"{len(steps)} steps; at most {MAX_STEPS}")
    parsed = tuple(_step(item, f"steps[{i}]", ignored) for i, item in enumerate(steps))
    final = None
    if doc.get("finalStep") is not None:
        final = _step(doc["finalStep"], "finalStep", ignored)
    return parsed, final, _flag(doc, "includeStdOut", "includeStdOut")


def _step(item: object, where: str, ignored: List[str]) -> Step:
    if not isinstance(item, dict) or not isinstance(item.get("action"), dict):
        raise Rejected(f"{where} must be an object with an action object")
    _note_unknown(item, ("action",), where, ignored)
    action = item["action"]
    where = f"{where}.action"
    _note_unknown(action, _ACTION_FIELDS, where, ignored)
    name = action.get("name")
    if not isinstance(name, str) or not name or len(name) > MAX_STEP_NAME_CHARS:
        raise Rejected(f"{where}.name must be a string of 1 to {MAX_STEP_NAME_CHARS} "
                       "characters")
    kind = action.get("type")
    inputs = action.get("input")
    if not isinstance(inputs, dict):
        raise Rejected(f"{where}.input must be an object")
    common = dict(name=name, run_as_user=_user(action, where),
                  allow_stderr=_count(action, "allowStdErr", f"{where}.allowStdErr"),
                  ignore_failure=_flag(action, "ignoreStepFailure",
                                       f"{where}.ignoreStepFailure"))
    if kind == RUN_HANDLER:
        _note_unknown(inputs, _HANDLER_INPUT, f"{where}.input", ignored)
        handler = inputs.get("handler")
        problem = handler_name_problem(handler)
        if problem:
            raise Rejected(f"{where}.input.handler: {problem}")
        _path(inputs, f"{where}.input.path")
        return Step(kind=RUN_HANDLER, handler=handler,
                    args=_args(inputs.get("args"), f"{where}.input.args"), **common)
    if kind == RUN_COMMAND:
        _note_unknown(inputs, _COMMAND_INPUT, f"{where}.input", ignored)
        return Step(kind=RUN_COMMAND, handler="",
                    args=command_argv(inputs.get("command"), f"{where}.input.command"),
                    **common)
    raise Rejected(f"{where}.type {_shown(kind)} is neither {RUN_HANDLER} nor {RUN_COMMAND}")


def command_argv(command: object, where: str = "command") -> Tuple[str, ...]:
    """A runCommand's argv, as the device client splits it: on commas, `\\,` standing
    for a comma, each token trimmed; the first (the program) without whitespace."""
    if not isinstance(command, str) or not command.strip():
        raise Rejected(f"{where} must be a non-empty string")
    tokens, current, index = [], [], 0
    while index < len(command):
        char = command[index]
        if char == "\\" and command[index + 1:index + 2] == ",":
            current.append(",")
            index += 2
            continue
        if char == ",":
            tokens.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    tokens.append("".join(current).strip())
    if not tokens[0] or any(c.isspace() for c in tokens[0]):
        raise Rejected(f"{where}: the program {_shown(tokens[0])} is empty or holds "
                       "whitespace")
    return _args(tokens, where)


# ------------------------------------------------------------------ fields

def _args(value: object, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise Rejected(f"{where} must be an array of strings, not {json_kind(value)}")
    if len(value) > MAX_ARGS:
        raise Rejected(f"{where} has {len(value)} items; at most {MAX_ARGS}")
    for index, arg in enumerate(value):
        if not isinstance(arg, str):
            raise Rejected(f"{where}[{index}] must be a string, not {json_kind(arg)}")
        if "\0" in arg:
            raise Rejected(f"{where}[{index}] holds a NUL character")
        if len(arg) > MAX_ARG_CHARS:
            raise Rejected(f"{where}[{index}] is {len(arg)} characters; at most "
                           f"{MAX_ARG_CHARS}")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            raise Rejected(f"{where}[{index}] is not valid text") from None
    return tuple(value)


def _path(fields: Mapping[str, Any], where: str) -> None:
    if "path" in fields and fields["path"] != "default":
        raise Rejected(f"{where} {_shown(fields['path'])} refused: only handlers in the "
                       "handler directory run (path must be \"default\" or absent)")


def _flag(fields: Mapping[str, Any], name: str, where: str) -> bool:
    value = fields.get(name, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Rejected(f"{where} must be true or false, not {_shown(value)}")


def _count(fields: Mapping[str, Any], name: str, where: str) -> Optional[int]:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10 ** 9:
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return int(value.strip())
    raise Rejected(f"{where} must be a count (a whole number), not {_shown(value)}")


def _user(action: Mapping[str, Any], where: str) -> str:
    user = action.get("runAsUser", "")
    if user is None or user == "":
        return ""
    if not isinstance(user, str) or not _USER.fullmatch(user):
        raise Rejected(f"{where}.runAsUser {_shown(user)} is not a user name")
    return user


def _note_unknown(fields: Mapping[str, Any], known, where: str, ignored: List[str]) -> None:
    prefix = f"{where}." if where else ""
    ignored.extend(f"{prefix}{_shown(key, 40)}" for key in fields if key not in known)



def _shown(value: object, limit: int = 60) -> str:
    """VALUE for a reason: JSON-ish, escaped, cut at LIMIT characters."""
    text = ascii(value) if isinstance(value, str) else json_kind(value)
    return text if len(text) <= limit else text[:limit] + "..."
