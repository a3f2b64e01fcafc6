from typing import List

import pytest

from chariotd.kernel.record import Factory, Record


class Point(Record, frozen=True):
    x: int
    y: int = 0


class Bag(Record):
    name: str
    items: List[int] = Factory(list)


class Secret(Record, frozen=True, hidden=("token",)):
    user: str
    token: str


def test_positional_keyword_and_default_fields():
    assert Point(1).y == 0
    assert Point(1, 2) == Point(x=1, y=2) == Point(y=2, x=1)
    assert Point(1, 2) != Point(2, 1)
    assert Point(1) != (1, 0)


@pytest.mark.parametrize("make", [
    lambda: Point(),                 # missing x
    lambda: Point(1, 2, 3),          # too many
    lambda: Point(1, x=2),           # twice
    lambda: Point(1, z=3),           # unknown
])
def test_bad_arguments_are_type_errors(make):
    with pytest.raises(TypeError):
        make()


def test_frozen_records_are_immutable_and_hashable():
    point = Point(1, 2)
    with pytest.raises(AttributeError):
        point.x = 5
    with pytest.raises(AttributeError):
        del point.y
    assert {Point(1, 2): "a"}[Point(1, 2)] == "a"


def test_mutable_records_take_changes_get_fresh_factory_defaults_and_are_unhashable():
    a, b = Bag("a"), Bag("b")
    a.items.append(1)
    assert b.items == [] and a.items == [1]
    a.name = "renamed"
    assert a == Bag("renamed", [1])
    with pytest.raises(TypeError):
        hash(a)


def test_repr_shows_fields_but_not_hidden_ones():
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    assert "hunter2" not in repr(Secret("me", "hunter2"))
    assert repr(Secret("me", "hunter2")) == "Secret(user='me')"
