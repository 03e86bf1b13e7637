"""The output model of a conversion: plain Python data plus a few markers for torch objects.

The converter turns a pickle tree into values of these kinds only: ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, ``complex``, ``list``, ``tuple``, ``dict`` and the markers below.
The emitter writes them with only the opcodes and globals stock weights-only loading accepts.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from ckptguard._record import Record

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
        self._set(module=module, name=name)

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


WEIGHTS_ONLY_FILE = os.path.join(os.path.dirname(__file__), os.pardir, "data", "weights_only.toml")


@functools.lru_cache(maxsize=1)
def weights_only_globals() -> frozenset[str]:
    """Qualified names stock ``torch.load(weights_only=True)`` resolves (data/weights_only.toml)."""
    with open(WEIGHTS_ONLY_FILE, "rb") as f:
        text = f.read().decode("utf-8")
    names = parse_names_toml(text)
    if names is None:  # pragma: no cover - the shipped file is kept inside the subset
        import sys  # noqa: PLC0415

        if sys.version_info >= (3, 11):
            import tomllib  # noqa: PLC0415
        else:
            import tomli as tomllib  # noqa: PLC0415
        names = [n for section in tomllib.loads(text).values() for n in section["names"]]
    return frozenset(names)


def parse_names_toml(text: str) -> list[str] | None:
    """Every ``names`` entry of the subset of TOML data/weights_only.toml is written in, quickly;
    None for anything outside it (the caller then uses ``tomllib``; a test checks that both
    agree on the shipped file). Saves importing ``tomllib`` at every ``convert``.

    The subset: blank lines, ``#`` comments, ``[table]`` headers, ``reason = "..."`` and
    ``names = [`` followed by one ``"module.name",`` per line and a closing ``]``; strings
    hold no quote or backslash.
    """
    names: list[str] = []
    in_list = False
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if "\\" in line or line.count('"') not in (0, 2):
            return None
        if in_list:
            if line == "]":
                in_list = False
            elif line.startswith('"') and line.endswith('",'):
                names.append(line[1:-2])
            else:
                return None
        elif line.startswith("[") and line.endswith("]") and line[1:-1].isidentifier():
            continue
        elif line == "names = [":
            in_list = True
        elif not (line.startswith('reason = "') and line.endswith('"')):
            return None
    return None if in_list else names
