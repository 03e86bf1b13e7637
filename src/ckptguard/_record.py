"""A tiny immutable record base for the types the scan path creates.

Generating dataclass methods costs start-up time the CLI is measured on, so the scan path's
types (the report of :mod:`ckptguard._results` included) use this instead. Subclasses declare
``__slots__`` and set their fields in ``__init__`` with ``set_field(self, "name", value)``
(``object.__setattr__``: the scanner creates records by the thousand, and a direct call is
the cheapest way past ``__setattr__``).
"""

from __future__ import annotations

set_field = object.__setattr__


class Record:
    """Immutable, slotted; equal, hashable and printed by its fields (in ``__slots__`` order)."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (cannot delete {name!r})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._fields()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), {n: getattr(self, n) for n in self.__slots__}))


def _rebuild(cls: type[Record], values: dict[str, object]) -> Record:
    obj = cls.__new__(cls)
    for name, value in values.items():
        set_field(obj, name, value)
    return obj
