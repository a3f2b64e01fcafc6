"""memory.AfterBursts: memory is released once after a burst, when the role is quiet
again; never during the burst, never without one (a fake clock drives the loop)."""

from __future__ import annotations

from chariotd.kernel import memory
from chariotd.kernel.loop import Loop


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def setup(**options):
    clock = Clock()
    loop = Loop(clock=clock)
    frames, released = [0], []
    memory.AfterBursts(loop, lambda: frames[0], release=lambda: released.append(clock.now),
                       busy=100, quiet=2.0, quiet_frames=5, **options)

    def pass_at(when, new_frames=0):
        """One pass of the loop at WHEN, having handled NEW_FRAMES frames."""
        clock.now = when
        frames[0] += new_frames
        loop._run_timers()
        for callback in loop._after_each:
            callback()

    return pass_at, released, loop


def test_released_once_when_quiet_after_a_burst():
    pass_at, released, loop = setup()
    for tick in range(20):  # 1,000 frames over 2 s
        pass_at(tick * 0.1, 50)
    assert released == []
    pass_at(3.0, 2)  # the check due at 2.1 s sees the burst: it looks again at 5 s
    assert released == []
    pass_at(4.0, 3)  # a trickle is quiet enough
    pass_at(5.1)
    assert released == [5.1]
    pass_at(10.0)
    pass_at(20.0)
    assert released == [5.1]  # once per burst


def test_not_released_while_the_burst_lasts():
    pass_at, released, _ = setup()
    for tick in range(200):  # 20 s of steady traffic
        pass_at(tick * 0.1, 50)
    assert released == []
    pass_at(30.0)
    pass_at(33.0)
    assert len(released) == 1


def test_an_idle_role_sets_no_timer():
    pass_at, released, loop = setup()
    for tick in range(100):
        pass_at(tick, tick % 2)  # a few frames now and then
    assert released == [] and loop._next_timeout_ms() is None


def test_release_runs_here():
    memory.release()  # gc and malloc_trim (or only gc where libc has none)
