import os
import signal

from chariotd.kernel import backoff
from chariotd.kernel.loop import Loop


def test_backoff_is_full_jitter_and_capped():
    assert backoff.delay(0, base=1, uniform=lambda a, b: b) == 1
    assert backoff.delay(3, base=1, uniform=lambda a, b: b) == 8
    assert backoff.delay(50, base=1, uniform=lambda a, b: b) == backoff.Backoff().cap
    assert backoff.delay(5, base=1, uniform=lambda a, b: a) == 0
    assert backoff.ceiling(3, 1.0, 5.0) == 5.0 and backoff.ceiling(2, 1.0, 5.0) == 4.0


def test_device_defaults_base_half_a_second_and_one_connect_per_second():
    """Without the test seam: retries start at up to 0.5 s, never sooner than 1 s after
    the previous CONNECT (what the README promises); the seam is read when a role
    starts, from the environment it is given, never at import."""
    assert backoff.Backoff.from_environment({}) == backoff.Backoff(0.5, 120.0, 1.0)
    assert backoff.Backoff() == backoff.Backoff.from_environment({})
    assert backoff.Backoff.from_environment({"CHARIOTD_BACKOFF_BASE": "0.1"}) == \
        backoff.Backoff(0.1, 120.0, 0.1)
    assert backoff.Backoff.from_environment({"CHARIOTD_BACKOFF_BASE": "2"}).min_interval == 1.0
    for bad in ("", "x", "-1", "nan", "inf", "0"):
        assert backoff.Backoff.from_environment({"CHARIOTD_BACKOFF_BASE": bad}) == \
            backoff.Backoff()


def test_loop_timers_run_in_order_and_can_be_cancelled():
    loop = Loop()
    ran = []
    loop.call_later(0.02, lambda: ran.append("b"))
    loop.call_later(0.01, lambda: ran.append("a"))
    loop.call_later(0.015, lambda: ran.append("never")).cancel()
    loop.call_later(0.03, lambda: loop.stop(3))
    assert loop.run() == 3
    assert ran == ["a", "b"]


def test_loop_delivers_signals_through_the_wakeup_pipe():
    loop = Loop()
    seen = []
    loop.on_signal(signal.SIGUSR1, lambda: (seen.append("usr1"), loop.stop(0)))
    loop.call_later(0, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    try:
        assert loop.run() == 0
    finally:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    assert seen == ["usr1"]


def test_loop_reader_callbacks():
    loop = Loop()
    read_end, write_end = os.pipe()
    got = []

    def readable():
        got.append(os.read(read_end, 10))
        loop.stop(0)

    loop.add_reader(read_end, readable)
    os.write(write_end, b"hi")
    loop.run()
    assert got == [b"hi"]
    os.close(read_end)
    os.close(write_end)
