"""The two pickle walkers share one reader (``_pickle/_reader.py``): one operand decoder, one
bound-check rule, the data opcodes written once, a dispatch table of named handlers.

* the VM's fast loop and its exact path (every opcode through the dispatch table) give the
  same analysis, on generated values, damaged pickles and the hostile corpus;
* the VM, the tree builder and CPython's C unpickler agree on every opcode's operands, for
  every opcode of ``pickletools.opcodes`` that ckptguard reads (generated operands, edges);
* both walkers apply the same bounds, in both paths, and fail closed the same way.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import struct
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ckptguard._errors import PickleError
from ckptguard._pickle import DEFAULT_LIMITS, OPAQUE, PickleLimits, analyze_pickle
from ckptguard._pickle import _opcodes as op
from ckptguard._pickle._analysis import PickleAnalysis
from ckptguard._pickle._reader import unframed_stream
from ckptguard._pickle._tree import (
    Global,
    Py2Str,
    TDict,
    TList,
    Tree,
    TSet,
    TTuple,
    _Builder,
    build_tree,
)
from ckptguard._pickle._vm import _Walker
from tests._convert.test_tree import _shape
from tests._convert.test_tree import _values as _tree_values
from tests.hostile import CASES
from tests.hostile_pickle import SAMPLES
from tests.oracle import RecordingUnpickler

# ------------------------------------------------------------------ helpers


def _vm_exact(data: bytes, limits: PickleLimits = DEFAULT_LIMITS) -> PickleAnalysis:
    return analyze_pickle(data, limits=limits, exact=True)


def _tree_exact(data: bytes, limits: PickleLimits = DEFAULT_LIMITS) -> Tree:
    return build_tree(data, limits=limits, exact=True)


def _summary(a: PickleAnalysis) -> object:
    """Everything a verdict is made of, comparable."""
    return (
        a.end,
        a.protocol,
        a.opcodes,
        [(g.module, g.name, g.count, sorted(g.uses), g.raw, g.first_offset) for g in a.globals],
        [(f.rule, f.severity, f.message, f.location) for f in a.findings],
        repr(a.persistent_ids),
        repr(a.calls),
        repr(a.value),
    )


def _tree_summary(t: Tree) -> object:
    # repr: a NaN float (a damaged pickle can hold one) is unequal to itself
    return (t.end, t.protocol, repr(_shape(t.root)))


_PATHS = {  # walker: (summary, fast, exact)
    "vm": (_summary, analyze_pickle, _vm_exact),
    "tree": (_tree_summary, build_tree, _tree_exact),
}


def _both(walker: str, data: bytes) -> tuple[object, object]:
    """(fast, exact): a summary, or the error's message, bound flag and partial globals."""
    summary, *walks = _PATHS[walker]
    out = []
    for walk in walks:
        try:
            out.append(summary(walk(data)))
        except PickleError as err:
            partial = [(g.module, g.name, g.count) for g in err.partial]
            out.append(("error", err.problem, err.over_limit, partial))
    return out[0], out[1]


# ------------------------------------------------------------------ fast == exact (VM)

_values = st.recursive(
    _tree_values,  # the tree's fast-vs-exact test's values, with sets
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.frozensets(st.integers(), max_size=3)
        | st.sets(st.text(max_size=3), max_size=3)
    ),
    max_leaves=4,
)


@pytest.mark.parametrize("walker", sorted(_PATHS))
@given(value=_values, shared=st.booleans(), proto=st.integers(0, 5))
@settings(max_examples=200, deadline=None)
def test_each_walker_s_fast_loop_agrees_with_its_exact_path(
    walker: str, value: object, shared: bool, proto: int
) -> None:
    """The VM's exact mode is new (the tree's test is tests/_convert/test_tree.py): pickles of
    generated values, with sets and shared memo references, walk to the same result."""
    fast, exact = _both(walker, pickle.dumps([value, value] if shared else value, protocol=proto))
    assert fast == exact
    assert fast[0] != "error"


_SEED = pickle.dumps(
    [{"a": [1.5, "é", b"x", (1, 2, 3), None, True], "b": OrderedDict(c=[])}, (7,), {1, 2},
     frozenset({3}), "s" * 40],
    protocol=2,
)  # fmt: skip


@pytest.mark.parametrize("walker", sorted(_PATHS))
@given(flips=st.lists(st.tuples(st.integers(0, len(_SEED) - 1), st.integers(0, 255)), max_size=4))
@settings(max_examples=300, deadline=None)
def test_damaged_pickles_walk_alike_in_both_paths(
    walker: str, flips: list[tuple[int, int]]
) -> None:
    damaged = bytearray(_SEED)
    for at, byte in flips:
        damaged[at] = byte
    fast, exact = _both(walker, bytes(damaged))
    assert fast == exact


def _hostile() -> list[tuple[str, bytes]]:
    out = [(c.name, c.build("/tmp/ckptguard-never-written")) for c in CASES]
    out += [(s.name, s.build("/tmp/ckptguard-never-written")) for s in SAMPLES]
    return out


@pytest.mark.parametrize(("name", "data"), _hostile(), ids=[n for n, _ in _hostile()])
def test_hostile_pickles_walk_alike_in_both_paths(name: str, data: bytes) -> None:
    for walker in _PATHS:
        fast, exact = _both(walker, data)
        assert fast == exact


def test_the_exact_path_is_taken_under_small_limits_in_both_walkers() -> None:
    """One rule picks the exact path: a limit of opcodes, stack or memo small enough that the
    fast loops' check every 1024 opcodes could pass it (the VM used to look at max_opcodes
    only)."""
    data = pickle.dumps(list(range(50)), protocol=2)
    for limits in (PickleLimits(max_memo=1000), PickleLimits(max_stack=1000),
                   PickleLimits(max_opcodes=1000)):  # fmt: skip
        assert _Walker(data, 0, "p", limits).exact
        assert _Builder(data, 0, "p", limits).exact
    assert not _Walker(data, 0, "p", DEFAULT_LIMITS).exact
    assert not _Builder(data, 0, "p", DEFAULT_LIMITS).exact


# ------------------------------------------------------------------ one bound-check rule


def _stack_heavy(n: int) -> bytes:
    return b"\x80\x02" + b"N" * n + b"]" + b"." * 1


def _memo_heavy(n: int) -> bytes:
    return b"\x80\x04" + b"N\x94" * n + b"N."


_BOUNDS = [
    pytest.param(
        _stack_heavy(3000), PickleLimits(max_stack=2000), "items on the stack", id="stack"
    ),
    pytest.param(_memo_heavy(3000), PickleLimits(max_memo=2000), "memo entries", id="memo"),
    pytest.param(_stack_heavy(3000), PickleLimits(max_opcodes=2000), "opcodes", id="opcodes"),
    pytest.param(b"(" * 3000 + b"N.", PickleLimits(max_marks=2000), "nested MARKs", id="marks"),
    pytest.param(
        b"\x80\x02Nr\xd1\x07\x00\x00N.", PickleLimits(max_memo=2000), "memo index 2001", id="index"
    ),
    pytest.param(
        b"\x80\x02B\x14\x00\x00\x00" + b"x" * 20 + b".",
        PickleLimits(max_string=10),
        "exceeds the limit",
        id="string",
    ),
]


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize(("data", "limits", "words"), _BOUNDS)
def test_both_walkers_apply_the_same_bounds_in_both_paths(
    data: bytes, limits: PickleLimits, words: str, exact: bool
) -> None:
    """Every bound of ckptguard's is an over_limit failure (pickle.load reads on) in both
    walkers and both paths; the tree used to report some as plain failures and accepted memo
    indexes the VM refuses."""
    walks = (
        (lambda d: _vm_exact(d, limits), lambda d: _tree_exact(d, limits))
        if exact
        else (lambda d: analyze_pickle(d, limits=limits), lambda d: build_tree(d, limits=limits))
    )
    for walk in walks:
        with pytest.raises(PickleError, match=words) as info:
            walk(data)
        assert info.value.over_limit


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x02B\xff\xff\xff\x7fxx.",  # BINBYTES of 2 GiB, 3 bytes left
        b"\x80\x04\x8e" + (1 << 41).to_bytes(8, "little") + b".",  # past max_string and the data
        b"\x80\x04\x8d" + (1 << 63).to_bytes(8, "little") + b".",  # BINUNICODE8, 2**63 bytes
        b"\x80\x02\x8b\xff\xff\xff\x7f.",  # LONG4 of 2 GiB
        b"\x80\x02T\x00\x00\x00\x80ab.",  # BINSTRING's length is unsigned
    ],
)
def test_a_length_past_the_data_is_a_truncation_not_a_bound(data: bytes) -> None:
    """A counted argument longer than what is left fails pickle.load too: it must not be
    reported as one of ckptguard's bounds (over_limit: "pickle.load reads on"), which sniffing
    would take for a pickle that loads."""
    with pytest.raises(Exception):  # noqa: B017 - any failure of the real unpickler
        pickle.loads(data)
    for walk in (analyze_pickle, _vm_exact, build_tree, _tree_exact):
        with pytest.raises(PickleError, match="truncated") as info:
            walk(data)
        assert not info.value.over_limit


def test_a_negative_long4_length_fails_in_both_walkers() -> None:
    data = b"\x80\x02\x8b\xff\xff\xff\xff."
    with pytest.raises(Exception):  # noqa: B017
        pickle.loads(data)
    for walk in (analyze_pickle, _vm_exact, build_tree, _tree_exact):
        with pytest.raises(PickleError, match="negative length"):
            walk(data)


def test_a_frame_cut_opcode_is_an_error_in_both_walkers_and_paths() -> None:
    """An opcode that runs past its FRAME: the VM reports it and reads on (as pickle.loads),
    the tree refuses the stream; the same in the exact path (one step() handles it)."""
    payload = b"\x8c\x02os\x8c\x06system\x93\x8c\x01x\x85R."
    data = b"\x80\x04\x95" + struct.pack("<Q", 3) + payload
    for walk in (analyze_pickle, _vm_exact):
        a = walk(data)
        assert [g.name for g in a.globals] == ["system"]
        assert any(f.rule == "pickle-frame-ambiguity" for f in a.findings)
    for walk in (build_tree, _tree_exact):
        with pytest.raises(PickleError, match="runs past the end of its FRAME"):
            walk(data)


# ------------------------------------------------------------------ the dispatch tables

_ALL = {o.name: ord(o.code) for o in pickletools.opcodes}


def test_the_opcode_names_are_cpythons() -> None:
    assert {code: name for name, code in _ALL.items()} == op.NAMES
    for name, code in _ALL.items():
        assert getattr(op, name) == code == getattr(pickle, name)[0]


@pytest.mark.parametrize("walker", [_Walker, _Builder])
def test_every_opcode_has_a_named_handler_and_nothing_else_does(walker: type) -> None:
    """Each walker's table holds a load_<name> for every opcode CPython knows (the tree's
    refuse EXT and buffers by name), and nothing for any other byte, which is refused."""
    table = walker.dispatch
    assert set(table) == set(_ALL.values())
    for code, handler in table.items():
        assert handler is getattr(walker, f"load_{op.NAMES[code].lower()}")
    for byte in set(range(256)) - set(_ALL.values()):
        with pytest.raises(PickleError, match="invalid opcode"):
            analyze_pickle(bytes([byte]) + b".")
        with pytest.raises(PickleError, match="invalid opcode"):
            build_tree(bytes([byte]) + b".")


# ------------------------------------------------------------------ VM, tree and CPython agree


def _plain(v: object) -> object:
    """A tree node as the value it describes (for the data opcodes)."""
    if type(v) is TTuple:
        return tuple(_plain(x) for x in v.items)
    if type(v) is TList:
        return [_plain(x) for x in v.items]
    if type(v) is TDict:
        return {_plain(k): _plain(x) for k, x in v.items}
    if type(v) is TSet:
        return (frozenset if v.frozen else set)(_plain(x) for x in v.items)
    return v


def _show(v: object) -> object:
    if type(v) is bytearray:
        v = bytes(v)  # both walkers read BYTEARRAY8 as bytes: data like bytes
    if type(v) is float and math.isnan(v):
        return ("nan", struct.pack("<d", v).hex())
    return (type(v).__name__, repr(v))


def _c(data: bytes, encoding: str = "ASCII") -> object:
    try:
        return _show(pickle.loads(data, encoding=encoding))
    except Exception:
        return "error"


def _vm_value(data: bytes) -> object:
    try:
        return _show(analyze_pickle(data).value)
    except PickleError:
        return "error"


def _tree_value(data: bytes) -> object:
    try:
        root = build_tree(data).root
    except PickleError:
        return "error"
    if type(root) is Py2Str:
        # a non-ASCII protocol 0-2 str keeps its bytes: the converter reads it as torch.load
        # does (UTF-8 text, refused when it is not) or, as array data, as numpy does (latin-1)
        try:
            return _show(root.raw.decode("utf-8"))
        except UnicodeDecodeError:
            return "error"
    return _show(_plain(root))


def _counted(width: int, signed: bool = False) -> st.SearchStrategy[bytes]:
    """A length-prefixed argument: the true length, or one that lies by a little."""
    body = st.binary(max_size=12) | st.sampled_from(_EDGE_BYTES)
    lie = st.sampled_from([0, 0, 0, 1, 1000])  # (past the data: truncated)
    limit = (1 << (8 * width - (1 if signed else 0))) - 1

    def build(b: bytes, d: int) -> bytes:
        n = min(max(len(b) + d, -1 if signed else 0), limit)
        return n.to_bytes(width, "little", signed=signed) + b

    return st.builds(build, body, lie)


_EDGE_BYTES = [
    b"", b"\x00", b"\xff", b"\x80", b"\xc3\xa9", b"\xed\xa0\x80", b"\xf0\x9f\x98\x80",
    b"\\u00e9", b"\\U0001f600", b"\\x41", b"\\N{DIGIT ONE}", b"\\", b"'", b'"', b"\\'",
    b"abc\\\n", b"\\u12", b"\\777", b"\r", b" ",
]  # fmt: skip
_LINE = (st.binary(max_size=10) | st.sampled_from(_EDGE_BYTES)).map(lambda b: b.replace(b"\n", b""))
_TEXT_NUM = st.text("0123456789xXoObBL+-_ .eEinfaINFAty\t\r\x0b\x00", max_size=7).map(str.encode)


def _quoted(b: bytes, q: bytes, q2: bytes) -> bytes:
    return q + b + q2


_OPERANDS: dict[str, st.SearchStrategy[bytes]] = {
    "INT": _TEXT_NUM.map(lambda t: t + b"\n") | _LINE.map(lambda t: t + b"\n"),
    "LONG": _TEXT_NUM.map(lambda t: t + b"\n"),
    "FLOAT": _TEXT_NUM.map(lambda t: t + b"\n"),
    "BININT": st.binary(min_size=4, max_size=4),
    "BININT1": st.binary(min_size=1, max_size=1),
    "BININT2": st.binary(min_size=2, max_size=2),
    "LONG1": _counted(1),
    "LONG4": _counted(4, signed=True),
    "BINFLOAT": st.binary(min_size=8, max_size=8),
    "STRING": st.builds(
        _quoted,
        _LINE,
        st.sampled_from([b"'", b'"', b""]),
        st.sampled_from([b"'", b'"', b"", b"' "]),
    ).map(lambda t: t + b"\n"),
    "BINSTRING": _counted(4),
    "SHORT_BINSTRING": _counted(1),
    "UNICODE": _LINE.map(lambda t: t + b"\n"),
    "BINUNICODE": _counted(4),
    "SHORT_BINUNICODE": _counted(1),
    "BINUNICODE8": _counted(8),
    "BINBYTES": _counted(4),
    "SHORT_BINBYTES": _counted(1),
    "BINBYTES8": _counted(8),
    "BYTEARRAY8": _counted(8),
    "NONE": st.just(b""),
    "NEWTRUE": st.just(b""),
    "NEWFALSE": st.just(b""),
    "EMPTY_TUPLE": st.just(b""),
}
_PY2_STR = {"STRING", "BINSTRING", "SHORT_BINSTRING"}


@pytest.mark.parametrize("name", sorted(_OPERANDS))
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_the_vm_the_tree_and_cpython_read_each_constant_alike(
    name: str, data: st.DataObject
) -> None:
    """A constant opcode with a generated operand (true and lying lengths, escapes, invalid
    UTF-8, surrogates, NULs, quotes): the tree reads what the C unpickler reads with
    torch.load's encoding (UTF-8); the VM what it reads with pickle.load's (ASCII), a
    protocol 0-2 str that is not ASCII being an opaque value (it has no one value)."""
    operand = data.draw(_OPERANDS[name])
    stream = bytes([_ALL[name]]) + operand + b"."
    assert _tree_value(stream) == _c(stream, "utf-8"), stream
    vm = _vm_value(stream)
    if vm == _show(OPAQUE):  # only a protocol 0-2 str that is not ASCII (STRING: once unescaped)
        assert name in _PY2_STR and _c(stream) == "error", stream
        assert name == "STRING" or not operand.isascii(), stream
    else:
        assert vm == _c(stream), stream


@pytest.mark.parametrize(
    "stream",
    [
        b"I010\n.", b"I0x10\n.", b"I01\n.", b"I00\n.", b"I1\x00junk\n.", b"I 7\n.", b"I1_0\n.",
        b"L10L\n.", b"L0x10\n.", b"L010\n.", b"LL\n.", b"F1e999\n.", b"F 1.5\n.", b"Fnan\n.",
        b"S'a\\x41'\n.", b"S'\\600'\n.", b"S'a'\x00\n.", b"S'ab' \n.", b'S"\\u00e9"\n.',
        b"V\\u00e9\n.", b"V\\U0001f600\n.", b"V\\u12\n.", b"V\xff\n.",
        b"X\x03\x00\x00\x00\xed\xa0\x80.", b"\x8c\x01\x80.", b"U\x02\xc3\xa9.",
        b"T\x01\x00\x00\x00\xff.", b"\x8a\x00.", b"\x8a\x01\xff.", b"\x8b\x00\x00\x00\x00.",
        b"\x96\x01\x00\x00\x00\x00\x00\x00\x00x.",
    ],
)  # fmt: skip
def test_operand_edges_read_as_the_c_unpickler_reads_them(stream: bytes) -> None:
    assert _tree_value(stream) == _c(stream, "utf-8")
    vm = _vm_value(stream)
    assert vm == _c(stream) or (vm == _show(OPAQUE) and stream[:1] in b"STU")


_MEMO = {
    "BINPUT": lambda i: b"q" + bytes([i % 256]),
    "LONG_BINPUT": lambda i: b"r" + struct.pack("<I", i),
    "PUT": lambda i: b"p%d\n" % i,
    "MEMOIZE": lambda i: b"\x94",
}
_GETS = {
    "BINGET": lambda i: b"h" + bytes([i % 256]),
    "LONG_BINGET": lambda i: b"j" + struct.pack("<I", i),
    "GET": lambda i: b"g%d\n" % i,
}


@given(
    put=st.sampled_from(sorted(_MEMO)),
    get=st.sampled_from(sorted(_GETS)),
    i=st.sampled_from([0, 1, 255, 256, 65536, 1 << 20]) | st.integers(0, 300),
    j=st.sampled_from([0, 1, 255, 256, 65536, 1 << 20]) | st.integers(0, 300),
)
@settings(max_examples=200, deadline=None)
def test_the_vm_the_tree_and_cpython_read_memo_operands_alike(
    put: str, get: str, i: int, j: int
) -> None:
    """PUT/BINPUT/LONG_BINPUT/MEMOIZE a value, then GET/BINGET/LONG_BINGET one: the same
    value or the same failure (a missing key) in all three."""
    stream = b"K\x07" + _MEMO[put](i) + b"0" + _GETS[get](j) + b"."
    real = _c(stream)
    assert _vm_value(stream) == real, stream
    assert _tree_value(stream) == real, stream


_NAME = st.sampled_from(
    [b"builtins", b"os", b"collections", b"OrderedDict", b"__builtin__", b"set", b"copy_reg",
     b"_reconstructor", b"a.b", b"", b" os", b"os\x00x", b"\xc3\xa9", b"\xff", b"torch._utils",
     b"_rebuild_tensor_v2", b"UserDict", b"exceptions", b"StandardError"]
) | st.binary(max_size=6).map(lambda b: b.replace(b"\n", b""))  # fmt: skip


def _c_globals(stream: bytes) -> object:
    reached: list[tuple[str, str]] = []
    try:
        RecordingUnpickler(io.BytesIO(stream), reached).load()
    except Exception:
        return ("error", reached)
    return ("ok", reached)


@given(
    opname=st.sampled_from(["GLOBAL", "INST", "STACK_GLOBAL"]),
    module=_NAME,
    name=_NAME,
    proto=st.sampled_from([b"", b"\x80\x02", b"\x80\x03", b"\x80\x04"]),
)
@settings(max_examples=300, deadline=None)
@example(opname="GLOBAL", module=b"__builtin__", name=b"set", proto=b"\x80\x02")
@example(opname="INST", module=b"copy_reg", name=b"_reconstructor", proto=b"")
@example(opname="GLOBAL", module=b"\xc3\xa9", name=b"x", proto=b"")
@example(opname="INST", module=b"\xc3\xa9", name=b"x", proto=b"")
def test_the_vm_the_tree_and_cpython_read_global_operands_alike(
    opname: str, module: bytes, name: bytes, proto: bytes
) -> None:
    """The names GLOBAL (UTF-8), INST (ASCII) and STACK_GLOBAL (str operands) hand to
    find_class: the C unpickler's recorder sees the raw names, the VM reports them (``raw``
    where fix_imports renamed them) and the tree resolves them as the VM does."""
    if opname == "GLOBAL":
        body = b"c" + module + b"\n" + name + b"\n"
    elif opname == "INST":
        body = b"(i" + module + b"\n" + name + b"\n"
    else:
        body = b"\x8c" + bytes([len(module)]) + module + b"\x8c" + bytes([len(name)]) + name
        body += b"\x93"
    stream = proto + body + b"."
    status, reached = _c_globals(stream)  # type: ignore[misc]
    try:
        a = analyze_pickle(stream)
    except PickleError as err:
        vm: tuple[str, list[Any]] = ("error", list(err.partial))
    else:
        vm = ("ok", list(a.globals))
    assert [g.raw or (g.module, g.name) for g in vm[1]] == reached, stream
    try:
        root = build_tree(stream).root
    except PickleError:
        tree = "error"
    else:
        tree = "ok"
        target = root.func if opname == "INST" else root
        assert type(target) is Global
        assert [(target.module, target.name)] == [(g.module, g.name) for g in vm[1]]
    assert status == tree == vm[0] or (status == "error" and vm[0] == tree == "ok" and
                                       opname == "STACK_GLOBAL"), stream  # fmt: skip


@given(pid=_LINE)
@settings(max_examples=150, deadline=None)
@example(pid=b"0")
@example(pid=b"\xc3\xa9")
def test_the_vm_the_tree_and_cpython_read_persid_operands_alike(pid: bytes) -> None:
    """PERSID's line is an ASCII str to persistent_load. The tree refuses non-ASCII like the C
    unpickler; the VM reads on (an opaque id: a later global is still reported)."""
    stream = b"P" + pid + b"\n."
    seen: list[object] = []

    class Recorder(pickle.Unpickler):
        def persistent_load(self, p: object) -> object:
            seen.append(p)
            return None

    try:
        Recorder(io.BytesIO(stream)).load()
        real: object = seen
    except Exception:
        real = "error"
    try:
        tree: object = [build_tree(stream).root.pid]
    except PickleError:
        tree = "error"
    assert tree == real
    vm = list(analyze_pickle(stream).persistent_ids)
    if real != "error":
        assert vm == real
    else:
        assert not pid.isascii()


@pytest.mark.parametrize("width", [1, 2, 4])
@pytest.mark.parametrize("code", [0, 1, 255, 256, 65535, 1 << 31, (1 << 32) - 1])
def test_the_vm_the_tree_and_cpython_read_ext_codes_alike(width: int, code: int) -> None:
    """EXT1/EXT2 codes are unsigned, EXT4's signed (C's calc_binint); a code <= 0 fails. The C
    unpickler names the code it looked up, the VM the code it reports as dangerous; the tree
    refuses EXT opcodes. (ckptguard read EXT4 unsigned: 2**31 was reported as an EXT code
    where the unpickler fails.)"""
    if code >= 1 << (8 * width):
        return
    stream = bytes([{1: 0x82, 2: 0x83, 4: 0x84}[width]]) + code.to_bytes(width, "little") + b"."
    with pytest.raises(Exception) as real:
        pickle.loads(stream)
    with pytest.raises(PickleError):
        build_tree(stream)
    if code == 0 or (width == 4 and code >= 1 << 31):
        assert "code <= 0" in str(real.value)
        with pytest.raises(PickleError, match="EXT code must be positive"):
            analyze_pickle(stream)
        return
    assert str(code) in str(real.value)
    (finding,) = [f for f in analyze_pickle(stream).findings if f.rule == "pickle-ext-opcode"]
    assert f"#{code} " in finding.message


@pytest.mark.parametrize("proto", range(8))
def test_the_vm_the_tree_and_cpython_read_proto_alike(proto: int) -> None:
    stream = bytes([0x80, proto]) + b"N."
    real = _c(stream)
    assert _vm_value(stream) == real
    assert _tree_value(stream) == real


def test_every_opcode_cpython_knows_is_covered_here() -> None:
    """Each opcode is in a three-way test above, or has its operand (if any) read by a shared
    handler those tests reach; semantic opcodes without operands are the oracle's
    (tests/oracle.py) and the walkers' own tests'. FRAME is tested in test_exact_reading."""
    covered = set(_OPERANDS) | set(_MEMO) | set(_GETS) | {"GLOBAL", "INST", "STACK_GLOBAL"}
    covered |= {"PERSID", "EXT1", "EXT2", "EXT4", "PROTO", "FRAME", "STOP"}
    with_operands = {o.name for o in pickletools.opcodes if o.arg is not None}
    assert with_operands <= covered


def test_operand_layouts_are_those_of_pickletools_and_the_c_unpickler() -> None:
    """One table of operand layouts (``_opcodes.FIXED``/``COUNTED``/``LINES``/``NO_ARGS``)
    serves the walkers and unframed_stream; it matches pickletools' argument descriptors,
    except where the C unpickler reads otherwise (BINSTRING's count is unsigned to it)."""
    for o in pickletools.opcodes:
        code, arg = ord(o.code), o.arg
        if arg is None:
            assert code in op.NO_ARGS
        elif arg.n > 0:
            assert op.FIXED[code] == arg.n, o.name
        elif arg.n == pickletools.UP_TO_NEWLINE:
            assert op.LINES[code] == (2 if "pair" in arg.name else 1), o.name
        else:
            width = {
                pickletools.TAKEN_FROM_ARGUMENT1: 1,
                pickletools.TAKEN_FROM_ARGUMENT4: 4,
                pickletools.TAKEN_FROM_ARGUMENT4U: 4,
                pickletools.TAKEN_FROM_ARGUMENT8U: 8,
            }[arg.n]
            signed = arg.n == pickletools.TAKEN_FROM_ARGUMENT4 and code != op.BINSTRING
            assert op.COUNTED[code][:2] == (width, signed), o.name


def test_a_long1_of_128_bytes_or_more_does_not_end_the_file_object_reading() -> None:
    """Regression: LONG1's count was read signed by unframed_stream, so a LONG1 of 128 bytes
    or more ended the io.BytesIO reading there, and globals after it went unreported."""
    data = pickle.dumps(2**1500, protocol=2)[:-1] + b"\x8c\x02os\x8c\x06system\x93."
    assert data[3] >= 128  # LONG1's count
    reading = unframed_stream(data, 0)
    assert (reading.stream, reading.end) == (data, len(data))


def _py(data: bytes) -> object:
    try:
        return _show(pickle._loads(data))  # type: ignore[attr-defined]
    except Exception:
        return "error"


# (stream, what the C unpickler reads, what the pure-Python one reads): docs/pickle-reading.md
_C_VS_PYTHON = [
    (b"I010\n.", 8, "error"),  # strtol base 0: octal
    (b"I+1\n.", True, 1),  # any 3-byte line worth 0 or 1 is a bool to C
    (b"I-0\n.", False, 0),
    (b"I 01\n.", 1, "error"),  # strtol skips the space (and then it is no bool: 4 bytes)
    (b"I1\x00junk\n.", 1, "error"),  # C stops at the NUL
    (b"K\x07p7\x00junk\n0g7\n.", 7, "error"),  # memo keys too
    (b"F 1.5\n.", "error", 1.5),  # PyOS_string_to_double: no spaces
    (b"F1_0.5\n.", "error", 10.5),  # ... no underscores
    (b"T\x00\x00\x00\x80ab.", "error", "error"),  # BINSTRING: unsigned count (truncated) to C
]


@pytest.mark.parametrize(("stream", "c", "python"), _C_VS_PYTHON)
def test_where_the_c_and_python_unpicklers_disagree_both_walkers_read_as_c(
    stream: bytes, c: object, python: object
) -> None:
    """pickle.load and torch.load use the C unpickler; ckptguard reads as it does."""
    c, python = (v if v == "error" else _show(v) for v in (c, python))
    assert (_c(stream), _py(stream)) == (c, python)
    assert _vm_value(stream) == _tree_value(stream) == c
