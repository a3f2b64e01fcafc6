"""SIGKILL of the whole tree at random moments (issue 8), restarted each time as runit
would: during drains, shadow updates and fleet provisioning. Nothing may be lost, no
outfile or certificate may be partial or corrupt, and every request file must be
handled in the end. The campaigns live in tests/fault_campaigns.py."""

from __future__ import annotations

import pytest

import fault_campaigns as campaigns


@pytest.mark.slow
def test_sigkill_during_drains(test_pki, tmp_path):
    tally = campaigns.kill_drain(test_pki, tmp_path, rounds=20)
    print(tally.as_dict())
    assert tally.lost == 0 and tally.faults == 20
