"""A symbolic unpickler: walks one pickle stream and records what it would import and call.

Nothing is ever imported, called or evaluated. The walk mirrors CPython's unpickler closely
enough to resolve every global exactly as it would (``GLOBAL``, ``STACK_GLOBAL`` whatever
pushed its operands, ``INST``, ``OBJ``, protocol < 3 ``fix_imports`` renames) and folds plain
constants so callers can read small values (legacy torch headers, persistent ids). Every
malformed, truncated or oversized input raises :class:`PickleError`; the work is linear in
the input size and bounded by :class:`PickleLimits`.
"""

from __future__ import annotations

import functools
import mmap

from ckptguard._errors import PickleError
from ckptguard._gc import gc_paused
from ckptguard._grammar import a_or_an
from ckptguard._pickle import _bounds
from ckptguard._pickle._analysis import (
    DEFAULT_LIMITS,
    OPAQUE,
    GlobalConst,
    GlobalUsage,
    PersistentRef,
    PickleAnalysis,
    PickleLimits,
    PickleSource,
)
from ckptguard._pickle._bounds import CallRule, Param, rule_for, rule_mode, rule_texts
from ckptguard._pickle._opcodes import NAMES
from ckptguard._pickle._reader import (
    F64,
    I32,
    MISSING,
    U32,
    WALK_ERRORS,
    Reader,
    dispatch_table,
    map_name,
    unframed_stream,
)
from ckptguard._results import FindingRecord
from ckptguard._scan_rules import (
    PICKLE_CALL_ARGUMENT,
    PICKLE_DEEP_KEY,
    PICKLE_DISCARDED_CALL,
    PICKLE_DYNAMIC_GLOBAL,
    PICKLE_EXT_OPCODE,
    PICKLE_FRAME_AMBIGUITY,
    PICKLE_GLOBAL_MUTATION,
    PICKLE_HASH_COLLISIONS,
    PICKLE_INDIRECT_CALL,
    PICKLE_INVALID_OPERATION,
    PICKLE_OUT_OF_BAND_BUFFER,
    PICKLE_SHARED_MUTATION,
    PICKLE_UNBOUNDED_KEY,
    PICKLE_UNBOUNDED_WORK,
)
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

    __slots__ = ("called", "flags", "key", "referenced")

    def __init__(self, key: tuple[str, str], flags: int = 0) -> None:
        self.key = key
        self.called = False
        self.referenced = False
        self.flags = flags  # _RECORDED | _CHECKED | _CHECKED_NO_ARGS: how its calls are checked


_RECORDED = 1  # in RECORDED_CALLS
_CHECKED = 2  # a call rule to apply when it is called with arguments
_CHECKED_NO_ARGS = 4  # ... and without any (a "never" rule)


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


# protocol 0/1 rebuild of any class (omegaconf nodes among them): its BUILD state is checked too
_RECONSTRUCTOR = ("copyreg", "_reconstructor")
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


# (hash work, nesting height) of a dict key: see _Walker.key_cost
_UNHASHABLE = (-1, 0)
_LEAF = (1, 0)
_TOO_DEEP = (1, _bounds.MAX_KEY_DEPTH + 1)
_HASH_PLAIN = frozenset((str, int, float, bool, bytes, type(None)))
_RANGE = ("builtins", "range")
_CODECS_ENCODE = ("_codecs", "encode")
_HASH_MODULUS = (1 << 61) - 1  # sys.hash_info.modulus on 64-bit CPython
# Calls whose result is a tuple-like value: hashing it hashes its items again.
_TUPLE_RESULTS = frozenset({("builtins", "tuple"), ("torch", "Size"), ("builtins", "frozenset")})
_SIZED_KINDS = frozenset({"iterable", "hashed", "pairs"})
_BIG_ARGS = 16  # argument tuples longer than this are referenced once (memo by identity)


def _count(n: int) -> str:
    """A big count for a message, without converting a huge int to decimal."""
    if n < 10**12:
        return str(n)
    return f"about 2**{n.bit_length() - 1}"


def _show(v: Any) -> str:
    if type(v) is str:
        return repr(v) if len(v) <= 40 else repr(v[:40]) + "..."
    return _describe(v)


def _describe(v: Any) -> str:
    """A short description of a stack value for a finding."""
    t = type(v)
    if t is str or t is bytes:
        return repr(v) if len(v) <= 40 else f"{a_or_an(str(len(v)))}-character {t.__name__}"
    if t is int:
        return _count(v) if v >= 0 else "-" + _count(-v)
    if t is float or t is bool or v is None:
        return repr(v)
    if t is tuple:
        return f"{a_or_an(str(len(v)))}-item tuple"
    if t is _Obj:
        if v.pid >= 0:
            return "a persistent-id object"
        return f"the result of {'.'.join(v.origin)}(...)" if v.origin else "a computed object"
    if t is _Glob:
        return f"the global {'.'.join(v.key)}"
    return a_or_an(_TYPE_NAMES.get(t, t.__name__))


def _range_length(args: list[Any]) -> int:
    """len(range(*args)) for plain integer arguments, -1 otherwise (never materialized)."""
    if not 1 <= len(args) <= 3 or any(type(a) is not int and type(a) is not bool for a in args):
        return -1
    start, stop, step = (0, int(args[0]), 1) if len(args) == 1 else (int(args[0]), int(args[1]), 1)
    if len(args) == 3:
        step = int(args[2])
    if step == 0:
        return -1
    if step > 0:
        return max(0, (stop - start + step - 1) // step)
    return max(0, (start - stop - step - 1) // -step)


def _number_problem(kind: str, v: Any) -> str:
    """Why ``v`` is not a ``number``/``bigint``/``rational``/``const`` argument ('' if it is)."""
    t = type(v)
    if v is OPAQUE:  # a LONG4 too long to keep as a constant
        return "an integer too long to convert in linear time"
    if t is int:
        if v.bit_length() > _bounds.MAX_INT_BITS:
            return f"an integer of {v.bit_length()} bits (converting it is super-linear)"
        return ""
    if kind == "bigint" or t is float or t is bool:
        return ""
    if t is str or t is bytes:
        if kind == "const":
            return ""
        if len(v) > _bounds.MAX_DIGITS:
            return f"more than {_bounds.MAX_DIGITS} characters (parsing it is super-linear)"
        if kind == "rational" and ("e" in v or "E" in v if t is str else b"e" in v.lower()):
            return "a number with an exponent (the exact value can be astronomically large)"
        return ""
    if v is None and kind == "const":
        return ""
    if t is _Big:
        return "a huge string (parsing it is super-linear)" if kind != "const" else ""
    return "not a plain constant"


@functools.lru_cache(maxsize=1)
def _call_flags() -> dict[tuple[str, str], int]:
    """How calls of each global are checked (the _Glob flags), for the globals that are."""
    flags = dict.fromkeys(RECORDED_CALLS, _RECORDED)
    for key, text in rule_texts().items():
        mode = rule_mode(text)
        if mode != "free":
            flags[key] = flags.get(key, 0) | _CHECKED
        if mode == "never":
            flags[key] |= _CHECKED_NO_ARGS
    return flags


_BIG_STR = _Big("str")
_BIG_BYTES = _Big("bytes")
_MARKS_CLOSERS = frozenset(b"tldeu\x90\x91io1")


def _module_class(pid: Any) -> _Glob | None:
    """The global a ``('module', <global>, ...)`` persistent id names: torch.load's legacy
    ``persistent_load`` returns it (for any length: a malformed id may still return it), and
    nothing else happens to it there (its source text is only compared, never run)."""
    if type(pid) is tuple and len(pid) >= 2 and pid[0] in ("module", b"module"):
        cls = pid[1]
        if type(cls) is _Glob:
            return cls
    return None


class _Walker(Reader):
    """State of one walk; :func:`analyze_pickle` is the entry point."""

    def __init__(  # noqa: PLR0917
        self,
        data: Any,
        start: int,
        where: str,
        limits: PickleLimits,
        fold_value: bool = True,
        exact: bool = False,
    ) -> None:
        super().__init__(data, start, where, limits)
        self.exact = exact or self.exact_only()  # every opcode through the dispatch table
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
        # Bounded work (see _bounds): the loader's steps this pickle causes, charged as calls,
        # hashes and state are met; memos keyed by id() keep the object alive beside its entry.
        self.stream_bytes = max(0, self.size - start)
        self.work = 0
        self.work_budget = _bounds.WORK_BASE + _bounds.WORK_PER_BYTE * self.stream_bytes
        self.alloc_bound = _bounds.ALLOC_BASE + _bounds.ALLOC_PER_BYTE * self.stream_bytes
        self.over_budget = False
        self.call_flags = _call_flags()
        self.key_memo: dict[int, tuple[Any, int, int]] = {}  # tuple -> (it, cost, height)
        self.fold_memo: dict[int, tuple[Any, int, object, int]] = {}  # (it, depth, folded, cost)
        self.fold_impure = 0  # mutable containers folded so far (a fold that met none is memoized)
        self.referenced_tuples: dict[int, tuple[Any, ...]] = {}
        self.hash_tables: dict[int, tuple[object, dict[int, Any], dict[int, int]]] = {}
        self.info: dict[int, tuple[_Obj, int, int]] = {}  # call result -> (it, length, hash cost)

    # ----------------------------------------------------------------- helpers
    def finding(self, rule: str, severity: Severity, message: str) -> None:
        n = self.finding_counts.get(rule, 0)
        self.finding_counts[rule] = n + 1
        if n < _MAX_FINDINGS_PER_RULE:
            self.findings.append(
                FindingRecord(rule, severity, message, f"{self.where}@{self.op_pos}")
            )

    def check_omegaconf_state(self, state: _Dict) -> None:
        """An omegaconf node/container state whose value makes omegaconf call a resolver when
        the program reads it is not `safe` (see ``_bounds.OMEGACONF_VALUE_KEYS``)."""
        for key, value in state.items:
            if key not in _bounds.OMEGACONF_VALUE_KEYS:
                continue
            t = type(value)
            if t is str:
                name = _bounds.resolver_call(value)
                if name is None:
                    continue
                what = f"calls the resolver {name!r}"
            elif t is _Big and value.kind == "str":
                what = "is a string too long for the scan to read"
            elif t is _Obj and value.origin in _bounds.STR_RESULT_ORIGINS:
                what = f"is built by {'.'.join(value.origin)}, a string the scan cannot read"
            else:
                continue
            self.finding(
                "omegaconf-interpolation",
                Severity.ERROR,
                f"an omegaconf value ({key}) {what}: omegaconf runs the resolver the loading "
                "program registered under that name, with arguments from the file, when the "
                "value is read (resolve the config before saving: "
                "OmegaConf.to_container(cfg, resolve=True))",
            )

    def invalid(self, problem: str) -> None:
        """An operation the real unpickler fails on (or that ckptguard does not model): the
        file is an error, but the walk goes on, so every global a loader could reach after it
        is still reported (a loader's objects may accept what ckptguard's model refuses)."""
        self.finding(PICKLE_INVALID_OPERATION, Severity.ERROR, problem)

    def frame_problem(self, problem: str) -> None:
        """A FRAME that does not hold exactly whole opcodes: the file is an error (loaders read
        it differently); the walk goes on reading it as ``pickle.loads`` does."""
        self.finding(PICKLE_FRAME_AMBIGUITY, Severity.ERROR, problem)

    # ----------------------------------------------------------------- value hooks
    def opaque(self, kind: str) -> Any:
        """A constant too long to keep (over ``max_const_len``): a stand-in, not a failure."""
        return _BIG_STR if kind == "str" else _BIG_BYTES if kind == "bytes" else OPAQUE

    def py2str(self, raw: bytes | None) -> Any:
        """A protocol 0-2 ``str`` (STRING, BINSTRING, SHORT_BINSTRING): bytes decoded with the
        loader's encoding (ASCII for pickle.load, UTF-8 for torch.load). Non-ASCII text has no
        one value: it is kept as an opaque string (never a global's name)."""
        if raw is not None and raw.isascii():
            return self.text(raw, "ascii")
        return _BIG_STR

    def memoized(self, v: Any) -> None:
        if type(v) is _Obj:
            v.memoized = True

    def reused(self, v: Any) -> Any:
        if type(v) is _Glob:
            self.counts[v.key] += 1
        return v

    def reference(self, values: Any) -> None:
        for v in values:
            if type(v) is _Glob:
                v.referenced = True

    def add_global(self, module: str, name: str) -> _Glob:
        raw = (module, name)
        key = map_name(module, name) if self.proto < 3 else raw
        if key != raw:
            self.raw_names.setdefault(key, raw)
        g = _Glob(key, self.call_flags.get(key, 0))
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
            PICKLE_INDIRECT_CALL,
            Severity.DANGEROUS,
            f"{opname} calls a value that is not a global (e.g. the result of another call): "
            "what runs cannot be known without executing the file",
        )
        return _Obj(None)

    def record_call(self, key: tuple[str, str], args: Any) -> None:
        if len(self.calls) < _MAX_RECORDED_CALLS:
            folded = OPAQUE if self.over_budget else self.fold_bounded(args, _FOLD_PID_BUDGET)
            self.calls.append((key, folded))

    def check_hashable(self, keys: Any, opname: str, where: object) -> None:
        """``keys`` go into the dict or set ``where``: hashable, costed, not colliding."""
        for k in keys:
            if type(k) is not str and self.hash_key(k, opname, where) < 0:
                self.invalid(f"{opname} with an unhashable key or item: the real unpickler fails")
                return

    def note_hash(self, k: Any, where: object, opname: str) -> None:
        """Count keys of the container ``where`` that share a hash without being equal: the
        hashes of ints, floats and tuples of them are chosen by whoever wrote the file, and n
        of them in one dict make its construction take n**2 comparisons."""
        t = type(k)
        if t is int and -_HASH_MODULUS < k < _HASH_MODULUS:
            return  # hash(k) == k (but -1 and -2): distinct small ints never share a hash
        try:
            h = hash(k)  # its cost was charged by hash_key (an int, float or tuple of them)
        except TypeError:
            return
        table = self.hash_tables.get(id(where))
        if table is None or table[0] is not where:
            table = self.hash_tables[id(where)] = (where, {}, {})
        prev = table[1].setdefault(h, k)
        if prev is not k and prev != k:
            n = table[2][h] = table[2].get(h, 1) + 1
            if n == _bounds.MAX_HASH_COLLISIONS:
                self.finding(
                    PICKLE_HASH_COLLISIONS,
                    Severity.ERROR,
                    f"{opname} puts {n} different keys with the same hash into one dict or "
                    "set (crafted integers, floats or tuples): each insertion compares it with "
                    "all the others, so the real loader takes quadratic time",
                )

    # ----------------------------------------------------------------- bounded work
    def charge(self, n: int) -> bool:
        """Count ``n`` steps of the real loader; past the budget the file is not `safe`.
        True once the budget is spent."""
        self.work += n
        if self.work > self.work_budget and not self.over_budget:
            self.over_budget = True
            self.finding(
                PICKLE_UNBOUNDED_WORK,
                Severity.ERROR,
                f"loading this {self.stream_bytes}-byte pickle makes the unpickler do more than "
                f"{self.work_budget} steps (calls that re-walk shared arguments, keys whose hash "
                "re-walks shared tuples, huge iterables): a load would not finish in time and "
                "memory proportional to the file",
            )
        return self.over_budget

    def charge_args(self, args: tuple[Any, ...]) -> None:
        """Charge one call (or BUILD) with ``args``: their number plus the length of each
        container among them. Its own work is at most what it charges, so the scan's work
        stays within the budget too; past it, nothing more is counted."""
        if self.over_budget:
            return
        if self.charge(len(args)):
            return
        n = 0
        for x in args:
            t = type(x)
            if t is tuple:
                n += len(x)
            elif t is _List or t is _Set:
                n += len(x.items)
            elif t is _Dict:
                n += 2 * len(x.items)
            elif t is _Obj:
                info = self.info.get(id(x))
                if info is not None and info[0] is x:
                    n += info[1]
        self.charge(n)

    def reference_tuple(self, items: tuple[Any, ...]) -> None:
        """:meth:`reference` for a tuple, walked once however often it is used (memo)."""
        if len(items) > _BIG_ARGS:
            key = id(items)
            if self.referenced_tuples.get(key) is items:
                return
            self.referenced_tuples[key] = items
        for v in items:
            if type(v) is _Glob:
                v.referenced = True

    def hash_key(self, k: Any, opname: str, where: object = None) -> int:
        """The work of hashing ``k`` as the real loader does (charged), -1 if unhashable;
        ``where`` is the container it goes into, to count colliding keys."""
        cost, height = self.key_cost(k, 0)
        if cost < 0:
            return -1
        if height > _bounds.MAX_KEY_DEPTH:
            self.finding(
                PICKLE_DEEP_KEY,
                Severity.ERROR,
                f"{opname} uses a key nested more than {_bounds.MAX_KEY_DEPTH} levels deep: "
                "CPython hashes nested tuples recursively in C, which can crash the loading "
                "process",
            )
            return 1
        if cost > self.work_budget:
            self.finding(
                PICKLE_UNBOUNDED_KEY,
                Severity.ERROR,
                f"{opname} uses a key whose hash walks {_count(cost)} items: a tuple built from "
                "shared tuples, which CPython re-hashes in full every time (its hash is not "
                "cached), so the real loader takes time exponential in the file",
            )
            return 1
        if cost > 1:
            self.charge(cost)
        if type(k) is not str and where is not None:
            self.note_hash(k, where, opname)
        return cost

    def key_cost(self, v: Any, depth: int) -> tuple[int, int]:
        """(hash work, nesting height) of ``v`` as a dict key or set item: (-1, 0) when the
        real loader cannot hash it; a height over MAX_KEY_DEPTH when it is nested too deep.
        Linear in the pickle: each tuple is costed once (memo by identity)."""
        t = type(v)
        if t is not tuple:
            if t in _HASH_PLAIN:
                return _LEAF
            if t is _List or t is _Dict:
                return _UNHASHABLE
            if t is _Set:
                return (len(v.items) + 1, 1) if v.frozen else _UNHASHABLE
            if t is _Obj:
                if v.origin in _UNHASHABLE_ORIGINS:
                    return _UNHASHABLE
                info = self.info.get(id(v))
                if info is not None and info[0] is v:
                    return (info[2], 1) if info[2] >= 0 else _UNHASHABLE
            return _LEAF
        hit = self.key_memo.get(id(v))
        if hit is not None and hit[0] is v:
            if hit[1] >= 0 and depth + hit[2] > _bounds.MAX_KEY_DEPTH:
                return _TOO_DEEP
            return hit[1], hit[2]
        if depth >= _bounds.MAX_KEY_DEPTH:
            return _TOO_DEEP  # not memoized: reached at a smaller depth, it may be fine
        cost = 1
        height = 0
        plain = _HASH_PLAIN
        for x in v:
            if type(x) in plain:
                cost += 1
                continue
            c, h = self.key_cost(x, depth + 1)
            if c < 0:
                self.key_memo[id(v)] = (v, -1, 0)
                return _UNHASHABLE
            if h > _bounds.MAX_KEY_DEPTH:
                return _TOO_DEEP
            cost += c
            if h >= height:
                height = h + 1
        if height == 0:
            height = 1
        self.key_memo[id(v)] = (v, cost, height)
        return cost, height

    def length_of(self, v: Any) -> int | None:
        """How many items iterating ``v`` yields in the real loader, or None if unknown."""
        t = type(v)
        if t is tuple or t is str or t is bytes:
            return len(v)
        if t is _List or t is _Set or t is _Dict:
            return None if v.overflow else len(v.items)
        if t is _Big:
            return self.stream_bytes
        if t is _Obj:
            info = self.info.get(id(v))
            if info is not None and info[0] is v and info[1] >= 0:
                return info[1]
        return None

    # ----------------------------------------------------------------- call rules
    def account_call(self, func: Any, args: Any, kwargs: Any, opname: str, result: _Obj) -> None:
        """Everything a call costs and must satisfy: referenced globals, the work budget,
        and, for a global with a rule in call_bounds.toml, that rule."""
        if type(args) is tuple:
            self.reference_tuple(args)
            self.charge_args(args)
        elif type(args) is _Obj:
            self.charge_args((args,))
        if type(kwargs) is _Dict:
            self.charge(2 * len(kwargs.items))
            if not self.over_budget:
                self.reference(v for kv in kwargs.items for v in kv)
        if type(func) is _Glob:
            if func.flags & _RECORDED:
                self.record_call(func.key, args)
            if func.flags & _CHECKED:
                self.check_call(func.key, args, kwargs, opname, result)

    def check_call(
        self, key: tuple[str, str], args: Any, kwargs: Any, opname: str, result: _Obj | None
    ) -> None:
        """Apply the call rule of ``key`` (call_bounds.toml) to one call."""
        if (
            key == _CODECS_ENCODE  # every array and bytes value of a protocol-2 pickle
            and type(args) is tuple
            and len(args) == 2
            and type(args[1]) is str
            and args[1] in _bounds.CODECS
        ):
            _bounds.warm_codecs()
            if result is not None and type(args[0]) is str:
                self.note_encoded(result, args[0])
            return
        rule = rule_for(key)
        if rule is None or rule.mode == "free":
            return
        if rule.mode == "params" and args == () and kwargs is None:
            return  # nothing to check (OrderedDict(), once per tensor)
        self.apply_rule(key, rule, args, kwargs, opname, result, 0)

    def note_encoded(self, result: _Obj, text: str) -> None:
        """The bytes ``_codecs.encode(text, codec)`` makes have a known length (at most 4 per
        character): ``bytes``/``bytearray`` of them (protocol 0-2 pickles) are bounded."""
        n = 4 * len(text)
        self.info[id(result)] = (result, n, n + 1)

    def call_finding(self, key: tuple[str, str], opname: str, problem: str) -> None:
        self.finding(
            PICKLE_CALL_ARGUMENT,
            Severity.ERROR,
            f"{opname} calls {key[0]}.{key[1]}{problem}: a `safe` verdict covers only calls "
            "whose cost is bounded by the file and that change nothing outside the objects "
            "they build (see ckptguard/data/call_bounds.toml)",
        )

    def apply_rule(  # noqa: PLR0917 - the call's parts
        self,
        key: tuple[str, str],
        rule: CallRule,
        args: Any,
        kwargs: Any,
        opname: str,
        result: _Obj | None,
        depth: int,
    ) -> None:
        if rule.mode == "never":
            self.call_finding(
                key, opname, f": it is vetted to be referenced, not called ({rule.reason})"
            )
            return
        if type(args) is not tuple:
            self.call_finding(
                key, opname, " with arguments that are not a tuple the pickle spells out"
            )
            return
        kw_items: list[tuple[Any, Any]] = []
        if kwargs is not None:
            if type(kwargs) is not _Dict or kwargs.overflow:
                self.call_finding(key, opname, " with keyword arguments the scan cannot read")
                return
            kw_items = kwargs.items
        if rule.mode == "empty":
            if args or kw_items:
                self.call_finding(key, opname, f" with arguments ({rule.reason})")
            return
        bound: list[tuple[Param, Any]] = []
        params = rule.params
        for i, v in enumerate(args):
            p = params[i] if i < len(params) else rule.star
            if p is None:
                return  # more arguments than it takes: the real call raises TypeError
            bound.append((p, v))
        for k, v in kw_items:
            p = next((q for q in params if q.name == k), None) if type(k) is str else None
            if p is None:
                self.call_finding(
                    key, opname, f" with a keyword argument {_show(k)} it does not check"
                )
                return
            bound.append((p, v))
        named = {p.name: v for p, v in bound}
        length = -1
        for p, v in bound:
            n = self.check_arg(key, rule, p, v, named, opname, depth)
            if p.kind in _SIZED_KINDS:
                length = n
        if result is None:
            return
        if key == _RANGE and len(args) == len(bound):
            length = _range_length([v for _, v in bound])
        if length >= 0:
            tree = length + 1
            if key in _TUPLE_RESULTS and params:
                tree = self.items_cost(named.get(params[0].name), length)
            self.info[id(result)] = (result, length, tree)

    def items_cost(self, v: Any, length: int) -> int:
        """Hash work of a tuple-like built from iterating ``v``: its items' hash costs."""
        t = type(v)
        items = v if t is tuple else v.items if t is _List or t is _Set else None
        if items is None or self.over_budget:
            return length + 1
        total = 1
        for x in items:
            c, _height = self.key_cost(x, 1)
            if c < 0:
                return -1
            total += c
        return total

    def check_arg(  # noqa: PLR0917 - one branch per kind
        self,
        key: tuple[str, str],
        rule: CallRule,
        p: Param,
        v: Any,
        named: dict[str, Any],
        opname: str,
        depth: int,
    ) -> int:
        """Check one argument against its kind; the length iterated for sized kinds."""
        kind = p.kind
        t = type(v)
        if kind == "any":
            return -1
        if kind == "state":
            if t is _Dict:
                self.check_omegaconf_state(v)
            return -1
        if kind == "bytes_source":
            if t is int:
                if not 0 <= v <= self.alloc_bound:
                    self.call_finding(
                        key, opname, f" with {p.name}={_count(v)}: it allocates that much"
                    )
                return -1
            if t in (str, bytes, bool, _Big) or v is None:
                return -1
            kind = "iterable"
        if kind in _SIZED_KINDS:
            n = self.length_of(v)
            if n is None:
                self.call_finding(
                    key,
                    opname,
                    f" with {p.name}={_describe(v)}: the scan cannot tell how many items "
                    "iterating it yields",
                )
                return -1
            if n > self.work_budget:
                self.call_finding(
                    key,
                    opname,
                    f" with {p.name}={_describe(v)}: iterating it takes {_count(n)} steps",
                )
                return -1
            self.charge(n)
            if kind == "hashed":
                self.hash_items(v, opname)
            elif kind == "pairs":
                self.hash_pairs(v, opname)
            return n
        if kind in {"codec", "errors"}:
            allowed = _bounds.CODECS if kind == "codec" else _bounds.ERROR_HANDLERS
            if t is not str or v.lower() not in allowed:
                what = "codec" if kind == "codec" else "error handler"
                self.call_finding(
                    key,
                    opname,
                    f" with {p.name}={_describe(v)}: only the {what}s "
                    f"{', '.join(sorted(allowed))} are vetted (looking up another may import "
                    "modules)",
                )
            elif kind == "codec":
                _bounds.warm_codecs()
            return -1
        if kind in ("int", "small"):
            if t is not int and t is not bool:
                self.call_finding(
                    key, opname, f" with {p.name}={_describe(v)}, not a plain integer"
                )
            elif kind == "small" and not -1 <= v <= _bounds.SMALL_MAX:
                self.call_finding(
                    key, opname, f" with {p.name}={_count(v)} (at most {_bounds.SMALL_MAX})"
                )
            return -1
        if kind in ("number", "bigint", "rational", "const"):
            problem = _number_problem(kind, v)
            if problem:
                self.call_finding(key, opname, f" with {p.name}={_describe(v)}: {problem}")
            return -1
        if kind == "shape":
            problem = self.shape_problem(v)
            if problem:
                self.call_finding(key, opname, f" with {p.name}={_describe(v)}: {problem}")
            return -1
        if kind == "dtype_spec":
            size = _bounds.dtype_itemsize(v) if t is str else -1
            if not 0 <= size <= self.alloc_bound:
                self.call_finding(
                    key,
                    opname,
                    f" with {p.name}={_describe(v)}: not a type string as numpy pickles write them",
                )
            return -1
        if kind == "bitgen":
            if not (t is _Glob or (t is str and v in _bounds.BIT_GENERATORS)):
                self.call_finding(
                    key, opname, f" with {p.name}={_describe(v)}: not a bit generator name"
                )
            return -1
        if kind == "callee":
            self.check_callee(key, p, v, named, opname, depth)
        return -1

    def check_callee(  # noqa: PLR0917
        self,
        key: tuple[str, str],
        p: Param,
        v: Any,
        named: dict[str, Any],
        opname: str,
        depth: int,
    ) -> None:
        """``v`` is called by ``key`` with other arguments: apply v's own rule to them."""
        if type(v) is not _Glob:
            self.call_finding(
                key, opname, f" with {p.name}={_describe(v)}, which it calls: not a global"
            )
            return
        if depth >= _bounds.MAX_CALLEE_DEPTH:
            self.call_finding(key, opname, f": callables passed to callables {depth} deep")
            return
        v.called = True  # it is called, by the loader on the pickle's behalf
        inner: list[Any] = []
        for name in p.callee_args:
            if name.startswith("*"):
                arg = named.get(name[1:], ())
                if type(arg) is not tuple:
                    self.call_finding(
                        key, opname, f" with {name[1:]}={_describe(arg)}: not a tuple of arguments"
                    )
                    return
                inner.extend(arg)
            elif name.endswith("?"):
                arg = named.get(name[:-1])
                if arg is not None:
                    inner.append(arg)
            else:
                inner.append(named.get(name))
        args = tuple(inner)
        self.charge_args(args)
        rule = rule_for(v.key)
        if v.key in RECORDED_CALLS:
            self.record_call(v.key, args)
        if rule is not None and rule.mode != "free":
            self.apply_rule(
                v.key,
                rule,
                args,
                None,
                opname + " (through " + ".".join(key) + ")",
                None,
                depth + 1,
            )

    def hash_items(self, v: Any, opname: str) -> None:
        """Charge hashing every item of ``v`` (a set/frozenset/Counter argument)."""
        t = type(v)
        if t is tuple:
            items: Any = v
        elif t is _List or t is _Set:
            items = v.items
        elif t is _Dict:
            items = [k for k, _ in v.items]
        else:
            return  # str/bytes items, or a call result already costed
        if self.over_budget:
            return
        for x in items:
            if type(x) is not str:
                self.hash_key(x, opname, items)

    def hash_pairs(self, v: Any, opname: str) -> None:
        """Charge hashing the first item of every pair of ``v`` (a dict-like argument)."""
        t = type(v)
        if t is tuple or t is list:
            items: Any = v
        elif t is _List:
            items = v.items
        else:
            return  # a mapping keeps its hashes; a call result was costed when it was made
        if self.over_budget:
            return
        for x in items:
            tx = type(x)
            first = x[0] if tx is tuple and x else x.items[0] if tx is _List and x.items else None
            if first is not None and type(first) is not str:
                self.hash_key(first, opname, items)

    def shape_problem(self, v: Any) -> str:
        t = type(v)
        dims = [v] if t is int else v if t is tuple else v.items if t is _List else None
        if dims is None:
            return "not a shape of plain integers"
        total = 1
        for d in dims:
            if type(d) is not int or d < 0:
                return "not a shape of plain non-negative integers"
            total *= d
            if total > self.alloc_bound:
                return f"it allocates more than {_count(self.alloc_bound)} elements"
        return ""

    def check_args(self, args: Any, opname: str) -> None:
        t = type(args)
        if t is not tuple and (t in _CONSTANT_TYPES or t in _CONTAINER_TYPES):
            what = _TYPE_NAMES.get(t, t.__name__)
            self.invalid(
                f"{opname} arguments are {a_or_an(what)}, not a tuple: the real unpickler fails"
            )

    def mutate(
        self, target: Any, opname: str, needs: type | None = None, *, fails: bool = True
    ) -> None:
        """``target`` is about to be changed by ``opname``; ``needs`` is the container type the
        operation requires (_List, _Dict, _Set; None for BUILD, which needs an object). A
        target the real unpickler would fail on is a malformed stream (unless ``fails`` is
        false: BUILD with None state). Changing a global, or an object the loader shares
        rather than one the pickle built, is never `safe`."""
        t = type(target)
        frozen = t is _Set and target.frozen
        if t is _Obj and target.pid >= 0:
            self.finding(
                PICKLE_SHARED_MUTATION,
                Severity.ERROR,
                f"{opname} changes the object of a persistent id (a storage the loader shares "
                "between tensors), not an object the pickle built",
            )
        if fails and (t in _CONSTANT_TYPES or (t in _CONTAINER_TYPES and t is not needs) or frozen):
            what = "frozenset" if frozen else _TYPE_NAMES.get(t, t.__name__)
            self.invalid(f"{opname} on {a_or_an(what)}: the real unpickler fails here")
            return
        if (
            t is _Obj
            and needs is not None
            and target.origin in _KNOWN_ORIGINS
            and target.origin not in _ORIGINS_ACCEPTING.get(needs, frozenset())
        ):
            self.invalid(
                f"{opname} on {a_or_an('.'.join(target.origin))} object, which does not support "
                "it: the real unpickler fails here"
            )
            return
        if t is _Glob:
            module, name = target.key
            self.finding(
                PICKLE_GLOBAL_MUTATION,
                Severity.DANGEROUS,
                f"{opname} modifies the global {module}.{name} itself (monkey-patches module "
                "state) instead of an object the pickle built",
            )

    def discard(self, values: Any) -> None:
        for v in values:
            if type(v) is _Obj and not v.memoized:
                origin = ".".join(v.origin) if v.origin else "a computed callable"
                self.finding(
                    PICKLE_DISCARDED_CALL,
                    Severity.WARNING,
                    f"the result of calling {origin} is thrown away: a call made only for its "
                    "side effects (the injected-payload pattern)",
                )
            elif type(v) is _Glob:
                v.referenced = True

    # ----------------------------------------------------------------- main loop
    def run(self) -> PickleAnalysis:
        try:
            return self.run_exact() if self.exact else self._run()
        except WALK_ERRORS as exc:  # fail closed on anything the walk did not anticipate
            raise self.malformed(exc) from None

    def error(self, problem: str) -> PickleError:
        err = super().error(problem)
        err.partial = self.usages()  # the globals seen before the failure are still reported
        return err

    def _run(self) -> PickleAnalysis:
        """The fast opcode loop: frequent opcodes inline, everything else in
        :meth:`Reader.step` (the exact path, :meth:`Reader.run_exact`, takes every opcode there).

        A frequent opcode whose preconditions do not hold (truncated argument, empty stack,
        a callee that is not a global, ...) is not handled inline: it falls through to
        :meth:`Reader.step`, whose handlers implement every opcode with full checks and
        diagnostics. Inlining is worth 2.1-2.3x on state dicts (benchmarks/bench_walkers.py).
        """
        data = self.data
        size = self.size
        limits = self.limits
        max_memo = limits.max_memo
        max_marks = limits.max_marks
        max_const = limits.max_const_len
        memo = self.memo
        metastack = self.metastack
        counts = self.counts
        u32 = U32
        i32 = I32
        f64 = F64
        glob_t = _Glob
        obj_t = _Obj
        dict_t = _Dict
        list_t = _List
        missing = MISSING
        sized = _CONTAINER_TYPES
        codecs_encode = _CODECS_ENCODE
        codecs_ok = _bounds.CODECS
        codecs_warm = False
        hmod = _HASH_MODULUS
        fast_work = 0  # work charged by the inlined REDUCE, added to self.work periodically
        stack = self.stack
        pos = self.pos
        ops = 0
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
            if not ops & 0x3FF:  # BOUNDS_PERIOD
                self.op_pos = pos
                if fast_work:
                    self.charge(fast_work)
                    fast_work = 0
                self.check_bounds(ops)

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
                            tk = type(k)
                            if tk is not str and (tk is not int or not -hmod < k < hmod):
                                self.op_pos = pos
                                if self.hash_key(k, "SETITEMS", stack[-1]) < 0:
                                    self.invalid("SETITEMS with an unhashable key (a list or dict)")
                                    break
                        self._dict_add(stack[-1], items)
                        pos += 1
                        continue
            elif op == 0x52:  # R REDUCE
                if len(stack) >= 2 and type(stack[-2]) is glob_t and type(stack[-1]) is tuple:
                    args = stack.pop()
                    func = stack.pop()
                    flags = func.flags
                    if len(args) > _BIG_ARGS:
                        self.op_pos = pos
                        self.reference_tuple(args)
                        self.charge_args(args)
                        if flags & 1:  # _RECORDED
                            self.record_call(func.key, args)
                    elif flags & 1:  # _RECORDED: record_call's fold charges their size
                        for v in args:
                            if type(v) is glob_t:
                                v.referenced = True
                        self.record_call(func.key, args)
                    else:  # reference_tuple + charge_args, inline (charged at the next check)
                        fast_work += len(args)
                        for v in args:
                            tv = type(v)
                            if tv is glob_t:
                                v.referenced = True
                            elif tv is tuple:
                                fast_work += len(v)
                            elif tv in sized:
                                fast_work += len(v.items)
                    func.called = True
                    made = obj_t(func.key)
                    if not flags & (2 if args else 4):  # _CHECKED / _CHECKED_NO_ARGS
                        pass
                    elif (
                        func.key == codecs_encode  # protocol-2 bytes, arrays: encode(s, 'latin1')
                        and len(args) == 2
                        and type(args[1]) is str
                        and args[1] in codecs_ok
                    ):
                        if not codecs_warm:
                            _bounds.warm_codecs()
                            codecs_warm = True
                        if type(args[0]) is str:
                            self.note_encoded(made, args[0])
                    else:
                        self.op_pos = pos
                        self.check_call(func.key, args, None, "REDUCE", made)
                    stack.append(made)
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
            elif op == 0x4D:  # M BININT2 (tensor sizes and strides)
                if pos + 3 <= size:
                    stack.append(data[pos + 1] | data[pos + 2] << 8)
                    pos += 3
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
            elif op == 0x4A:  # J BININT
                if pos + 5 <= size:
                    stack.append(i32(data, pos + 1)[0])
                    pos += 5
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
            if fast_work:
                self.charge(fast_work)
                fast_work = 0
            result = self.step(op)
            if result is not None:
                return result  # type: ignore[no-any-return]
            pos = self.pos
            stack = self.stack
            size = self.size

    # ----------------------------------------------------------------- semantic opcodes
    # (the data opcodes are the shared reader's; these give the rest their meaning for the
    # scan: globals and their uses, calls and their rules, changes to built objects)
    def finish(self, value: Any) -> PickleAnalysis:
        self.discard(self.stack)
        for frame in self.metastack:
            self.discard(frame)
        self.reference((value,))
        return PickleAnalysis(
            protocol=self.max_proto,
            end=self.pos,
            globals=self.usages(),
            findings=tuple(self.findings),
            persistent_ids=tuple(self.persistent_ids),
            calls=tuple(self.calls),
            value=self.fold_bounded(value, _FOLD_VALUE_BUDGET) if self.fold_value else OPAQUE,
            opcodes=self.opcodes,
        )

    def load_global(self) -> None:
        self.push(self.add_global(*self.global_operands("utf-8")))

    def load_stack_global(self) -> None:
        module_v, name_v = self.pop_args(2)
        if type(module_v) is str and type(name_v) is str:
            self.push(self.add_global(module_v, name_v))
            return
        self.reference((module_v, name_v))
        self.finding(
            PICKLE_DYNAMIC_GLOBAL,
            Severity.DANGEROUS,
            "STACK_GLOBAL's module or name is not a literal string: the global it "
            "imports cannot be known without executing the file",
        )
        self.push(_Obj(None))

    def called(self, func: Any, args: Any, kwargs: Any, opname: str) -> None:
        """A call the unpickler makes (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ): its callee's use,
        its cost and its call rule; pushes its result."""
        result = self.call(func, opname)
        self.account_call(func, args, kwargs, opname, result)
        self.push(result)

    def load_inst(self) -> None:
        g = self.add_global(*self.global_operands("ascii"))
        self.called(g, tuple(self.pop_mark()), None, "INST")

    def load_obj(self) -> None:
        items = self.pop_mark()
        if not items:
            self.fail("OBJ without a class")
        self.called(items[0], tuple(items[1:]), None, "OBJ")

    def load_reduce(self) -> None:
        func, args = self.pop_args(2)
        self.check_args(args, "REDUCE")
        self.called(func, args, None, "REDUCE")

    def load_newobj(self) -> None:
        cls, args = self.pop_args(2)
        self.check_args(args, "NEWOBJ")
        self.called(cls, args, None, "NEWOBJ")

    def load_newobj_ex(self) -> None:
        cls, args, kwargs = self.pop_args(3)
        self.check_args(args, "NEWOBJ_EX")
        if type(kwargs) in _CONSTANT_TYPES or type(kwargs) in (_List, _Set):
            self.invalid("NEWOBJ_EX keyword arguments are not a dict: the real unpickler fails")
        self.called(cls, args, kwargs, "NEWOBJ_EX")

    def load_build(self) -> None:
        state = self.pop()
        inst = self.top()
        self.reference((state,))
        if type(state) is tuple:
            self.reference_tuple(state)
        self.charge_args((state,))  # __setstate__ / setattr walk the state once per BUILD
        if type(state) is _Dict:
            self.hash_pairs(state.items, "BUILD")
        if type(inst) is _Obj and inst.origin is not None:
            self.built.add(inst.origin)
            if type(state) is _Dict and (
                inst.origin[0].startswith("omegaconf.") or inst.origin == _RECONSTRUCTOR
            ):
                self.check_omegaconf_state(state)
        # BUILD None on a constant does nothing; on a global it still calls __setstate__
        self.mutate(inst, "BUILD", fails=state is not None)

    def load_binpersid(self) -> None:
        pid = self.pop()
        self.reference((pid,))
        cls = _module_class(pid)
        was_referenced = cls is not None and cls.referenced
        if type(pid) is tuple:
            self.reference_tuple(pid)
            if cls is not None:  # what the pickle does with the class is recorded next
                cls.referenced = was_referenced
        folded = OPAQUE if self.over_budget else self.fold_bounded(pid, _FOLD_PID_BUDGET)
        self.persistent_ids.append(folded)
        if cls is not None:
            # torch's legacy persistent_load returns the class of a ('module', cls, file,
            # source) id (a whole-model pickle): it is the global, called by what follows
            self.push(cls)
        else:
            self.push(_Obj(None, memoized=True, pid=len(self.persistent_ids) - 1))

    def load_persid(self) -> None:
        raw = self.line()
        self.persistent_ids.append(raw.decode("ascii", "replace"))
        self.push(_Obj(None, memoized=True, pid=len(self.persistent_ids) - 1))

    def load_ext1(self) -> None:  # EXT1, EXT2, EXT4
        code = self.ext_code()
        self.finding(
            PICKLE_EXT_OPCODE,
            Severity.DANGEROUS,
            f"{NAMES[self.op]} loads global #{code} from the copyreg extension registry: "
            "which global that is depends on the loading process and cannot be vetted",
        )
        self.push(_Obj(None))

    load_ext2 = load_ext4 = load_ext1

    def buffer(self) -> None:
        self.finding(
            PICKLE_OUT_OF_BAND_BUFFER,
            Severity.ERROR,
            "protocol 5 out-of-band buffer: the data is not in the file and loaders "
            "without buffers= fail",
        )

    def load_next_buffer(self) -> None:
        self.push(OPAQUE)
        self.buffer()

    def load_readonly_buffer(self) -> None:
        self.top()
        self.buffer()

    # containers: the walker's own values, with the hash, work and mutation checks
    def load_empty_list(self) -> None:
        self.push(_List())

    def load_empty_dict(self) -> None:
        self.push(_Dict())

    def load_empty_set(self) -> None:
        self.push(_Set())

    def load_list(self) -> None:
        items = self.pop_mark()
        self.reference(items)
        self.push(self._list_add(_List(), items))

    def load_dict(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            self.fail("DICT with an odd number of items")
        self.check_hashable(items[::2], "DICT", items)
        self.reference(items)
        self.push(self._dict_add(_Dict(), items))

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self.check_hashable(items, "FROZENSET", items)
        self.reference(items)
        self.push(self._set_add(_Set(frozen=True), items))

    def load_setitem(self) -> None:
        key, value = self.pop_args(2)
        target = self.top()
        self.reference((key, value))
        self.mutate(target, "SETITEM", _Dict)
        self.check_hashable((key,), "SETITEM", target)
        if type(target) is _Dict:
            self._dict_add(target, [key, value])

    def load_setitems(self) -> None:
        items = self.pop_mark()
        if len(items) % 2:
            self.fail("SETITEMS with an odd number of items")
        target = self.top()
        self.reference(items)
        self.mutate(target, "SETITEMS", _Dict)
        self.check_hashable(items[::2], "SETITEMS", target)
        if type(target) is _Dict:
            self._dict_add(target, items)

    def load_append(self) -> None:
        value = self.pop()
        target = self.top()
        self.reference((value,))
        self.mutate(target, "APPEND", _List)
        if type(target) is _List:
            self._list_add(target, [value])

    def load_appends(self) -> None:
        items = self.pop_mark()
        target = self.top()
        self.reference(items)
        self.mutate(target, "APPENDS", _List)
        if type(target) is _List:
            self._list_add(target, items)

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.top()
        self.reference(items)
        self.mutate(target, "ADDITEMS", _Set)
        self.check_hashable(items, "ADDITEMS", target)
        if type(target) is _Set:
            self._set_add(target, items)

    # ----------------------------------------------------------------- folding
    def _list_add(self, target: _List, items: list[Any]) -> _List:
        if target.overflow:
            return target
        if len(target.items) + len(items) > self.limits.max_container_items:
            target.overflow = True
            target.items = []
            return target
        target.items.extend(items)
        return target

    def _dict_add(self, target: _Dict, items: list[Any]) -> _Dict:
        if target.overflow:
            return target
        if len(target.items) + len(items) // 2 > self.limits.max_container_items:
            target.overflow = True
            target.items = []
            return target
        it = iter(items)
        target.items.extend(zip(it, it, strict=True))
        return target

    def _set_add(self, target: _Set, items: list[Any]) -> _Set:
        if target.overflow:
            return target
        if len(target.items) + len(items) > self.limits.max_container_items:
            target.overflow = True
            target.items = []
            return target
        target.items.extend(items)
        return target

    def fold_bounded(self, v: Any, budget: int) -> object:
        """:meth:`fold` visiting at most ``budget`` items in all (shared memo references count
        each time they are reached, so a value that nests one list in itself many times folds
        in bounded time); past the budget the whole value is OPAQUE."""
        self.fold_budget = budget
        try:
            out = self.fold(v, 0)
        except _FoldBudget:
            out = OPAQUE
        # the scan's own work counts in the budget (past it, callers stop folding)
        self.work += budget - self.fold_budget if self.fold_budget > 0 else budget
        if self.work > self.work_budget:
            self.charge(0)
        return out

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
            if depth > 1:
                return self.fold_shared(v, depth)
            # levels 0 and 1 (an argument tuple and its shapes) are walked once per call of
            # fold_bounded, which charges what it spends to the work budget
            self._spend(len(v))
            plain = _PLAIN
            return tuple(
                [x if x is None or type(x) in plain else self.fold(x, depth + 1) for x in v]
            )
        if t is _List:
            self.fold_impure += 1
            if v.overflow:
                return OPAQUE
            self._spend(len(v.items))
            return [self.fold(x, depth + 1) for x in v.items]
        if t is _Dict:
            self.fold_impure += 1
            if v.overflow:
                return OPAQUE
            self._spend(2 * len(v.items))
            try:
                return {self.fold(k, depth + 1): self.fold(x, depth + 1) for k, x in v.items}
            except TypeError:  # unhashable folded key
                return OPAQUE
        if t is _Set:
            self.fold_impure += 1
            if v.overflow:
                return OPAQUE
            self._spend(len(v.items))
            try:
                items = [self.fold(x, depth + 1) for x in v.items]
                return frozenset(items) if v.frozen else set(items)
            except TypeError:
                return OPAQUE
        return OPAQUE

    def fold_shared(self, v: tuple[Any, ...], depth: int) -> object:
        """:meth:`fold` of a nested tuple, which the memo may share: folded once per depth,
        later visits spend what the first one spent, in O(1) (unless it holds a mutable
        container, whose content may have changed since)."""
        hit = self.fold_memo.get(id(v))
        if hit is not None and hit[0] is v and hit[1] == depth:
            self._spend(hit[3] - 1)
            return hit[2]
        before = self.fold_budget
        impure = self.fold_impure
        self._spend(len(v))
        plain = _PLAIN
        out = tuple([x if x is None or type(x) in plain else self.fold(x, depth + 1) for x in v])
        if self.fold_impure == impure and len(v) > 1:
            self.fold_memo[id(v)] = (v, depth, out, before - self.fold_budget)
        return out

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


_Walker.dispatch = dispatch_table(_Walker)


def analyze_pickle(
    data: bytes | bytearray | memoryview | mmap.mmap | PickleSource,
    *,
    start: int = 0,
    where: str = "pickle",
    limits: PickleLimits = DEFAULT_LIMITS,
    fold_value: bool = True,
    exact: bool = False,
) -> PickleAnalysis:
    """Walk one pickle stream from ``data[start:]`` through its STOP opcode, executing nothing.

    Returns what the stream would import, call and build; raises :class:`PickleError` for
    malformed, truncated or oversized input (with the globals seen so far in ``.partial``).
    With ``fold_value=False`` the top-level value is not folded (``.value`` is OPAQUE): callers
    that only need the globals save the work. With ``exact=True`` every opcode goes through
    the dispatch table of named handlers and every bound is checked at every opcode: the same
    result as the fast loop, slower (for differential tests and benchmarks).
    """
    buf: bytes | mmap.mmap
    if isinstance(data, PickleSource):
        # a remote object read by ranges (SourceBuffer) fetches the bytes the walk reads
        return data.analyze_pickle(start=start, where=where, limits=limits, fold_value=fold_value)
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
        walker = _Walker(buf, start, where, limits, fold_value, exact)
        try:
            result = walker.run()
        except PickleError as err:
            if walker.finding_counts.get(PICKLE_FRAME_AMBIGUITY):
                err.partial = _merge(err.partial, _unframed_globals(buf, start, where, limits))
            raise
        if walker.finding_counts.get(PICKLE_FRAME_AMBIGUITY):
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
