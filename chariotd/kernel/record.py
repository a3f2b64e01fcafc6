"""Small records: classes whose annotated fields become an `__init__` (positional or
keyword), equality, `repr` and, when frozen, immutability and a hash.

What `dataclasses` does, for the few records chariotd's start-up path defines, without
its cost: importing `dataclasses` (and the `inspect` it pulls in) and generating each
class's methods took ~18 ms of every start, a tenth of start-to-connected.

    class Certificate(Record, frozen=True):
        id: str
        cert_path: Path

    class Config(Record):
        clientid: str
        messages: List[MessageDir] = Factory(list)   # a fresh list per record
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple


class Factory:
    """A default made anew for every record (for mutable defaults such as lists)."""
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]):
        self.make = make


class Record:
    # Class attributes, set for each subclass (not annotated: annotations are fields).
    field_names = ()
    field_defaults = {}
    _frozen = False
    _hidden = frozenset()

    def __init_subclass__(cls, frozen: Optional[bool] = None, hidden: Tuple[str, ...] = (),
                          **kwargs):
        """FROZEN (inherited when not given): immutable and hashable. HIDDEN: fields
        `repr` leaves out (a secret)."""
        super().__init_subclass__(**kwargs)
        annotations = cls.__dict__.get("__annotations__", {})
        cls.field_names = tuple(annotations)
        cls.field_defaults = {name: cls.__dict__[name] for name in cls.field_names
                              if name in cls.__dict__}
        if frozen is not None:
            cls._frozen = frozen
        cls._hidden = frozenset(hidden)
        if not cls._frozen:
            cls.__hash__ = None  # mutable: unhashable, as dataclasses would make it

    def __init__(self, *args, **fields):
        name_of = type(self).__name__
        if len(args) > len(self.field_names):
            raise TypeError(f"{name_of}: too many arguments")
        for name, value in zip(self.field_names, args):
            if name in fields:
                raise TypeError(f"{name_of}: {name} given twice")
            fields[name] = value
        unknown = fields.keys() - set(self.field_names)
        if unknown:
            raise TypeError(f"{name_of}: unexpected {sorted(unknown)}")
        for name in self.field_names:
            if name in fields:
                value = fields[name]
            elif name in self.field_defaults:
                value = self.field_defaults[name]
                if isinstance(value, Factory):
                    value = value.make()
            else:
                raise TypeError(f"{name_of}: missing {name}")
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if self._frozen:
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__delattr__(self, name)

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.field_names)

    def __hash__(self):
        return hash((type(self), *(getattr(self, name) for name in self.field_names)))

    def __repr__(self):
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.field_names
                          if name not in self._hidden)
        return f"{type(self).__name__}({shown})"
