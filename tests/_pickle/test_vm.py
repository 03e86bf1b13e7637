"""The symbolic unpickler: resolves globals exactly like CPython's unpickler, bounded work."""

from __future__ import annotations

import argparse
import collections
import datetime
import decimal
import enum
import fractions
import io
import pathlib
import pickle
import time
import uuid

import pytest

from ckptguard import Use
from ckptguard._errors import PickleError
from ckptguard._pickle import OPAQUE, GlobalConst, PickleLimits, analyze_pickle
from tests.pickleasm import (
    APPENDS,
    BINPERSID,
    EMPTY_DICT,
    EMPTY_LIST,
    LIST,
    MARK,
    MEMOIZE,
    NONE,
    POP,
    REDUCE,
    STACK_GLOBAL,
    TUPLE,
    TUPLE1,
    binget,
    binunicode,
    call,
    ext1,
    glob,
    program,
    ustr,
)


class Color(enum.Enum):
    RED = 1


class Recorder(pickle.Unpickler):
    """Oracle: the real unpickler, recording every find_class (tests only, on our own data)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.seen: set[tuple[str, str]] = set()

    def find_class(self, module: str, name: str) -> object:
        self.seen.add((module, name))
        return super().find_class(module, name)


VALUES = {
    "containers": {
        "a": [1, 2.5, "x", b"y", None, True],
        "t": (1, (2, 3)),
        "s": {1},
        "f": frozenset(),
    },
    "ordered": collections.OrderedDict(a=1),
    "defaultdict": collections.defaultdict(list, a=[1]),
    "deque": collections.deque([1, 2]),
    "namespace": argparse.Namespace(lr=0.1, layers=[1, 2]),
    "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "decimal": decimal.Decimal("1.25"),
    "fraction": fractions.Fraction(1, 3),
    "uuid": uuid.UUID(int=5),
    "purepath": pathlib.PurePosixPath("a/b"),
    "enum": Color.RED,
    "shared": [[1, 2]] * 3,
    "bytearray": bytearray(b"abc"),
    "complex": complex(1, 2),
    "big int": 2**200,
    "long str": "x" * 10_000,
}


@pytest.mark.parametrize("protocol", range(6))
@pytest.mark.parametrize("kind", sorted(VALUES))
def test_globals_match_the_real_unpickler(kind: str, protocol: int) -> None:
    data = pickle.dumps(VALUES[kind], protocol=protocol)
    oracle = Recorder(data)
    oracle.load()
    analysis = analyze_pickle(data)
    found = {g.raw or (g.module, g.name) for g in analysis.globals}
    assert found == oracle.seen
    assert analysis.end == len(data)


def test_fix_imports_renames_like_cpython() -> None:
    data = program(call(glob("__builtin__", "set"), MARK + TUPLE), protocol=2)
    (g,) = analyze_pickle(data).globals
    assert (g.module, g.name, g.raw) == ("builtins", "set", ("__builtin__", "set"))
    # protocol >= 3 pickles are not renamed (the real unpickler would fail to import __builtin__)
    (g3,) = analyze_pickle(data.replace(b"\x80\x02", b"\x80\x03", 1)).globals
    assert (g3.module, g3.raw) == ("__builtin__", None)


def test_stack_global_resolves_memoized_operands() -> None:
    data = program(
        ustr("os") + MEMOIZE + POP + ustr("system") + MEMOIZE + POP
        + ustr("torch._utils") + MEMOIZE + POP
        + binget(0) + binget(1) + STACK_GLOBAL + ustr("x") + TUPLE1 + REDUCE,
        protocol=4,
    )  # fmt: skip
    (g,) = analyze_pickle(data).globals
    assert (g.module, g.name) == ("os", "system")
    assert Use.CALL in g.uses


def test_stack_global_with_computed_operands_is_a_dangerous_finding() -> None:
    data = program(call(glob("builtins", "str"), ustr("os")) + ustr("system") + STACK_GLOBAL)
    rules = [f.rule for f in analyze_pickle(data).findings]
    assert "pickle-dynamic-global" in rules


def test_ext_opcodes_are_dangerous_findings() -> None:
    rules = [f.rule for f in analyze_pickle(program(ext1(1))).findings]
    assert rules == ["pickle-ext-opcode"]


def test_uses_distinguish_call_build_and_reference() -> None:
    data = pickle.dumps(argparse.Namespace(a=1), protocol=2)
    (g,) = analyze_pickle(data).globals
    assert g.uses == {Use.CALL, Use.BUILD}
    ref = analyze_pickle(program(glob("collections", "OrderedDict"))).globals[0]
    assert ref.uses == {Use.REFERENCE}


def test_persistent_ids_are_folded() -> None:
    pid = MARK + ustr("storage") + glob("torch", "FloatStorage") + ustr("0") + ustr("cpu")
    data = program(pid + binunicode("") + POP + b"K\x04" + TUPLE + BINPERSID)
    analysis = analyze_pickle(data)
    assert analysis.persistent_ids == (
        ("storage", GlobalConst("torch", "FloatStorage"), "0", "cpu", 4),
    )


# ------------------------------------------------------------------- bounded work


def test_self_nested_memo_value_folds_in_bounded_time() -> None:
    """A list holding the previous list twice, 60 deep: 2**60 items if folded naively."""
    body = EMPTY_LIST + MEMOIZE
    for i in range(60):
        body += MARK + binget(i) + binget(i) + LIST + MEMOIZE
    start = time.perf_counter()
    analysis = analyze_pickle(program(body, protocol=4))
    assert analysis.value is OPAQUE
    assert time.perf_counter() - start < 30  # a hang guard, not a benchmark


def test_self_nested_persistent_id_folds_in_bounded_time() -> None:
    body = EMPTY_LIST + MEMOIZE
    for i in range(60):
        body += MARK + binget(i) + binget(i) + LIST + MEMOIZE
    body += (binget(60) + BINPERSID + POP) * 50 + NONE
    analysis = analyze_pickle(program(body, protocol=4))
    assert len(analysis.persistent_ids) == 50


def test_a_list_appended_to_itself_is_fine() -> None:
    body = EMPTY_LIST + MEMOIZE + (MARK + binget(0) * 100 + APPENDS) * 100
    assert analyze_pickle(program(body, protocol=4)).value is OPAQUE


@pytest.mark.parametrize(
    ("data", "limits", "match"),
    [
        (program(MARK * 50 + NONE), PickleLimits(max_marks=10), "nested MARKs"),
        (program(NONE + POP) * 1, PickleLimits(max_opcodes=2), "opcodes"),
        (program(b"\x8e" + (1 << 40).to_bytes(8, "little")), PickleLimits(), "truncated"),
        (program(b"X" + (1 << 31).to_bytes(4, "little")), PickleLimits(), "truncated"),
        # (a length past the data is a truncation first: pickle.load fails there too)
        (program(b"\x8e" + (1 << 41).to_bytes(8, "little")), PickleLimits(), "truncated"),
        (program(b"B\x14\0\0\0" + b"x" * 20), PickleLimits(max_string=10), "exceeds the limit"),
        (program(EMPTY_DICT * 5000), PickleLimits(max_stack=100), "stack"),
        (program((EMPTY_DICT + MEMOIZE + POP) * 5000 + NONE), PickleLimits(max_memo=100), "memo"),
        (b"\x80\x02}q\x00", PickleLimits(), "before its STOP"),
        (b"\x80\x06N.", PickleLimits(), "protocol 6"),
        (b"\x80\x02\xffN.", PickleLimits(), "invalid opcode"),
        (b"\x80\x02h\x05.", PickleLimits(), "memo key 5"),
        (b"\x80\x02.", PickleLimits(), "stack underflow"),
    ],
)
def test_malformed_or_oversized_streams_fail_closed(
    data: bytes, limits: PickleLimits, match: str
) -> None:
    with pytest.raises(PickleError, match=match) as info:
        analyze_pickle(data, limits=limits)
    assert "opcode at byte" in info.value.problem


def test_huge_strings_are_not_copied() -> None:
    payload = b"a" * (64 << 20)
    data = program(b"B" + len(payload).to_bytes(4, "little") + payload + POP + NONE)
    import tracemalloc

    tracemalloc.start()
    analyze_pickle(data)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < (8 << 20), peak


def test_partial_globals_survive_a_broken_stream() -> None:
    data = program(call(glob("os", "system"), ustr("x")))[:-1]
    with pytest.raises(PickleError) as info:
        analyze_pickle(data)
    assert [(g.module, g.name) for g in info.value.partial] == [("os", "system")]
