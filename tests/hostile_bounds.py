"""Hostile pickles that make a loader do unbounded work, import modules or change classes,
while naming only globals ckptguard vets (issue 10: "bounded work everywhere").

Each :class:`BoundCase` builds a plain pickle from first principles (tests/pickleasm.py) and
says how the stock ``pickle.loads`` misbehaves on it (``live``), which the liveness test checks
in a subprocess with a memory limit and a short timeout; ``rule`` is the finding the scan must
report. Nothing here loads anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.pickleasm import (
    APPENDS,
    BUILD,
    EMPTY_DICT,
    EMPTY_LIST,
    EMPTY_TUPLE,
    FROZENSET,
    MARK,
    NEWOBJ,
    NEWTRUE,
    NONE,
    POP,
    REDUCE,
    SETITEM,
    TUPLE,
    TUPLE1,
    TUPLE2,
    binget,
    binint,
    binint1,
    binput,
    binunicode,
    call,
    glob,
    long1,
    program,
    ustr,
)


@dataclass(frozen=True)
class BoundCase:
    name: str
    build: Callable[[], bytes]
    rule: str  # the finding the scan reports
    # How the stock pickle.loads misbehaves: "hang" (does not finish within the timeout, or
    # runs out of the memory limit), "crash" (the process dies on a signal), "imports:a,b"
    # (those modules appear in sys.modules), "mutates:EXPR" (EXPR is true afterwards), or ""
    # when pickle.loads alone cannot show it (it needs torch's loader or a persistent id).
    live: str = ""
    prelude: str = ""  # run before pickle.loads in the liveness subprocess
    # A smaller file of the same class for the scan/load/convert tests (the budget is
    # proportional to the file, so the class is the same), when ``build`` is slow to scan.
    small: Callable[[], bytes] | None = None

    def scanned(self) -> bytes:
        return (self.small or self.build)()


def chain(levels: int) -> bytes:
    """Leaves t_levels on the stack: t_0 = (), t_i+1 = (t_i, t_i) (memo 0..levels)."""
    out = EMPTY_TUPLE + binput(0)
    for i in range(levels):
        out += POP + binget(i) + binget(i) + TUPLE2 + binput(i + 1)
    return out


def list_dag(levels: int) -> bytes:
    """Leaves L_levels on the stack: L_0 = [], L_i+1 = [L_i, L_i] (memo 0..levels)."""
    out = EMPTY_LIST + binput(0)
    for i in range(levels):
        out += POP + EMPTY_LIST + MARK + binget(i) + binget(i) + APPENDS + binput(i + 1)
    return out


def _deep_tuple_key(depth: int = 1_000_000) -> bytes:
    return program(EMPTY_DICT + EMPTY_TUPLE + TUPLE1 * depth + binint1(1) + SETITEM)


def _shared_args_reduced(items: int = 1_000_000, calls: int = 1_000_000) -> bytes:
    """collections.ChainMap(*args) with one shared 1M-item args tuple, a million times."""
    head = glob("collections", "ChainMap") + binput(0) + POP
    args = MARK + binint1(0) * items + TUPLE + binput(1) + POP
    return program(head + args + (binget(0) + binget(1) + REDUCE + POP) * calls + NONE)


def _shared_state_built(entries: int = 200_000, builds: int = 5_000) -> bytes:
    """argparse.Namespace objects all given one shared 200k-entry state dict."""
    head = glob("argparse", "Namespace") + binput(0) + POP
    state = EMPTY_DICT + MARK
    state += b"".join(ustr(f"k{i}") + NONE for i in range(entries))
    state += b"u" + binput(1) + POP
    one = binget(0) + EMPTY_TUPLE + NEWOBJ + binget(1) + BUILD + POP
    return program(head + state + one * builds + NONE)


def _build_on_class() -> bytes:
    """BUILD (None, {'pwned': True}) on the class argparse.Namespace: setattr on the class."""
    slots = EMPTY_DICT + ustr("pwned") + NEWTRUE + SETITEM
    return program(glob("argparse", "Namespace") + NONE + slots + TUPLE2 + BUILD)


def _colliding_keys(n: int = 200_000) -> bytes:
    """A dict of n distinct integer keys that all hash to 0 (multiples of 2**61 - 1)."""
    modulus = (1 << 61) - 1
    items = b"".join(long1(i * modulus) + NONE for i in range(1, n + 1))
    return program(EMPTY_DICT + MARK + items + b"u")


RANGE = glob("builtins", "range")

CASES: list[BoundCase] = [
    BoundCase(
        "tuple chain as a dict key",
        lambda: program(EMPTY_DICT + chain(90) + binint1(1) + SETITEM),
        "pickle-unbounded-key",
        "hang",
    ),
    BoundCase(
        "tuple chain in a FROZENSET",
        lambda: program(MARK + chain(90) + FROZENSET, protocol=4),
        "pickle-unbounded-key",
        "hang",
    ),
    BoundCase(
        "tuple chain through builtins.set",
        lambda: program(call(glob("builtins", "set"), chain(90) + TUPLE1)),
        "pickle-unbounded-key",
        "hang",
    ),
    BoundCase(
        "tuple chain as an OrderedDict key",
        lambda: program(
            call(
                glob("collections", "OrderedDict"),
                EMPTY_LIST + MARK + chain(90) + binint1(1) + TUPLE2 + APPENDS,
            )
        ),
        "pickle-unbounded-key",
        "hang",
    ),
    BoundCase(
        "a million nested tuples as a dict key",
        _deep_tuple_key,
        "pickle-deep-key",
        "crash",
        small=lambda: _deep_tuple_key(5_000),
    ),
    BoundCase(
        "200k integer keys with one hash",
        _colliding_keys,
        "pickle-hash-collisions",
        "hang",
        small=lambda: _colliding_keys(2_000),
    ),
    BoundCase(
        "1M-item argument tuple reduced a million times",
        _shared_args_reduced,
        "pickle-unbounded-work",
        "hang",
        small=lambda: _shared_args_reduced(20_000, 1_000),
    ),
    BoundCase(
        "shared 200k-entry state given to 5000 objects",
        _shared_state_built,
        "pickle-unbounded-work",
        "hang",
        small=lambda: _shared_state_built(5_000, 500),
    ),
    BoundCase(
        "collections.deque(range(10**18), 0)",
        lambda: program(call(glob("collections", "deque"), call(RANGE, long1(10**18)), binint1(0))),
        "pickle-call-argument",
        "hang",
    ),
    BoundCase(
        "list(range(150_000_000))",
        lambda: program(call(glob("builtins", "list"), call(RANGE, binint(150_000_000)))),
        "pickle-call-argument",
        "hang",
    ),
    BoundCase(
        "bytearray(2**31)",
        lambda: program(call(glob("builtins", "bytearray"), long1(2**31))),
        "pickle-call-argument",
        "hang",
    ),
    BoundCase(
        "bytes(10**12)",
        lambda: program(call(glob("builtins", "bytes"), long1(10**12))),
        "pickle-call-argument",
        "hang",
    ),
    BoundCase(
        "copyreg._reconstructor(list, list, range(10**18))",
        lambda: program(
            call(
                glob("copyreg", "_reconstructor"),
                glob("builtins", "list"),
                glob("builtins", "list"),
                call(RANGE, long1(10**18)),
            )
        ),
        "pickle-call-argument",
        "hang",
    ),
    BoundCase(
        "fractions.Fraction('1e999999999')",
        lambda: program(call(glob("fractions", "Fraction"), ustr("1e999999999"))),
        "pickle-call-argument",
        "hang",
    ),
    BoundCase(
        "int() of 5M digits (with the digit limit lifted)",
        lambda: program(call(glob("builtins", "int"), binunicode("9" * 5_000_000))),
        "pickle-call-argument",
        "hang",
        prelude="sys.set_int_max_str_digits(0)",
    ),
    BoundCase(
        "str() of a shared list DAG",
        lambda: program(call(glob("builtins", "str"), list_dag(40))),
        "pickle-call-argument",
        "hang",
    ),
    BoundCase(
        "numpy _reconstruct with a 4 GiB shape",
        lambda: program(
            call(
                glob("numpy._core.multiarray", "_reconstruct"),
                glob("numpy", "ndarray"),
                long1(1 << 32) + TUPLE1,
                binunicode("b"),
            )
        ),
        "pickle-call-argument",
        "hang",
        prelude="import numpy",
    ),
    BoundCase(
        "_codecs.encode('x', 'idna')",
        lambda: program(call(glob("_codecs", "encode"), ustr("x"), ustr("idna"))),
        "pickle-call-argument",
        "imports:encodings.idna,stringprep",
    ),
    BoundCase(
        "bytes('x', 'punycode')",
        lambda: program(call(glob("builtins", "bytes"), ustr("x"), ustr("punycode"))),
        "pickle-call-argument",
        "imports:encodings.punycode",
    ),
    BoundCase(
        "BUILD on the class argparse.Namespace",
        _build_on_class,
        "pickle-global-mutation",
        "mutates:getattr(argparse.Namespace, 'pwned', False)",
        prelude="import argparse",
    ),
    BoundCase(
        "BUILD None on a global",
        lambda: program(glob("collections", "OrderedDict") + NONE + BUILD),
        "pickle-global-mutation",
    ),
    BoundCase(
        "BUILD on a persistent-id storage",
        lambda: program(
            ustr("storage") + b"Q" + EMPTY_DICT + ustr("_untyped_storage") + NONE + SETITEM + BUILD
        ),
        "pickle-shared-mutation",
    ),
    BoundCase(
        "torch.Tensor(10**10): the legacy constructor of a type tag",
        lambda: program(call(glob("torch", "Tensor"), long1(10**10))),
        "pickle-call-argument",
    ),
    BoundCase(
        "_rebuild_from_type_v2(bytes, Tensor, (10**12,), {})",
        lambda: program(
            call(
                glob("torch._tensor", "_rebuild_from_type_v2"),
                glob("builtins", "bytes"),
                glob("torch", "Tensor"),
                long1(10**12) + TUPLE1,
                EMPTY_DICT,
            )
        ),
        "pickle-call-argument",
    ),
    BoundCase(
        "numpy.dtype with a 10**12-byte itemsize",
        lambda: program(call(glob("numpy", "dtype"), ustr("V1000000000000"))),
        "pickle-call-argument",
    ),
    BoundCase(
        "numpy bit generator looked up by a tuple chain",
        lambda: program(call(glob("numpy.random._pickle", "__bit_generator_ctor"), chain(90))),
        "pickle-call-argument",
    ),
]
