"""A symbolic unpickler: walks one pickle stream and records what it would import and call.

Nothing is ever imported, called or evaluated. The walk mirrors CPython's unpickler closely
enough to resolve every global exactly as it would (``GLOBAL``, ``STACK_GLOBAL`` whatever
pushed its operands, ``INST``, ``OBJ``, protocol < 3 ``fix_imports`` renames) and folds plain
constants so callers can read small values (legacy torch headers, persistent ids). Every
malformed, truncated or oversized input raises :class:`PickleError`; the work is linear in
the input size and bounded by :class:`PickleLimits`.
"""

from __future__ import annotations

import codecs
import mmap

from ckptguard._gc import gc_paused
from ckptguard._pickle._reader import (
    F64,
    HIGHEST_PROTOCOL,
    I32,
    MISSING,
    U16,
    U32,
    U64,
    WALK_ERRORS,
    Reader,
    Short,
    map_name,
    parse_float_line,
    parse_int_line,
    parse_long_line,
    parse_memo_line,
    unframed_stream,
)
from ckptguard._pickle._types import (
    DEFAULT_LIMITS,
    OPAQUE,
    GlobalConst,
    GlobalUsage,
    PersistentRef,
    PickleAnalysis,
    PickleError,
    PickleLimits,
)
from ckptguard._results import FindingRecord
from ckptguard._verdict import Severity, Use

# typing is only needed by type checkers; importing it costs start-up time (mypy honours a
# module-level TYPE_CHECKING constant).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_PLAIN = frozenset((int, float, str, bytes, bool))
_MAX_FINDINGS_PER_RULE = 20
_MAX_FOLD_DEPTH = 64
_FOLD_VALUE_BUDGET = 200_000  # items folded for the top-level value (legacy storage keys, ...)
_FOLD_PID_BUDGET = 1_000  # items folded for one persistent id (torch's are 5-tuples)
# Calls whose folded arguments are kept (the readers check tensors against their storages).
RECORDED_CALLS = frozenset(
    {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}
)
_MAX_RECORDED_CALLS = 1_000_000
# Readings of a stream whose FRAMEs do not hold whole opcodes: small frames enumerated (2**n
# readings at most) and bytes walked in all (it is an error either way: this is for the report)
_MAX_SMALL_FRAMES = 6
_UNFRAMED_BUDGET = 64 << 20
_MAX_ENDS = 8  # places a file object may be left after an ambiguous pickle, followed at most


class _FoldBudget(Exception):
    """Internal: folding a value into a constant needs more work than it may take."""


class _Glob:
    """A global pushed on the stack (one per GLOBAL/STACK_GLOBAL/INST occurrence)."""

    __slots__ = ("called", "key", "referenced")

    def __init__(self, key: tuple[str, str]) -> None:
        self.key = key
        self.called = False
        self.referenced = False


class _Obj:
    """The result of a call (REDUCE, NEWOBJ, INST, OBJ, ...) or of a persistent load."""

    __slots__ = ("memoized", "origin", "pid")

    def __init__(
        self, origin: tuple[str, str] | None, memoized: bool = False, pid: int = -1
    ) -> None:
        self.origin = origin
        self.memoized = memoized
        self.pid = pid  # index into persistent_ids when this is a persistent load


class _List:
    __slots__ = ("items", "overflow")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.overflow = False


class _Dict:
    __slots__ = ("items", "overflow")

    def __init__(self) -> None:
        self.items: list[tuple[Any, Any]] = []
        self.overflow = False


class _Set:
    __slots__ = ("frozen", "items", "overflow")

    def __init__(self, frozen: bool = False) -> None:
        self.items: list[Any] = []
        self.frozen = frozen
        self.overflow = False


class _Big:
    """A str/bytes too long to keep as a constant."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind


# Values whose type the walk knows: an opcode that needs another type fails in the real unpickler.
_CONSTANT_TYPES = frozenset({int, float, str, bytes, bool, type(None), tuple, _Big})
_CONTAINER_TYPES = frozenset({_List, _Dict, _Set})
_TYPE_NAMES = {
    _List: "list", _Dict: "dict", _Set: "set", _Big: "str/bytes", type(None): "None",
}  # fmt: skip
# Results of these calls are mutable containers: unhashable as dict keys or set items.
_UNHASHABLE_ORIGINS = frozenset(
    {
        ("collections", "OrderedDict"), ("collections", "defaultdict"),
        ("collections", "Counter"), ("collections", "deque"), ("collections", "ChainMap"),
        ("builtins", "dict"), ("builtins", "list"), ("builtins", "set"),
        ("builtins", "bytearray"),
    }
)  # fmt: skip


_DICT_ORIGINS = frozenset(
    {
        ("collections", "OrderedDict"), ("collections", "defaultdict"),
        ("collections", "Counter"), ("collections", "ChainMap"), ("builtins", "dict"),
    }
)  # fmt: skip
_LIST_ORIGINS = frozenset({("builtins", "list"), ("collections", "deque")})
_SET_ORIGINS = frozenset({("builtins", "set")})
# Results of vetted calls whose type is known: item/append/add operations on them that their
# type does not support fail in the unpickler (tensors and arrays included: torch refuses).
_KNOWN_ORIGINS = (
    _DICT_ORIGINS
    | _LIST_ORIGINS
    | _SET_ORIGINS
    | frozenset(
        {
            ("builtins", "frozenset"), ("builtins", "tuple"), ("builtins", "str"),
            ("builtins", "int"), ("builtins", "float"), ("builtins", "bytes"),
            ("builtins", "complex"), ("argparse", "Namespace"),
            ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
            ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
        }
    )
)  # fmt: skip


_ORIGINS_ACCEPTING: dict[type, frozenset[tuple[str, str]]] = {
    _Dict: _DICT_ORIGINS,
    _List: _LIST_ORIGINS,
    _Set: _SET_ORIGINS,
}


def _unhashable(v: Any, depth: int = 0) -> bool:
    """True when the real unpickler would fail to use ``v`` as a dict key or set item."""
    t = type(v)
    if t is str or t is int:
        return False
    if t is _List or t is _Dict:
        return True
    if t is _Set:
        return not v.frozen
    if t is _Obj:
        return v.origin in _UNHASHABLE_ORIGINS
    if t is tuple and depth < _MAX_FOLD_DEPTH:
        return any(_unhashable(x, depth + 1) for x in v)
    return False


_BIG_STR = _Big("str")
_BIG_BYTES = _Big("bytes")
_MARKS_CLOSERS = frozenset(b"tldeu\x90\x91io1")


class _Walker(Reader):
    """State of one walk; :func:`analyze_pickle` is the entry point."""

    def __init__(
        self, data: Any, start: int, where: str, limits: PickleLimits, fold_value: bool = True
    ) -> None:
        super().__init__(data, start, where, limits)
        self.fold_value = fold_value
        self.fold_budget = 0
        self.globs: dict[tuple[str, str], list[_Glob]] = {}
        self.raw_names: dict[tuple[str, str], tuple[str, str]] = {}
        self.first_offset: dict[tuple[str, str], int] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.built: set[tuple[str, str]] = set()
        self.findings: list[FindingRecord] = []
        self.finding_counts: dict[str, int] = {}
        self.persistent_ids: list[object] = []
        self.calls: list[tuple[tuple[str, str], object]] = []
        self.consts: dict[tuple[str, str], GlobalConst] = {}  # folded globals, one per key
        self.opcodes = 0

    # ----------------------------------------------------------------- helpers
    def finding(self, rule: str, severity: Severity, message: str) -> None:
        n = self.finding_counts.get(rule, 0)
        self.finding_counts[rule] = n + 1
        if n < _MAX_FINDINGS_PER_RULE:
            self.findings.append(
                FindingRecord(rule, severity, message, f"{self.where}@{self.op_pos}")
            )

    def invalid(self, problem: str) -> None:
        """An operation the real unpickler fails on (or that ckptguard does not model): the
        file is an error, but the walk goes on, so every global a loader could reach after it
        is still reported (a loader's objects may accept what ckptguard's model refuses)."""
        self.finding("pickle-invalid-operation", Severity.ERROR, problem)

    def frame_problem(self, problem: str) -> None:
        """A FRAME that does not hold exactly whole opcodes: the file is an error (loaders read
        it differently); the walk goes on reading it as ``pickle.loads`` does."""
        self.finding("pickle-frame-ambiguity", Severity.ERROR, problem)

    def take(self, n: int) -> Any:
        pos = self.pos
        end = pos + n
        if n < 0 or end > self.size:
            self.short(f"truncated: needs {n} more bytes, {self.size - pos} left")
        self.pos = end
        return self.data[pos:end]

    def take_const(self, n: int) -> Any:
        """Like :meth:`take`, but a value longer than ``max_const_len`` is skipped, not copied
        (None is returned): a huge string costs no memory."""
        if n <= self.limits.max_const_len:
            return self.take(n)
        end = self.pos + n
        if end > self.size:
            self.short(f"truncated: needs {n} more bytes, {self.size - self.pos} left")
        self.pos = end
        return None

    def u8(self) -> int:
        pos = self.pos
        if pos >= self.size:
            self.short("truncated: missing 1-byte argument")
        self.pos = pos + 1
        return int(self.data[pos])

    def u32(self) -> int:
        if self.pos + 4 > self.size:
            self.short("truncated: missing 4-byte argument")
        (v,) = U32(self.data, self.pos)
        self.pos += 4
        return int(v)

    def u64(self) -> int:
        if self.pos + 8 > self.size:
            self.short("truncated: missing 8-byte argument")
        (v,) = U64(self.data, self.pos)
        self.pos += 8
        return int(v)

    def push_str(self, raw: Any, encoding: str, errors: str = "strict") -> None:
        if raw is None or len(raw) > self.limits.max_const_len:
            self.stack.append(_BIG_STR)
            return
        try:
            self.stack.append(str(bytes(raw), encoding, errors))
        except UnicodeDecodeError as exc:
            self.fail(f"invalid {encoding} text: {exc.reason}")

    def push_py2str(self, raw: Any) -> None:
        """A protocol 0-2 ``str`` (STRING, BINSTRING, SHORT_BINSTRING): bytes decoded with the
        loader's encoding (ASCII for pickle.load, UTF-8 for torch.load). Non-ASCII text has no
        one value: it is kept as an opaque string (never a global's name)."""
        if raw is not None and raw.isascii():
            self.push_str(raw, "ascii")
        else:
            self.stack.append(_BIG_STR)

    def push_bytes(self, n: int) -> None:
        if n > self.limits.max_string:
            self.fail(f"a {n}-byte string exceeds the limit of {self.limits.max_string}")
        raw = self.take_const(n)
        self.stack.append(_BIG_BYTES if raw is None else bytes(raw))

    def check_len(self, n: int) -> None:
        if n > self.limits.max_string:
            self.fail(f"a {n}-byte string exceeds the limit of {self.limits.max_string}")

    def reference(self, values: Any) -> None:
        for v in values:
            if type(v) is _Glob:
                v.referenced = True

    def add_global(self, module: str, name: str) -> _Glob:
        raw = (module, name)
        key = map_name(module, name) if self.proto < 3 else raw
        if key != raw:
            self.raw_names.setdefault(key, raw)
        g = _Glob(key)
        lst = self.globs.get(key)
        if lst is None:
            self.globs[key] = [g]
            self.first_offset[key] = self.op_pos
            self.counts[key] = 1
        else:
            lst.append(g)
            self.counts[key] += 1
        return g

    def call(self, func: Any, opname: str) -> _Obj:
        if type(func) is _Glob:
            func.called = True
            return _Obj(func.key)
        self.finding(
            "pickle-indirect-call",
            Severity.DANGEROUS,
            f"{opname} calls a value that is not a global (e.g. the result of another call): "
            "what runs cannot be known without executing the file",
        )
        return _Obj(None)

    def record_call(self, key: tuple[str, str], args: Any) -> None:
        if len(self.calls) < _MAX_RECORDED_CALLS:
            self.calls.append((key, self.fold_bounded(args, _FOLD_PID_BUDGET)))

    def check_hashable(self, keys: Any, opname: str) -> None:
        for k in keys:
            if _unhashable(k):
                self.invalid(f"{opname} with an unhashable key or item: the real unpickler fails")
                return

    def check_args(self, args: Any, opname: str) -> None:
        t = type(args)
        if t is not tuple and (t in _CONSTANT_TYPES or t in _CONTAINER_TYPES):
            what = _TYPE_NAMES.get(t, t.__name__)
            self.invalid(f"{opname} arguments are a {what}, not a tuple: the real unpickler fails")

    def mutate(self, target: Any, opname: str, needs: type | None = None) -> None:
        """``target`` is about to be changed by ``opname``; ``needs`` is the container type the
        operation requires (_List, _Dict, _Set; None for BUILD, which needs an object). A
        target the real unpickler would fail on is a malformed stream."""
        t = type(target)
        frozen = t is _Set and target.frozen
        if t in _CONSTANT_TYPES or (t in _CONTAINER_TYPES and t is not needs) or frozen:
            what = "frozenset" if frozen else _TYPE_NAMES.get(t, t.__name__)
            self.invalid(f"{opname} on a {what}: the real unpickler fails here")
            return
        if (
            t is _Obj
            and needs is not None
            and target.origin in _KNOWN_ORIGINS
            and target.origin not in _ORIGINS_ACCEPTING.get(needs, frozenset())
        ):
            self.invalid(
                f"{opname} on a {'.'.join(target.origin)} object, which does not support "
                "it: the real unpickler fails here"
            )
            return
        if t is _Glob:
            module, name = target.key
            self.finding(
                "pickle-global-mutation",
                Severity.DANGEROUS,
                f"{opname} modifies the global {module}.{name} itself (monkey-patches module "
                "state) instead of an object the pickle built",
            )

    def discard(self, values: Any) -> None:
        for v in values:
            if type(v) is _Obj and not v.memoized:
                origin = ".".join(v.origin) if v.origin else "a computed callable"
                self.finding(
                    "pickle-discarded-call",
                    Severity.WARNING,
                    f"the result of calling {origin} is thrown away: a call made only for its "
                    "side effects (the injected-payload pattern)",
                )
            elif type(v) is _Glob:
                v.referenced = True

    # ----------------------------------------------------------------- main loop
    def run(self) -> PickleAnalysis:
        try:
            return self._run()
        except WALK_ERRORS as exc:  # fail closed on anything the walk did not anticipate
            raise self.malformed(exc) from None

    def error(self, problem: str) -> PickleError:
        err = super().error(problem)
        err.partial = self.usages()  # the globals seen before the failure are still reported
        return err

    def _run(self) -> PickleAnalysis:
        """The opcode loop: frequent opcodes inline, everything else in :meth:`_slow`.

        A frequent opcode whose preconditions do not hold (truncated argument, empty stack,
        a callee that is not a global, ...) is not handled inline: it falls through to
        :meth:`_slow`, which implements every opcode with full checks and diagnostics.
        """
        data = self.data
        size = self.size
        limits = self.limits
        max_ops = limits.max_opcodes
        max_memo = limits.max_memo
        max_stack = limits.max_stack
        max_marks = limits.max_marks
        max_const = limits.max_const_len
        memo = self.memo
        metastack = self.metastack
        counts = self.counts
        u32 = U32
        f64 = F64
        glob_t = _Glob
        obj_t = _Obj
        dict_t = _Dict
        list_t = _List
        missing = MISSING
        recorded = RECORDED_CALLS
        stack = self.stack
        pos = self.pos
        ops = 0
        # Bounds are checked every 1024 opcodes (sizes grow by at most one item per opcode, so
        # a bound is passed by at most 1023), or at every opcode under a limit that small.
        period = 0x3FF if max_ops > 0x3FF else 0
        while True:
            if pos >= size:  # the end of the current FRAME, or of the data
                self.op_pos = pos
                if pos == self.frame_end:
                    self.leave_frame()
                    size = self.size
                if pos >= size:
                    self.fail("truncated: the stream ends before its STOP opcode")
            op = data[pos]
            ops += 1
            if not ops & period:
                self.op_pos = pos
                if ops > max_ops:
                    self.fail(f"more than {max_ops} opcodes")
                if len(stack) > max_stack:
                    self.fail(f"more than {max_stack} items on the stack")
                if len(memo) > max_memo:
                    self.fail(f"more than {max_memo} memo entries")

            if op == 0x71:  # q BINPUT
                if pos + 2 <= size and stack:
                    v = stack[-1]
                    if type(v) is obj_t:
                        v.memoized = True
                    memo[data[pos + 1]] = v
                    pos += 2
                    continue
            elif op == 0x72:  # r LONG_BINPUT
                # (an index over max_memo takes the slow path, which refuses it)
                if pos + 5 <= size and stack and u32(data, pos + 1)[0] <= max_memo:
                    v = stack[-1]
                    if type(v) is obj_t:
                        v.memoized = True
                    memo[u32(data, pos + 1)[0]] = v
                    pos += 5
                    continue
            elif op == 0x58:  # X BINUNICODE
                if pos + 5 <= size:
                    end = pos + 5 + u32(data, pos + 1)[0]
                    if end - pos - 5 <= max_const and end <= size:
                        try:
                            stack.append(str(data[pos + 5 : end], "utf-8", "surrogatepass"))
                        except UnicodeDecodeError:
                            pass
                        else:
                            pos = end
                            continue
            elif op == 0x8C:  # SHORT_BINUNICODE
                if pos + 2 <= size:
                    end = pos + 2 + data[pos + 1]
                    if end - pos - 2 <= max_const and end <= size:
                        try:
                            stack.append(str(data[pos + 2 : end], "utf-8", "surrogatepass"))
                        except UnicodeDecodeError:
                            pass
                        else:
                            pos = end
                            continue
            elif op == 0x68:  # h BINGET
                if pos + 2 <= size:
                    v = memo.get(data[pos + 1], missing)
                    if v is not missing:
                        if type(v) is glob_t:
                            counts[v.key] += 1
                        stack.append(v)
                        pos += 2
                        continue
            elif op == 0x6A:  # j LONG_BINGET
                if pos + 5 <= size:
                    v = memo.get(u32(data, pos + 1)[0], missing)
                    if v is not missing:
                        if type(v) is glob_t:
                            counts[v.key] += 1
                        stack.append(v)
                        pos += 5
                        continue
            elif op == 0x4B:  # K BININT1
                if pos + 2 <= size:
                    stack.append(data[pos + 1])
                    pos += 2
                    continue
            elif op == 0x28:  # ( MARK
                if len(metastack) < max_marks:
                    metastack.append(stack)
                    stack = self.stack = []
                    pos += 1
                    continue
            elif op == 0x47:  # G BINFLOAT
                if pos + 9 <= size:
                    stack.append(f64(data, pos + 1)[0])
                    pos += 9
                    continue
            elif op == 0x75:  # u SETITEMS
                if metastack and not len(stack) & 1:
                    below = metastack[-1]
                    if below and type(below[-1]) is dict_t:
                        items = stack
                        stack = self.stack = metastack.pop()
                        for v in items:
                            if type(v) is glob_t:
                                v.referenced = True
                        for k in items[::2]:
                            if type(k) is not str and _unhashable(k):
                                self.op_pos = pos
                                self.invalid("SETITEMS with an unhashable key (a list or dict)")
                                break
                        self._dict_add(stack[-1], items)
                        pos += 1
                        continue
            elif op == 0x52:  # R REDUCE
                if len(stack) >= 2 and type(stack[-2]) is glob_t and type(stack[-1]) is tuple:
                    args = stack.pop()
                    func = stack.pop()
                    if type(args) is tuple:
                        for v in args:
                            if type(v) is glob_t:
                                v.referenced = True
                    func.called = True
                    if func.key in recorded:
                        self.record_call(func.key, args)
                    stack.append(obj_t(func.key))
                    pos += 1
                    continue
            elif op == 0x7D:  # } EMPTY_DICT
                stack.append(dict_t())
                pos += 1
                continue
            elif op == 0x74:  # t TUPLE
                if metastack:
                    items = stack
                    stack = self.stack = metastack.pop()
                    stack.append(tuple(items))
                    pos += 1
                    continue
            elif op == 0x89:  # NEWFALSE
                stack.append(False)
                pos += 1
                continue
            elif op == 0x88:  # NEWTRUE
                stack.append(True)
                pos += 1
                continue
            elif op == 0x86:  # TUPLE2
                if len(stack) >= 2:
                    b = stack.pop()
                    stack[-1] = (stack[-1], b)
                    pos += 1
                    continue
            elif op == 0x29:  # ) EMPTY_TUPLE
                stack.append(())
                pos += 1
                continue
            elif op == 0x4E:  # N NONE
                stack.append(None)
                pos += 1
                continue
            elif op == 0x85:  # TUPLE1
                if stack:
                    stack[-1] = (stack[-1],)
                    pos += 1
                    continue
            elif op == 0x5D:  # ] EMPTY_LIST
                stack.append(list_t())
                pos += 1
                continue
            elif op == 0x63:  # c GLOBAL: two newline-terminated UTF-8 names
                nl = data.find(b"\n", pos + 1)
                nl2 = data.find(b"\n", nl + 1) if nl > pos + 1 else -1
                if nl + 1 < nl2 < size:
                    try:
                        module = str(data[pos + 1 : nl], "utf-8")
                        name = str(data[nl + 1 : nl2], "utf-8")
                    except UnicodeDecodeError:
                        pass  # the slow path reports it
                    else:
                        self.op_pos = pos
                        stack.append(self.add_global(module, name))
                        pos = nl2 + 1
                        continue
            elif op == 0x94 and stack:  # MEMOIZE
                v = stack[-1]
                if type(v) is obj_t:
                    v.memoized = True
                memo[len(memo)] = v
                pos += 1
                continue

            # everything else, and the frequent opcodes when their preconditions fail
            self.op_pos = pos
            self.pos = pos + 1
            self.opcodes = ops
            try:
                result = self._slow(op)
            except Short:
                if self.frame_end < 0:
                    raise
                # the opcode straddles its frame's end: an error, read on as pickle.loads does
                self.frame_problem(self.straddle_problem())
                self.leave_frame()
                self.pos = pos + 1
                result = self._slow(op)
            if result is not None:
                return result
            pos = self.pos
            stack = self.stack
            size = self.size

    def _slow(self, op: int) -> PickleAnalysis | None:
        """One opcode at ``self.op_pos`` (argument at ``self.pos``), with every check.

        The opcodes that only this path handles and that every torch checkpoint uses come
        first (the chain is tested in order).
        """
        data = self.data
        size = self.size
        limits = self.limits
        max_memo = limits.max_memo
        max_marks = limits.max_marks
        memo = self.memo
        ops = self.opcodes
        stack = self.stack
        if op == 0x63:  # c GLOBAL
            module = self.text_name()
            name = self.text_name()
            stack.append(self.add_global(module, name))
        elif op == 0x51:  # Q BINPERSID
            pid = self.pop()
            self.reference((pid,))
            if type(pid) is tuple:
                self.reference(pid)
            self.persistent_ids.append(self.fold_bounded(pid, _FOLD_PID_BUDGET))
            self.stack.append(_Obj(None, memoized=True, pid=len(self.persistent_ids) - 1))
        elif op == 0x73:  # s SETITEM
            value = self.pop()
            key = self.pop()
            target = self.top()
            self.reference((key, value))
            self.mutate(target, "SETITEM", _Dict)
            self.check_hashable((key,), "SETITEM")
            if type(target) is _Dict:
                self._dict_add(target, [key, value])
        elif op == 0x62:  # b BUILD
            state = self.pop()
            inst = self.top()
            self.reference((state,))
            if type(state) is tuple:
                self.reference(state)
            if type(inst) is _Obj and inst.origin is not None:
                self.built.add(inst.origin)
            if state is not None:
                self.mutate(inst, "BUILD")
        elif op == 0x75:  # u SETITEMS
            items = self.pop_mark()
            if len(items) % 2:
                self.fail("SETITEMS with an odd number of items")
            target = self.top()
            self.reference(items)
            self.mutate(target, "SETITEMS", _Dict)
            self.check_hashable(items[::2], "SETITEMS")
            if type(target) is _Dict:
                self._dict_add(target, items)
        elif op == 0x4D:  # M BININT2
            if self.pos + 2 > size:
                self.short("truncated: missing 2-byte argument")
            stack.append(U16(data, self.pos)[0])
            self.pos += 2
        elif op == 0x4A:  # J BININT
            if self.pos + 4 > size:
                self.short("truncated: missing 4-byte argument")
            stack.append(I32(data, self.pos)[0])
            self.pos += 4
        elif op == 0x80:  # PROTO
            proto = self.u8()
            if proto > HIGHEST_PROTOCOL:
                self.fail(f"unsupported pickle protocol {proto}")
            self.proto = proto
            self.max_proto = max(self.max_proto, proto)
        elif op == 0x95:  # FRAME
            n = self.u64()
            if n > self.data_end - self.pos:
                self.fail(f"truncated: a {n}-byte frame exceeds the data")
            problem = self.start_frame(n)
            if problem is not None:
                self.frame_problem(problem)
        elif op == 0x2E:  # . STOP
            value = self.pop()
            problem = self.stop_problem()
            if problem is not None:
                self.frame_problem(problem)
            self.discard(self.stack)
            for frame in self.metastack:
                self.discard(frame)
            self.reference((value,))
            self.opcodes = ops
            return PickleAnalysis(
                protocol=self.max_proto,
                end=self.pos,
                globals=self.usages(),
                findings=tuple(self.findings),
                persistent_ids=tuple(self.persistent_ids),
                calls=tuple(self.calls),
                value=self.fold_bounded(value, _FOLD_VALUE_BUDGET) if self.fold_value else OPAQUE,
                opcodes=ops,
            )
        elif op == 0x65:  # e APPENDS
            items = self.pop_mark()
            target = self.top()
            self.reference(items)
            self.mutate(target, "APPENDS", _List)
            if type(target) is _List:
                self._list_add(target, items)
        elif op == 0x61:  # a APPEND
            value = self.pop()
            target = self.top()
            self.reference((value,))
            self.mutate(target, "APPEND", _List)
            if type(target) is _List:
                self._list_add(target, [value])
        elif op == 0x87:  # TUPLE3
            c = self.pop()
            b = self.pop()
            a = self.pop()
            stack.append((a, b, c))
        elif op == 0x93:  # STACK_GLOBAL
            name_v = self.pop()
            module_v = self.pop()
            if type(module_v) is str and type(name_v) is str:
                self.stack.append(self.add_global(module_v, name_v))
            else:
                self.reference((module_v, name_v))
                self.finding(
                    "pickle-dynamic-global",
                    Severity.DANGEROUS,
                    "STACK_GLOBAL's module or name is not a literal string: the global it "
                    "imports cannot be known without executing the file",
                )
                self.stack.append(_Obj(None))
        elif op == 0x81:  # NEWOBJ
            args = self.pop()
            cls = self.pop()
            self.check_args(args, "NEWOBJ")
            if type(args) is tuple:
                self.reference(args)
            self.stack.append(self.call(cls, "NEWOBJ"))
        elif op == 0x8A:  # LONG1
            n = self.u8()
            stack.append(int.from_bytes(self.take(n), "little", signed=True))
        elif op == 0x71:  # q BINPUT
            idx = self.u8()
            v = self.top()
            if type(v) is _Obj:
                v.memoized = True
            memo[idx] = v
        elif op == 0x68:  # h BINGET
            idx = self.u8()
            if idx not in memo:
                self.fail(f"memo key {idx} not found")
            v = memo[idx]
            if type(v) is _Glob:
                self.counts[v.key] += 1
            stack.append(v)
        elif op == 0x58:  # X BINUNICODE
            n = self.u32()
            self.check_len(n)
            self.push_str(self.take_const(n), "utf-8", "surrogatepass")
        elif op == 0x8C:  # SHORT_BINUNICODE
            n = self.u8()
            self.push_str(self.take_const(n), "utf-8", "surrogatepass")
        elif op == 0x4B:  # K BININT1
            stack.append(self.u8())
        elif op == 0x28:  # ( MARK
            if len(self.metastack) >= max_marks:
                self.fail(f"more than {max_marks} nested MARKs")
            self.metastack.append(stack)
            self.stack = []
        elif op == 0x85:  # TUPLE1
            v = self.pop()
            stack.append((v,))
        elif op == 0x86:  # TUPLE2
            b = self.pop()
            a = self.pop()
            stack.append((a, b))
        elif op == 0x74:  # t TUPLE
            items = self.pop_mark()
            self.stack.append(tuple(items))
        elif op == 0x29:  # ) EMPTY_TUPLE
            stack.append(())
        elif op == 0x52:  # R REDUCE
            args = self.pop()
            func = self.pop()
            self.check_args(args, "REDUCE")
            if type(args) is tuple:
                self.reference(args)
            if type(func) is _Glob and func.key in RECORDED_CALLS:
                self.record_call(func.key, args)
            self.stack.append(self.call(func, "REDUCE"))
        elif op == 0x92:  # NEWOBJ_EX
            kwargs = self.pop()
            args = self.pop()
            cls = self.pop()
            self.check_args(args, "NEWOBJ_EX")
            if type(kwargs) in _CONSTANT_TYPES or type(kwargs) in (_List, _Set):
                self.invalid("NEWOBJ_EX keyword arguments are not a dict: the real unpickler fails")
            for a in (args, kwargs):
                if type(a) is tuple:
                    self.reference(a)
                elif type(a) is _Dict:
                    self.reference(v for kv in a.items for v in kv)
            self.stack.append(self.call(cls, "NEWOBJ_EX"))
        elif op == 0x7D:  # } EMPTY_DICT
            stack.append(_Dict())
        elif op == 0x5D:  # ] EMPTY_LIST
            stack.append(_List())
        elif op == 0x94:  # MEMOIZE
            v = self.top()
            if type(v) is _Obj:
                v.memoized = True
            memo[len(memo)] = v
            if len(memo) > max_memo:
                self.fail(f"more than {max_memo} memo entries")
        elif op == 0x72:  # r LONG_BINPUT
            idx = self.u32()
            if idx > max_memo:  # CPython's unpickler allocates a memo table up to idx
                self.fail(f"memo index {idx} exceeds the limit of {max_memo}")
            v = self.top()
            if type(v) is _Obj:
                v.memoized = True
            memo[idx] = v
            if len(memo) > max_memo:
                self.fail(f"more than {max_memo} memo entries")
        elif op == 0x6A:  # j LONG_BINGET
            idx = self.u32()
            if idx not in memo:
                self.fail(f"memo key {idx} not found")
            v = memo[idx]
            if type(v) is _Glob:
                self.counts[v.key] += 1
            stack.append(v)
        elif op == 0x88:  # NEWTRUE
            stack.append(True)
        elif op == 0x89:  # NEWFALSE
            stack.append(False)
        elif op == 0x4E:  # N NONE
            stack.append(None)
        elif op == 0x47:  # G BINFLOAT
            if self.pos + 8 > size:
                self.short("truncated: missing 8-byte float")
            stack.append(F64(data, self.pos)[0])
            self.pos += 8
        elif op == 0x30:  # 0 POP
            if stack:
                self.discard((stack.pop(),))
            else:
                self.discard(self.pop_mark())
        elif op == 0x31:  # 1 POP_MARK
            self.discard(self.pop_mark())
        elif op == 0x32:  # 2 DUP
            v = self.top()
            if type(v) is _Glob:
                self.counts[v.key] += 1
            stack.append(v)
        elif op == 0x43:  # C SHORT_BINBYTES
            self.push_bytes(self.u8())
        elif op == 0x42:  # B BINBYTES
            self.push_bytes(self.u32())
        elif op in (0x8E, 0x96):  # BINBYTES8, BYTEARRAY8
            self.push_bytes(self.u64())
        elif op == 0x8D:  # BINUNICODE8
            n = self.u64()
            self.check_len(n)
            self.push_str(self.take_const(n), "utf-8", "surrogatepass")
        elif op == 0x55:  # U SHORT_BINSTRING
            n = self.u8()
            self.push_py2str(self.take_const(n))
        elif op == 0x54:  # T BINSTRING
            if self.pos + 4 > size:
                self.short("truncated: missing 4-byte length")
            (n,) = U32(data, self.pos)  # unsigned, as CPython reads it
            self.pos += 4
            self.check_len(n)
            self.push_py2str(self.take_const(n))
        elif op == 0x53:  # S STRING
            raw = self.line()  # quoted exactly: no whitespace around the quotes
            if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
                self.fail("STRING argument is not a quoted string")
            self.push_py2str(codecs.escape_decode(raw[1:-1])[0])
        elif op == 0x56:  # V UNICODE
            raw = self.line()
            self.push_str(raw, "raw-unicode-escape")
        elif op == 0x49:  # I INT
            try:
                stack.append(parse_int_line(self.full_line()))
            except ValueError:
                self.fail("INT argument is not a number CPython's unpickler reads")
        elif op == 0x4C:  # L LONG
            try:
                stack.append(parse_long_line(self.full_line()))
            except ValueError:
                self.fail("LONG argument is not a number CPython's unpickler reads")
        elif op == 0x46:  # F FLOAT
            try:
                stack.append(parse_float_line(self.full_line()))
            except ValueError:
                self.fail("FLOAT argument is not a number CPython's unpickler reads")
        elif op == 0x8B:  # LONG4
            if self.pos + 4 > size:
                self.short("truncated: missing 4-byte length")
            (n,) = I32(data, self.pos)
            self.pos += 4
            if n < 0:
                self.fail("LONG4 with a negative length")
            raw = self.take_const(n)
            stack.append(OPAQUE if raw is None else int.from_bytes(raw, "little", signed=True))
        elif op == 0x6C:  # l LIST
            items = self.pop_mark()
            self.reference(items)
            lst = _List()
            self._list_add(lst, items)
            self.stack.append(lst)
        elif op == 0x64:  # d DICT
            items = self.pop_mark()
            if len(items) % 2:
                self.fail("DICT with an odd number of items")
            self.check_hashable(items[::2], "DICT")
            self.reference(items)
            dct = _Dict()
            self._dict_add(dct, items)
            self.stack.append(dct)
        elif op == 0x8F:  # EMPTY_SET
            stack.append(_Set())
        elif op == 0x90:  # ADDITEMS
            items = self.pop_mark()
            target = self.top()
            self.reference(items)
            self.mutate(target, "ADDITEMS", _Set)
            self.check_hashable(items, "ADDITEMS")
            if type(target) is _Set:
                self._set_add(target, items)
        elif op == 0x91:  # FROZENSET
            items = self.pop_mark()
            self.check_hashable(items, "FROZENSET")
            self.reference(items)
            fs = _Set(frozen=True)
            self._set_add(fs, items)
            self.stack.append(fs)
        elif op == 0x67:  # g GET
            idx = self._memo_key()
            if idx not in memo:
                self.fail(f"memo key {idx} not found")
            v = memo[idx]
            if type(v) is _Glob:
                self.counts[v.key] += 1
            stack.append(v)
        elif op == 0x70:  # p PUT
            idx = self._memo_key()
            if idx < 0:
                self.fail("negative PUT argument")
            if idx > max_memo:  # CPython's unpickler allocates a memo table up to idx
                self.fail(f"memo index {idx} exceeds the limit of {max_memo}")
            v = self.top()
            if type(v) is _Obj:
                v.memoized = True
            memo[idx] = v
            if len(memo) > max_memo:
                self.fail(f"more than {max_memo} memo entries")
        elif op == 0x69:  # i INST
            module = self.text_name("ascii")
            name = self.text_name("ascii")
            g = self.add_global(module, name)
            items = self.pop_mark()
            self.reference(items)
            self.stack.append(self.call(g, "INST"))
        elif op == 0x6F:  # o OBJ
            items = self.pop_mark()
            if not items:
                self.fail("OBJ without a class")
            self.reference(items[1:])
            self.stack.append(self.call(items[0], "OBJ"))
        elif op == 0x50:  # P PERSID
            raw = self.line()
            self.persistent_ids.append(raw.decode("ascii", "replace"))
            self.stack.append(_Obj(None, memoized=True, pid=len(self.persistent_ids) - 1))
        elif op in (0x82, 0x83, 0x84):  # EXT1 / EXT2 / EXT4
            width = {0x82: 1, 0x83: 2, 0x84: 4}[op]
            code = int.from_bytes(self.take(width), "little")
            if code <= 0:
                self.fail("EXT code must be positive")
            self.finding(
                "pickle-ext-opcode",
                Severity.DANGEROUS,
                f"EXT{width} loads global #{code} from the copyreg extension registry: "
                "which global that is depends on the loading process and cannot be vetted",
            )
            self.stack.append(_Obj(None))
        elif op in (0x97, 0x98):  # NEXT_BUFFER / READONLY_BUFFER
            if op == 0x98:
                self.top()
            else:
                stack.append(OPAQUE)
            self.finding(
                "pickle-out-of-band-buffer",
                Severity.ERROR,
                "protocol 5 out-of-band buffer: the data is not in the file and loaders "
                "without buffers= fail",
            )
        else:
            self.fail(f"invalid opcode 0x{op:02x}")
        return None

    # ----------------------------------------------------------------- folding
    def _memo_key(self) -> int:
        try:
            return parse_memo_line(self.full_line())
        except ValueError:
            self.fail("memo key is not a number CPython's unpickler reads")

    def _list_add(self, target: _List, items: list[Any]) -> None:
        if target.overflow:
            return
        if len(target.items) + len(items) > self.limits.max_container_items:
            target.overflow = True
            target.items = []
            return
        target.items.extend(items)

    def _dict_add(self, target: _Dict, items: list[Any]) -> None:
        if target.overflow:
            return
        if len(target.items) + len(items) // 2 > self.limits.max_container_items:
            target.overflow = True
            target.items = []
            return
        it = iter(items)
        target.items.extend(zip(it, it, strict=True))

    def _set_add(self, target: _Set, items: list[Any]) -> None:
        if target.overflow:
            return
        if len(target.items) + len(items) > self.limits.max_container_items:
            target.overflow = True
            target.items = []
            return
        target.items.extend(items)

    def fold_bounded(self, v: Any, budget: int) -> object:
        """:meth:`fold` visiting at most ``budget`` items in all (shared memo references count
        each time they are reached, so a value that nests one list in itself many times folds
        in bounded time); past the budget the whole value is OPAQUE."""
        self.fold_budget = budget
        try:
            return self.fold(v, 0)
        except _FoldBudget:
            return OPAQUE

    def fold(self, v: Any, depth: int) -> object:
        """Turn a stack value into a plain constant, or OPAQUE (use :meth:`fold_bounded`)."""
        t = type(v)
        if v is None or t in (int, float, str, bytes, bool):
            return v
        if depth >= _MAX_FOLD_DEPTH:
            return OPAQUE
        if t is _Glob:
            const = self.consts.get(v.key)
            if const is None:
                const = self.consts[v.key] = GlobalConst(*v.key)
            return const
        if t is _Obj:
            return PersistentRef(v.pid) if v.pid >= 0 else OPAQUE
        if t is tuple:  # torch storage ids, shapes, strides: mostly plain items, folded inline
            self._spend(len(v))
            plain = _PLAIN
            return tuple(
                [x if x is None or type(x) in plain else self.fold(x, depth + 1) for x in v]
            )
        if t is _List:
            if v.overflow:
                return OPAQUE
            self._spend(len(v.items))
            return [self.fold(x, depth + 1) for x in v.items]
        if t is _Dict:
            if v.overflow:
                return OPAQUE
            self._spend(2 * len(v.items))
            try:
                return {self.fold(k, depth + 1): self.fold(x, depth + 1) for k, x in v.items}
            except TypeError:  # unhashable folded key
                return OPAQUE
        if t is _Set:
            if v.overflow:
                return OPAQUE
            self._spend(len(v.items))
            try:
                items = [self.fold(x, depth + 1) for x in v.items]
                return frozenset(items) if v.frozen else set(items)
            except TypeError:
                return OPAQUE
        return OPAQUE

    def _spend(self, n: int) -> None:
        self.fold_budget -= n + 1
        if self.fold_budget < 0:
            raise _FoldBudget

    def usages(self) -> tuple[GlobalUsage, ...]:
        out = []
        for key, instances in self.globs.items():
            uses: set[Use] = set()
            for g in instances:
                if g.called:
                    uses.add(Use.CALL)
                if g.referenced or not g.called:
                    uses.add(Use.REFERENCE)
            if key in self.built:
                uses.add(Use.BUILD)
                if not any(g.referenced for g in instances) and any(g.called for g in instances):
                    uses.discard(Use.REFERENCE)
            out.append(
                GlobalUsage(
                    module=key[0],
                    name=key[1],
                    count=self.counts[key],
                    uses=frozenset(uses),
                    raw=self.raw_names.get(key),
                    first_offset=self.first_offset[key],
                )
            )
        return tuple(out)


def analyze_pickle(
    data: bytes | bytearray | memoryview | mmap.mmap,
    *,
    start: int = 0,
    where: str = "pickle",
    limits: PickleLimits = DEFAULT_LIMITS,
    fold_value: bool = True,
) -> PickleAnalysis:
    """Walk one pickle stream from ``data[start:]`` through its STOP opcode, executing nothing.

    Returns what the stream would import, call and build; raises :class:`PickleError` for
    malformed, truncated or oversized input (with the globals seen so far in ``.partial``).
    With ``fold_value=False`` the top-level value is not folded (``.value`` is OPAQUE): callers
    that only need the globals save the work.
    """
    buf: bytes | mmap.mmap
    if isinstance(data, memoryview):
        obj = data.obj
        whole = data.contiguous and isinstance(obj, (bytes, mmap.mmap)) and data.nbytes == len(obj)
        buf = obj if whole else bytes(data)  # type: ignore[assignment]
    elif isinstance(data, bytearray):
        buf = bytes(data)
    else:
        buf = data
    if start < 0 or start > len(buf):
        raise PickleError(f"{where}: start offset {start} is outside the data", offset=start)
    with gc_paused():
        walker = _Walker(buf, start, where, limits, fold_value)
        try:
            result = walker.run()
        except PickleError as err:
            if walker.finding_counts.get("pickle-frame-ambiguity"):
                err.partial = _merge(err.partial, _unframed_globals(buf, start, where, limits))
            raise
        if walker.finding_counts.get("pickle-frame-ambiguity"):
            more, threats, ends = _unframed(buf, start, where, limits)
            result = result.with_globals(
                _merge(result.globals, more),
                unframed_end=ends[0],
                findings=result.findings + threats,
                other_ends=tuple(sorted({e for e in ends if e != result.end}))[:_MAX_ENDS],
            )
        return result


def _unframed(
    buf: Any, start: int, where: str, limits: PickleLimits
) -> tuple[tuple[GlobalUsage, ...], tuple[FindingRecord, ...], list[int]]:
    """The globals (and dangerous findings) the stream reaches when read from a file object
    (its FRAMEs do not hold whole opcodes, so those readings differ from the linear one), and
    where each reading leaves the file (io.BytesIO's first)."""
    first = unframed_stream(buf, start)
    found: tuple[GlobalUsage, ...] = ()
    threats: list[FindingRecord] = []
    ends = [first.end]
    seen: set[bytes] = set()
    budget = _UNFRAMED_BUDGET
    # io.BytesIO reads every frame in one piece (mask 0); an opened file reads some small
    # frames in place, depending on its buffer: each choice for the first few small frames
    for mask in range(1 << min(first.small_frames, _MAX_SMALL_FRAMES)):
        budget -= len(first.stream)  # (every reading is about as long: bounded before it)
        if mask and budget < 0:
            break
        reading = first if mask == 0 else unframed_stream(buf, start, mask)
        if reading.stream in seen:
            continue
        seen.add(reading.stream)
        ends.append(reading.end)
        try:
            walk = _Walker(reading.stream, 0, f"{where} (as a file object reads it)", limits, False)
            analysis = walk.run()
        except PickleError as err:
            found = _merge(found, err.partial)
            continue
        found = _merge(found, analysis.globals)
        threats += [f for f in analysis.findings if f.severity is Severity.DANGEROUS]
    return found, tuple(threats[:_MAX_FINDINGS_PER_RULE]), ends


def _unframed_globals(
    buf: Any, start: int, where: str, limits: PickleLimits
) -> tuple[GlobalUsage, ...]:
    return _unframed(buf, start, where, limits)[0]


def _merge(
    first: tuple[GlobalUsage, ...], more: tuple[GlobalUsage, ...]
) -> tuple[GlobalUsage, ...]:
    seen = {(g.module, g.name) for g in first}
    return first + tuple(g for g in more if (g.module, g.name) not in seen)


def globals_in_a_row(
    data: Any,
    start: int,
    count: int,
    *,
    where: str,
    limits: PickleLimits = DEFAULT_LIMITS,
    depth: int = 0,
) -> tuple[GlobalUsage, ...]:
    """The globals of up to ``count`` pickles read in a row from ``start`` (best effort: up to
    the first failure, whose partial globals count too). Readers call it where a file object
    without ``peek`` would start the next pickle elsewhere than the linear reading does (a
    FRAME holds bytes after STOP), so what that reading reaches is reported as well."""
    found: tuple[GlobalUsage, ...] = ()
    pos = start
    for i in range(count):
        if pos >= len(data):
            break
        try:
            a = analyze_pickle(data, start=pos, where=f"{where} #{i + 1}", limits=limits,
                               fold_value=False)  # fmt: skip
        except PickleError as err:
            return _merge(found, err.partial)
        found = _merge(found, a.globals)
        for other in a.other_ends if i + 1 < count and depth < 2 else ():
            found = _merge(found, globals_in_a_row(data, other, count - i - 1, where=where,
                                                   limits=limits, depth=depth + 1))  # fmt: skip
        pos = a.end
    return found
