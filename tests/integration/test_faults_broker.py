"""Broker and network faults (issue 8): the broker SIGKILLed during a drain, a link
that goes silent without closing, and a restart storm against a broker that refuses
the certificate. The campaigns live in tests/fault_campaigns.py (bench/reliability.py
runs them with larger counts)."""

from __future__ import annotations

import pytest

import fault_campaigns as campaigns


@pytest.mark.slow
def test_broker_sigkilled_three_times_during_a_5000_message_drain(test_pki, tmp_path):
    tally = campaigns.broker_kill_drain(test_pki, tmp_path, messages=5000, kills=3)
    print(tally.as_dict())
    assert tally.lost == 0 and tally.faults == 3


@pytest.mark.parametrize("how", ["proxy", "sigstop"])
def test_a_silent_link_is_noticed_within_the_keepalive_bound(test_pki, tmp_path, how):
    """keepalive 2 s: PINGREQ after 2 s without a byte in, closed 2 s later without a
    PINGRESP, checks every 0.5 s: at most 5 s from the last byte received (README)."""
    tally = campaigns.silent_link(test_pki, tmp_path, stalls=1, keepalive=2, how=how)
    print(tally.as_dict())
    assert tally.lost == 0
    assert max(tally.detections) <= campaigns.silence_bound(2) + 1.0


@pytest.mark.slow
def test_restart_storm_against_a_broker_that_refuses_the_certificate(test_pki, rogue_pki,
                                                                       tmp_path):
    tally = campaigns.rejected_certificate_storm(test_pki, rogue_pki, tmp_path, restarts=20,
                                                   backoff_base=0.02)
    print(tally.as_dict())
    assert tally.faults == 20
