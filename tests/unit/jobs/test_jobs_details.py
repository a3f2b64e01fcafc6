"""statusDetails within AWS's limits, step outcomes, $JOB_RESULT_FILE."""

import re
import unicodedata

import pytest
from hypothesis import given, strategies as st

from chariotd.formats.errors import FormatError
from chariotd.jobs.details import (FAILED, IN_PROGRESS, MAX_PAIRS, MAX_VALUE_UNITS,
                                   SUCCEEDED, HandlerResult, Outcome, StepResult,
                                   clean_value, interrupted_outcome, limited,
                                   output_tail, read_result, step_outcome)

AWS_KEY = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


def utf16_units(text):
    return len(text.encode("utf-16-le")) // 2


def aws_accepts_value(value):
    return (1 <= utf16_units(value) <= MAX_VALUE_UNITS
            and not any(unicodedata.category(c).startswith("C") for c in value))


def aws_accepts(details):
    return len(details) <= MAX_PAIRS and all(
        AWS_KEY.fullmatch(k) and aws_accepts_value(v) for k, v in details.items())


@given(st.text(max_size=3000))
def test_any_text_becomes_a_value_aws_accepts(text):
    value = clean_value(text)
    assert value is None or aws_accepts_value(value)
    tail = clean_value(text, keep_end=True)
    assert tail is None or aws_accepts_value(tail)


@given(st.binary(max_size=20000))
def test_any_output_becomes_a_tail_aws_accepts(data):
    tail = output_tail(data)
    assert tail is None or aws_accepts_value(tail)


@given(st.dictionaries(st.text(max_size=140), st.text(max_size=1100), max_size=20))
def test_any_pairs_become_details_aws_accepts(pairs):
    assert aws_accepts(limited(pairs))


def test_controls_are_escaped_and_long_values_cut():
    assert clean_value("a\nb\tc\x1b[31m\u200bz") == "a\\nb\\tc\\x1b[31m\\u200bz"
    assert clean_value("") is None
    head = clean_value("x" * 2000)
    assert head.endswith("...") and utf16_units(head) == MAX_VALUE_UNITS
    tail = clean_value("a" * 1500 + "END", keep_end=True)
    assert tail.startswith("...") and tail.endswith("END")
    emoji = clean_value("\U0001F600" * 600)  # 2 units each, and newer than Unicode 3.2
    assert aws_accepts_value(emoji)


def test_astral_characters_count_two_units():
    value = clean_value("\U00010000" * 600)  # LINEAR B, assigned in Unicode 4.0
    assert utf16_units(value) <= MAX_VALUE_UNITS


def test_exit_code_and_signal_are_told_apart():
    assert step_outcome(StepResult(exit_status=0), False) == Outcome(
        SUCCEEDED, {"reason": "handler exited with status 0", "exitCode": "0"})
    failed = step_outcome(StepResult(exit_status=3, stderr=b"oops\n"), False)
    assert failed == Outcome(FAILED, {"reason": "handler exited with status 3",
                                      "exitCode": "3", "stderr": "oops"})
    killed = step_outcome(StepResult(exit_status=-9), False)
    assert killed.status == FAILED and killed.details["signal"] == "SIGKILL"
    assert "exitCode" not in killed.details
    assert step_outcome(StepResult(exit_status=-15, timed_out=True), False).details == {
        "reason": "timeout"}
    assert step_outcome(StepResult(not_started="no handler 'x'"), False) == Outcome(
        FAILED, {"reason": "no handler 'x'"})


def test_stderr_on_success_and_stdout_only_when_asked():
    result = StepResult(exit_status=0, stdout=b"out\n", stderr=b"warn\n")
    assert step_outcome(result, False).details.get("stderr") == "warn"
    assert "stdout" not in step_outcome(result, False).details
    assert step_outcome(result, True).details["stdout"] == "out"
    assert step_outcome(result, False).status == SUCCEEDED


def test_a_final_handler_result_wins_but_not_over_a_timeout():
    wrote = HandlerResult(FAILED, (("reason", "disk full"), ("free", "0")))
    outcome = step_outcome(StepResult(exit_status=0), False, wrote)
    assert outcome.status == FAILED
    assert outcome.details == {"reason": "disk full", "free": "0", "exitCode": "0"}
    timed_out = step_outcome(StepResult(exit_status=-15, timed_out=True), False,
                             HandlerResult(SUCCEEDED))
    assert timed_out.status == FAILED
    progress = HandlerResult(IN_PROGRESS, (("p", "50%"),))
    assert step_outcome(StepResult(exit_status=1), False, progress).status == FAILED


def test_interrupted_unless_a_final_result_was_written():
    assert interrupted_outcome(None) == Outcome(FAILED, {"reason": "interrupted"})
    assert interrupted_outcome(HandlerResult(IN_PROGRESS)).details == {
        "reason": "interrupted"}
    rebooted = interrupted_outcome(HandlerResult(SUCCEEDED, (("booted", "yes"),)))
    assert rebooted.status == SUCCEEDED and rebooted.details["booted"] == "yes"


def test_result_file_contents():
    notes = []
    result = read_result(b'{"status": "IN_PROGRESS", "statusDetails": {"p": 5, '
                         b'"ok": true, "list": [1], "bad key": "x"}}', notes)
    assert result.status == IN_PROGRESS
    assert dict(result.details) == {"p": "5", "ok": "true", "bad key": "x"}
    assert len(notes) == 1
    assert limited(dict(result.details), notes) == {"p": "5", "ok": "true"}
    for data in (b"", b"[]", b'{"status": "DONE"}', b'{"status": "FAILED", '
                 b'"statusDetails": []}', b"\xff", b"[" * 10000,
                 b'{"status": "FAILED", "x": "' + b"a" * 70000 + b'"}'):
        with pytest.raises(FormatError):
            read_result(data)


@given(st.binary(max_size=500))
def test_any_bytes_are_a_result_or_a_format_error(data):
    try:
        result = read_result(data)
    except FormatError:
        return
    assert aws_accepts(limited(dict(result.details)))
