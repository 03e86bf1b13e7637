"""The output model of a conversion: plain Python data plus a few markers for torch objects.

The converter turns a pickle tree into values of these kinds only: ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, ``complex``, ``list``, ``tuple``, ``dict`` and the markers below.
The emitter writes them with only the opcodes and globals stock weights-only loading accepts.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from ckptguard._policy._data import load_shipped_toml
from ckptguard._record import Record, set_field

FORMAT_KEY = "__ckptguard__"
FORMAT_VERSION = 1

# Plain slotted classes, not dataclasses: generating dataclass methods costs ~0.4 ms per class
# at every start of the CLI (see ckptguard._record).


class OGlobal(Record):
    """A global from the weights-only table (never one named only by the source file)."""

    __slots__ = ("module", "name")
    module: str
    name: str

    def __init__(self, module: str, name: str) -> None:
        set_field(self, "module", module)
        set_field(self, "name", name)

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"


class _Node:
    """Mutable, compared by identity (shared values stay shared when written)."""

    __slots__: tuple[str, ...] = ()

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"


class OCall(_Node):
    """``func(*args)`` kept from the source (a torch rebuild, an OrderedDict, ...)."""

    __slots__ = ("args", "dictitems", "func", "has_state", "listitems", "op", "state")

    def __init__(  # noqa: PLR0917
        self,
        func: OGlobal,
        args: tuple[Any, ...],
        op: str = "REDUCE",  # REDUCE or NEWOBJ
        state: Any = None,
        has_state: bool = False,
        dictitems: list[tuple[Any, Any]] | None = None,
        listitems: list[Any] | None = None,
    ) -> None:
        self.func = func
        self.args = args
        self.op = op
        self.state = state
        self.has_state = has_state
        self.dictitems: list[tuple[Any, Any]] = [] if dictitems is None else dictitems
        self.listitems: list[Any] = [] if listitems is None else listitems


class OStorage(_Node):
    """A storage record: ``('storage', storage_class, key, location, numel)`` persistent id."""

    __slots__ = ("data", "key", "location", "nbytes", "numel", "storage_class")

    def __init__(  # noqa: PLR0917
        self,
        storage_class: OGlobal,
        key: str,
        location: str,
        numel: int,
        nbytes: int,  # bytes of the record the pid needs
        data: bytes | None = None,  # the record's bytes when it is new (numpy arrays)
    ) -> None:
        self.storage_class = storage_class
        self.key = key
        self.location = location
        self.numel = numel
        self.nbytes = nbytes
        self.data = data


class OSet(_Node):
    __slots__ = ("frozen", "items")

    def __init__(self, items: list[Any], frozen: bool = False) -> None:
        self.items = items
        self.frozen = frozen


class OOpaque(_Node):
    """Inspect only: something convert would refuse, with the reason."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


WEIGHTS_ONLY_FILE = os.path.normpath(
    os.path.join(os.path.dirname(__file__), os.pardir, "data", "weights_only.toml")
)


@functools.lru_cache(maxsize=1)
def weights_only_globals() -> frozenset[str]:
    """Qualified names stock ``torch.load(weights_only=True)`` resolves (data/weights_only.toml)."""

    doc = load_shipped_toml(WEIGHTS_ONLY_FILE)
    return frozenset(name for section in doc.values() for name in section["names"])
