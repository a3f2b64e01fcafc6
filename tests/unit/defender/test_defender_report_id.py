"""defender/report_id.py: ids strictly increasing within a run and across restarts."""

import logging
import os

import pytest
from hypothesis import given, strategies as st

from chariotd.defender import report_id
from chariotd.defender.report_id import ReportIds


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_ids_follow_the_clock_in_ms(tmp_path):
    ids = ReportIds(tmp_path / "rid", Clock(1_700_000_000.25))
    assert ids.next_id() == 1_700_000_000_250
    assert (tmp_path / "rid").read_text() == "1700000000250\n"
    assert (tmp_path / "rid").stat().st_mode & 0o777 == 0o600


def test_same_ms_and_clock_stepping_back_still_increase(tmp_path):
    clock = Clock(1_700_000_000.0)
    ids = ReportIds(tmp_path / "rid", clock)
    first = ids.next_id()
    second = ids.next_id()              # same millisecond
    clock.now = 10.0                    # booted without a clock: 1970
    third = ids.next_id()
    assert first < second < third == first + 2


def test_restart_reads_the_last_id(tmp_path):
    clock = Clock(1_700_000_000.0)
    before = ReportIds(tmp_path / "rid", clock)
    sent = [before.next_id() for _ in range(3)]
    clock.now = 5.0                     # the restart came up with a clock in 1970
    after = ReportIds(tmp_path / "rid", clock)   # a new object, the same state file
    assert after.peek() == sent[-1]
    assert after.next_id() == sent[-1] + 1
    clock.now = 1_800_000_000.0         # NTP set the clock
    assert ReportIds(tmp_path / "rid", clock).next_id() == 1_800_000_000_000


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"-5\n", b"0\n", b"1" * 30,
                                     b"\xff\xfe", b"99999999999999999999\n"])
def test_unusable_state_is_logged_and_the_clock_decides(tmp_path, caplog, content):
    (tmp_path / "rid").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        ids = ReportIds(tmp_path / "rid", Clock(1_700_000_000.0))
    assert "unusable" in caplog.text
    assert ids.next_id() == 1_700_000_000_000


def test_symlinked_state_is_not_followed(tmp_path, caplog):
    (tmp_path / "elsewhere").write_text("9999999999999\n")
    os.symlink(tmp_path / "elsewhere", tmp_path / "rid")
    with caplog.at_level(logging.WARNING):
        ids = ReportIds(tmp_path / "rid", Clock(1_700_000_000.0))
    assert "symbolic link" in caplog.text
    assert ids.next_id() == 1_700_000_000_000
    assert not (tmp_path / "rid").is_symlink()      # replaced, the target untouched
    assert (tmp_path / "elsewhere").read_text() == "9999999999999\n"


def test_an_id_that_cannot_be_saved_is_not_handed_out(tmp_path):
    ids = ReportIds(tmp_path / "missing-dir" / "rid", Clock(1_700_000_000.0))
    with pytest.raises(OSError):
        ids.next_id()
    assert ids.peek() is None


def test_no_id_past_the_top():
    with pytest.raises(OverflowError):
        report_id.next_after(report_id.MAX_REPORT_ID, 0)


@given(st.integers(0, report_id.MAX_REPORT_ID - 1), st.integers(-10**12, 10**16))
def test_next_is_always_above_last_and_positive(last, now_ms):
    value = report_id.next_after(last, now_ms)
    assert value > last and value >= 1
