"""The messages backlog (chariotd/watchers/queue.py): orders, priorities, slots."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings, strategies as st

from chariotd.watchers.queue import ORDERS, Backlog, Entry


def drain(backlog):
    out = []
    while True:
        entry = backlog.pop()
        if entry is None:
            return out
        out.append(entry.name)


def hhmm(text):
    hours, minutes = map(int, text.split(":"))
    return (hours * 60 + minutes) * 60 * 10**9


# EXTENSIONS A, the worked example: all six waiting at start.
WORKED_EXAMPLE = [
    Entry("A", hhmm("23:12")),
    Entry("B", hhmm("11:51"), priority=2),
    Entry("C", hhmm("03:22"), priority=1, slot="xyz"),
    Entry("D", hhmm("11:51"), priority=1, slot="xyz"),
    Entry("E", hhmm("16:20"), priority=3),
    Entry("F", hhmm("11:45")),
]


@pytest.mark.parametrize("order,expected", [
    ("lexical", "DBEACF"),
    ("oldest-first", "DBECFA"),
    ("newest-first", "DBEAFC"),
    ("reverse-lexical", "DBEFCA"),
])
@pytest.mark.parametrize("arrival", ["ABCDEF", "FEDCBA", "DCAEBF"])
def test_worked_example_of_extensions_a(order, expected, arrival):
    backlog = Backlog(order)
    by_name = {entry.name: entry for entry in WORKED_EXAMPLE}
    for name in arrival:
        entry = by_name[name]
        backlog.add(Entry(entry.name, entry.mtime_ns, entry.priority, entry.slot))
    assert "".join(drain(backlog)) == expected


@pytest.mark.parametrize("order,expected", [
    ("lexical", ["a", "b", "c", "d"]),
    ("reverse-lexical", ["d", "c", "b", "a"]),
    ("oldest-first", ["c", "a", "d", "b"]),   # a and d share an mtime: by name
    ("newest-first", ["b", "a", "d", "c"]),
])
def test_orders_of_unprioritised_messages(order, expected):
    backlog = Backlog(order)
    for name, mtime in [("a", 20), ("b", 30), ("c", 10), ("d", 20)]:
        backlog.add(Entry(name, mtime))
    assert drain(backlog) == expected


def test_unknown_order_is_refused():
    with pytest.raises(ValueError, match="lexical"):
        Backlog("random")


def test_lower_priority_first_and_ties_in_the_directory_order():
    backlog = Backlog("reverse-lexical")
    for name, priority in [("p1", 5), ("p2", -1), ("p3", 5), ("p4", 2.5), ("x", None)]:
        backlog.add(Entry(name, 0, priority))
    assert drain(backlog) == ["p2", "p4", "p3", "p1", "x"]


def test_a_demoted_slot_entry_stays_demoted_when_the_newer_one_leaves():
    backlog = Backlog()
    backlog.add(Entry("old", 1, slot="s"))
    backlog.add(Entry("plain", 0))
    backlog.add(Entry("new", 2, slot="s"))
    assert backlog.pop().name == "new"
    assert backlog.prioritised_names() == []
    assert drain(backlog) == ["old", "plain"]


def test_an_older_slot_arrival_after_the_head_left_is_not_prioritised_over_a_newer_waiting_one():
    backlog = Backlog()
    backlog.add(Entry("b-mid", 5, slot="s"))
    backlog.add(Entry("c-new", 9, slot="s"))     # b-mid demoted
    assert backlog.pop().name == "c-new"
    backlog.add(Entry("a-oldest", 1, slot="s"))  # b-mid (waiting) is newer
    assert backlog.prioritised_names() == []
    backlog.add(Entry("d-newest", 10, slot="s"))
    assert backlog.prioritised_names() == ["d-newest"]


def test_slot_keys_string_and_number_differ_but_int_and_float_agree():
    backlog = Backlog()
    backlog.add(Entry("a", 1, slot="1"))
    backlog.add(Entry("b", 2, slot=1))
    backlog.add(Entry("c", 3, slot=1.0))
    assert sorted(backlog.prioritised_names()) == ["a", "c"]


def test_popped_entries_say_whether_they_were_prioritised_and_can_be_readded():
    backlog = Backlog()
    backlog.add(Entry("x", 0))
    backlog.add(Entry("p", 0, priority=1))
    first = backlog.pop()
    assert (first.name, first.prioritised) == ("p", True)
    backlog.add(first)  # a retry
    assert [(e.name, e.prioritised) for e in (backlog.pop(), backlog.pop())] == [
        ("p", True), ("x", False)]
    assert backlog.pop() is None


def test_take_and_discard_and_replace():
    backlog = Backlog()
    for name in "cab":
        backlog.add(Entry(name))
    backlog.discard("a")
    assert "a" not in backlog and len(backlog) == 2
    assert backlog.take("c").name == "c" and backlog.take("c") is None
    backlog.add(Entry("b", 0, priority=1))  # replaced: now prioritised
    backlog.add(Entry("a"))
    assert [(e.name, e.prioritised) for e in (backlog.pop(), backlog.pop())] == [
        ("b", True), ("a", False)]
    assert backlog.pop() is None and len(backlog) == 0


def test_many_replacements_keep_the_heaps_small():
    backlog = Backlog()
    for round_ in range(50):
        for index in range(100):
            backlog.add(Entry(f"n{index}", round_, priority=round_ % 3 or None))
    assert len(backlog) == 100
    assert len(backlog._ordinary) + len(backlog._prioritised) <= 2 * 100 + 1024
    assert sorted(drain(backlog)) == sorted(f"n{i}" for i in range(100))


# -- properties, against a plain reference model -------------------------------------------

class Model:
    """EXTENSIONS A written the slow, obvious way."""

    def __init__(self, order):
        self.order = order
        self.waiting = {}  # name -> [entry, prioritised]

    def _slot_key(self, slot):
        return (isinstance(slot, str), slot)

    def add(self, entry):
        self.waiting.pop(entry.name, None)
        prioritised = entry.priority is not None
        if entry.slot is not None:
            same = [w for w in self.waiting.values()
                    if w[0].slot is not None
                    and self._slot_key(w[0].slot) == self._slot_key(entry.slot)]
            age = (entry.mtime_ns, entry.name)
            prioritised = all((w[0].mtime_ns, w[0].name) < age for w in same)
            if prioritised:
                for w in same:
                    w[1] = False
        self.waiting[entry.name] = [entry, prioritised]

    def discard(self, name):
        self.waiting.pop(name, None)

    def _compare(self, a, b):
        if self.order == "lexical":
            keys = (a.name, b.name)
        elif self.order == "reverse-lexical":
            keys = (b.name, a.name)
        elif self.order == "oldest-first":
            keys = ((a.mtime_ns, a.name), (b.mtime_ns, b.name))
        else:
            keys = ((-a.mtime_ns, a.name), (-b.mtime_ns, b.name))
        return (keys[0] > keys[1]) - (keys[0] < keys[1])

    def pop(self):
        prioritised = [w[0] for w in self.waiting.values() if w[1]]
        if prioritised:
            def compare(a, b):
                pa = 1 if a.priority is None else a.priority
                pb = 1 if b.priority is None else b.priority
                return (pa > pb) - (pa < pb) or self._compare(a, b)
            entry = min(prioritised, key=functools.cmp_to_key(compare))
        elif self.waiting:
            entry = min((w[0] for w in self.waiting.values()),
                        key=functools.cmp_to_key(self._compare))
        else:
            return None
        return entry.name, self.waiting.pop(entry.name)[1]


names = st.sampled_from([f"f{i}" for i in range(12)])
arrivals = st.builds(
    lambda name, mtime, priority, slot: ("add", Entry(name, mtime, priority, slot)),
    names, st.integers(0, 6), st.one_of(st.none(), st.integers(-2, 3), st.just(1.5)),
    st.one_of(st.none(), st.sampled_from(["s", "t", 1])))
operations = st.lists(st.one_of(arrivals, arrivals, st.just(("pop",)),
                                st.tuples(st.just("discard"), names)), max_size=60)


def check_invariants(backlog):
    by_slot = {}
    for name in backlog.names():
        entry = backlog.get(name)
        if entry.slot is not None:
            by_slot.setdefault((isinstance(entry.slot, str), entry.slot), []).append(entry)
    for entries in by_slot.values():
        prioritised = [e for e in entries if e.prioritised]
        assert len(prioritised) <= 1, "a slot has at most one prioritised message"
        if prioritised:
            newest = max(entries, key=lambda e: (e.mtime_ns, e.name))
            assert prioritised[0] is newest, "a slot's prioritised message is its newest"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ORDERS), operations)
def test_backlog_matches_the_reference_model(order, ops):
    backlog, model = Backlog(order), Model(order)
    for op in ops:
        if op[0] == "add":
            entry = op[1]
            backlog.add(Entry(entry.name, entry.mtime_ns, entry.priority, entry.slot))
            model.add(entry)
        elif op[0] == "discard":
            backlog.discard(op[1])
            model.discard(op[1])
        else:
            popped = backlog.pop()
            assert (None if popped is None else (popped.name, popped.prioritised)) == model.pop()
        check_invariants(backlog)
        assert sorted(backlog.names()) == sorted(model.waiting)
    while model.waiting:
        popped = backlog.pop()
        assert (popped.name, popped.prioritised) == model.pop()
    assert backlog.pop() is None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ORDERS), operations)
def test_a_prioritised_message_never_waits_behind_an_unprioritised_one(order, ops):
    backlog = Backlog(order)
    for op in ops + [("pop",)] * 60:
        if op[0] == "add":
            backlog.add(op[1])
        elif op[0] == "discard":
            backlog.discard(op[1])
        else:
            popped = backlog.pop()
            if popped is not None and not popped.prioritised:
                assert backlog.prioritised_names() == []


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ORDERS),
       st.lists(st.tuples(st.text(min_size=1, max_size=4), st.integers(0, 5),
                          st.one_of(st.none(), st.integers(0, 3)),
                          st.one_of(st.none(), st.sampled_from(["s", 2]))),
                max_size=80, unique_by=lambda arrival: arrival[0]),
       st.lists(st.booleans(), max_size=80))
def test_every_name_comes_out_exactly_once(order, arrivals_, pop_after):
    backlog = Backlog(order)
    out = []
    for (name, mtime, priority, slot), pop in zip(arrivals_, pop_after + [False] * 80):
        backlog.add(Entry(name, mtime, priority, slot))
        if pop:
            out.append(backlog.pop().name)
    out += drain(backlog)
    assert sorted(out) == sorted(name for name, *_ in arrivals_)
