from hypothesis import given, strategies as st

from chariotd.broker_link.windows import Windows


def items(*ids):
    return [(i, f"t/{i}", b"x", 1) for i in ids]


def test_at_most_the_window_is_taken_the_rest_waits_in_order():
    w = Windows()
    w.add("msg0", 3, items(1, 2, 3, 4, 5))
    assert [i[0] for i in w.take("msg0")] == [1, 2, 3]
    assert w.take("msg0") == []  # the window is full
    assert (w.unacked("msg0"), w.waiting("msg0")) == (3, 2)
    w.done("msg0")
    assert [i[0] for i in w.take("msg0")] == [4]
    w.done("msg0")
    w.done("msg0")
    assert [i[0] for i in w.take("msg0")] == [5]
    assert w.take("msg0") == []


def test_senders_have_their_own_windows():
    w = Windows()
    w.add("msg0", 1, items(1, 2))
    w.add("msg1", 2, items(10, 11, 12))
    assert [i[0] for i in w.take("msg0")] == [1]
    assert [i[0] for i in w.take("msg1")] == [10, 11]
    w.done("msg1")
    assert w.take("msg0") == []
    assert [i[0] for i in w.take("msg1")] == [12]


def test_the_latest_window_counts_and_never_below_one():
    w = Windows()
    w.add("msg0", 10, items(1, 2))
    assert len(w.take("msg0")) == 2
    w.add("msg0", 1, items(3))  # isolating a suspect: one at a time
    assert w.take("msg0") == []
    w.done("msg0")
    w.done("msg0")
    assert [i[0] for i in w.take("msg0")] == [3]
    w.add("msg0", 0, items(4))
    w.done("msg0")
    assert [i[0] for i in w.take("msg0")] == [4]


def test_clear_forgets_everything_and_stray_dones_are_harmless():
    w = Windows()
    w.add("msg0", 2, items(1, 2, 3))
    w.take("msg0")
    w.clear()
    w.done("msg0")  # an acknowledgement of the old connection
    assert (w.unacked("msg0"), w.waiting("msg0"), w.take("msg0")) == (0, 0, [])
    w.add("msg0", 2, items(4))
    w.done("msg0")
    assert w.unacked("msg0") == 0
    assert [i[0] for i in w.take("msg0")] == [4]


@given(st.integers(1, 12), st.lists(st.sampled_from(["add", "take", "done"]), max_size=200))
def test_never_more_than_the_window_unacked_and_order_kept(window, ops):
    w = Windows()
    sent, taken, next_id, unacked = [], [], 0, 0
    for op in ops:
        if op == "add":
            w.add("d", window, items(next_id))
            sent.append(next_id)
            next_id += 1
        elif op == "take":
            got = w.take("d")
            taken += [i[0] for i in got]
            unacked += len(got)
        elif unacked:
            w.done("d")
            unacked -= 1
        assert w.unacked("d") == unacked <= window
        assert taken == sent[:len(taken)]
        assert w.waiting("d") == len(sent) - len(taken)
