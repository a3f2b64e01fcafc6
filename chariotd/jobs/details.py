"""statusDetails and outcomes (pure): what an update tells the cloud about a step,
always within what AWS accepts (IOT_CORE.md §7.2, §7.8):

- keys 1-128 characters of `[a-zA-Z0-9:_-]`; a key outside that is dropped (and named
  in the notes for a log line), never sent;
- values 1-1024 UTF-16 code units without Unicode category C characters: such a
  character is escaped (`\\n`, `\\x1b`, `\\u200b`); so is any character that was not
  assigned in Unicode 3.2, since the service may know an older Unicode than we do and
  an unassigned character is category C to it. Too long a value is cut: a reason keeps
  its head, an output tail its end, marked by "...". An empty value is left out;
- at most MAX_PAIRS pairs (AWS documents 10 for CancelJobExecution and no cap for
  updates; 10 is safe for both), our own keys first.

Our keys: `reason`, `exitCode` or `signal`, `stderr` (its tail, on success too),
`stdout` (its tail, only with includeStdOut), `step` (which step, for documents of
several). A handler's `$JOB_RESULT_FILE` (`read_result`) may add its own; with a final
status there, its keys win over ours, its status over the exit status.
"""

from __future__ import annotations

import re
import signal as signals
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from chariotd.formats.errors import FormatError
from chariotd.formats.json import load as load_json

IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
REJECTED = "REJECTED"
FINAL = (SUCCEEDED, FAILED)
RESULT_STATUSES = (IN_PROGRESS, SUCCEEDED, FAILED)

MAX_PAIRS = 10
MAX_KEY_CHARS = 128
MAX_VALUE_UNITS = 1024
RESULT_FILE_LIMIT = 64 * 1024  # bytes of $JOB_RESULT_FILE read; more is refused
TAIL_BYTES = 8 * 1024  # bytes of a handler's stdout/stderr kept (more than 1024 units)
CUT = "..."
OUR_KEYS = ("reason", "exitCode", "signal", "step", "stderr", "stdout")

INTERRUPTED = "interrupted"
TIMEOUT = "timeout"

_KEY = re.compile(r"[a-zA-Z0-9:_-]{1,%d}" % MAX_KEY_CHARS)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_OLD = unicodedata.ucd_3_2_0


def valid_key(key: object) -> bool:
    return isinstance(key, str) and _KEY.fullmatch(key) is not None


def _units(char: str) -> int:
    return 2 if ord(char) > 0xFFFF else 1


def _piece(char: str) -> str:
    """CHAR as it may be sent: itself, or an ASCII escape."""
    if char in _NAMED:
        return _NAMED[char]
    if (char.isascii() and char.isprintable()) or (
            not unicodedata.category(char).startswith("C")
            and _OLD.category(char) != "Cn"):
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean_value(text: str, keep_end: bool = False) -> Optional[str]:
    """TEXT as a statusDetails value (escaped, cut to MAX_VALUE_UNITS UTF-16 code
    units, its head kept, or its end with KEEP_END), or None when nothing is left."""
    pieces = [_piece(char) for char in text]
    total = sum(_units(c) for piece in pieces for c in piece)
    if total > MAX_VALUE_UNITS:
        budget, kept = MAX_VALUE_UNITS - len(CUT), []
        for piece in (reversed(pieces) if keep_end else pieces):
            size = sum(_units(c) for c in piece)
            if size > budget:
                break
            kept.append(piece)
            budget -= size
        pieces = [CUT] + kept[::-1] if keep_end else kept + [CUT]
    value = "".join(pieces)
    return value or None


def output_tail(data: bytes) -> Optional[str]:
    """The end of a handler's output as a value, or None when it wrote nothing."""
    text = data[-TAIL_BYTES:].decode("utf-8", errors="replace").rstrip()
    return clean_value(text, keep_end=True) if text else None


def limited(pairs: Mapping[str, str], notes: Optional[List[str]] = None) -> Dict[str, str]:
    """PAIRS (in order of priority) made sendable: bad keys and empty values left out,
    values cleaned, at most MAX_PAIRS. What was left out is said in NOTES."""
    out: Dict[str, str] = {}
    for key, value in pairs.items():
        if not valid_key(key):
            _note(notes, f"statusDetails key {ascii(key)[:60]} is not allowed; left out")
            continue
        cleaned = clean_value(value) if isinstance(value, str) else None
        if cleaned is None:
            _note(notes, f"statusDetails {key}: empty or not text; left out")
            continue
        if len(out) >= MAX_PAIRS:
            _note(notes, f"statusDetails {key}: more than {MAX_PAIRS} pairs; left out")
            continue
        out[key] = cleaned
    return out


def _note(notes: Optional[List[str]], text: str) -> None:
    if notes is not None:
        notes.append(text)


# ------------------------------------------------------------------ results

@dataclass(frozen=True)
class Outcome:
    """What one update says: a status and its (sendable) statusDetails."""

    status: str
    details: Dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    """How one handler run ended (built by the runner)."""

    exit_status: Optional[int] = None  # exit code, or -N when killed by signal N
    timed_out: bool = False
    not_started: Optional[str] = None  # why it never ran
    stdout: bytes = b""  # tails (at most TAIL_BYTES each)
    stderr: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not self.timed_out and self.not_started is None


@dataclass(frozen=True)
class HandlerResult:
    """What a handler wrote to $JOB_RESULT_FILE."""

    status: str
    details: Tuple[Tuple[str, str], ...] = ()

    @property
    def final(self) -> bool:
        return self.status in FINAL


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def step_pairs(result: StepResult) -> Dict[str, str]:
    """Our keys for how a step ended: reason, exitCode or signal."""
    if result.not_started is not None:
        return {"reason": result.not_started}
    if result.timed_out:
        return {"reason": TIMEOUT}
    status = result.exit_status
    if status is not None and status < 0:
        name = signal_name(-status)
        return {"reason": f"handler was killed by signal {-status} ({name})",
                "signal": name}
    return {"reason": f"handler exited with status {status}", "exitCode": str(status)}


def step_outcome(result: StepResult, include_stdout: bool,
                 handler_result: Optional[HandlerResult] = None,
                 step_name: Optional[str] = None,
                 notes: Optional[List[str]] = None) -> Outcome:
    """The outcome of a step: its exit (a timeout or a signal is a failure; stderr
    never decides), unless the handler wrote a final status to its result file, which
    wins (it cannot turn a timeout into success: the time was up)."""
    ours = step_pairs(result)
    if step_name is not None:
        ours["step"] = step_name
    stderr = output_tail(result.stderr)
    if stderr:
        ours["stderr"] = stderr
    stdout = output_tail(result.stdout) if include_stdout else None
    if stdout:
        ours["stdout"] = stdout
    status = SUCCEEDED if result.ok else FAILED
    if handler_result is not None and handler_result.final and not result.timed_out:
        status = handler_result.status
        return Outcome(status, limited({**dict(handler_result.details), **{
            k: v for k, v in ours.items() if k not in dict(handler_result.details)}},
            notes))
    return Outcome(status, limited(ours, notes))


def interrupted_outcome(handler_result: Optional[HandlerResult]) -> Outcome:
    """After a restart found the execution recorded as running: the handler's final
    result when it wrote one (a reboot handler's way to report), else FAILED
    "interrupted"."""
    if handler_result is not None and handler_result.final:
        pairs = dict(handler_result.details)
        pairs.setdefault("reason", f"handler reported {handler_result.status} before "
                                   "the daemon restarted")
        return Outcome(handler_result.status, limited(pairs))
    return Outcome(FAILED, {"reason": INTERRUPTED})


def progress_outcome(handler_result: HandlerResult) -> Outcome:
    return Outcome(IN_PROGRESS, limited(dict(handler_result.details)))


def read_result(data: bytes, notes: Optional[List[str]] = None) -> HandlerResult:
    """`{"status": S, "statusDetails": {string: string}}` from DATA (a handler wrote
    it; anything may be there). Numbers and booleans as values become their JSON text;
    other values and bad keys are left out and noted. FormatError when there is no
    usable status."""
    if len(data) > RESULT_FILE_LIMIT:
        raise FormatError(f"{len(data)} bytes; at most {RESULT_FILE_LIMIT}")
    value = load_json(data)
    if not isinstance(value, dict):
        raise FormatError("not a JSON object")
    status = value.get("status")
    if status not in RESULT_STATUSES:
        raise FormatError(f"status {ascii(status)[:40]} is not one of "
                          f"{', '.join(RESULT_STATUSES)}")
    raw = value.get("statusDetails", {})
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise FormatError("statusDetails is not an object")
    pairs: List[Tuple[str, str]] = []
    for key, member in raw.items():
        if isinstance(member, bool):
            member = "true" if member else "false"
        elif isinstance(member, (int, float)):
            member = repr(member)
        if not isinstance(member, str):
            _note(notes, f"statusDetails {ascii(key)[:60]}: not text; left out")
            continue
        pairs.append((key, member))
    return HandlerResult(status, tuple(pairs[:4 * MAX_PAIRS]))
