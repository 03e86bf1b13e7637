"""The output model of a conversion: plain Python data plus a few markers for torch objects.

The converter turns a pickle tree into values of these kinds only: ``None``, ``bool``, ``int``,
``float``, ``str``, ``bytes``, ``complex``, ``list``, ``tuple``, ``dict`` and the markers below.
The emitter writes them with only the opcodes and globals stock weights-only loading accepts.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMAT_KEY = "__ckptguard__"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class OGlobal:
    """A global from the weights-only table (never one named only by the source file)."""

    module: str
    name: str

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class OCall:
    """``func(*args)`` kept from the source (a torch rebuild, an OrderedDict, ...)."""

    func: OGlobal
    args: tuple[Any, ...]
    op: str = "REDUCE"  # REDUCE or NEWOBJ
    state: Any = None
    has_state: bool = False
    dictitems: list[tuple[Any, Any]] = field(default_factory=list)
    listitems: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class OStorage:
    """A storage record: ``('storage', storage_class, key, location, numel)`` persistent id."""

    storage_class: OGlobal
    key: str
    location: str
    numel: int
    nbytes: int  # bytes of the record the pid needs
    data: bytes | None = None  # the record's bytes when it is new (numpy arrays)


@dataclass(eq=False)
class OSet:
    items: list[Any]
    frozen: bool = False


@dataclass(eq=False)
class OOpaque:
    """Inspect only: something convert would refuse, with the reason."""

    what: str


@functools.lru_cache(maxsize=1)
def weights_only_globals() -> frozenset[str]:
    """Qualified names stock ``torch.load(weights_only=True)`` resolves (data/weights_only.toml)."""
    text = resources.files("ckptguard").joinpath("data/weights_only.toml").read_text("utf-8")
    doc = tomllib.loads(text)
    names: set[str] = set()
    for section in doc.values():
        names.update(section["names"])
    return frozenset(names)
