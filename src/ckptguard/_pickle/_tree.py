"""A symbolic pickle-to-tree builder: the object graph a pickle describes, as plain nodes.

Nothing is imported, called or evaluated. Constants become Python values (``None``, ``bool``,
``int``, ``float``, ``str``, ``bytes``); containers become :class:`TList`, :class:`TTuple`,
:class:`TDict` and :class:`TSet` nodes (the same node wherever the memo shares it, so sharing
and cycles are kept); a global is a :class:`Global`; every call (REDUCE, NEWOBJ, NEWOBJ_EX,
INST, OBJ) is a :class:`Call` that also collects what BUILD, SETITEM(S) and APPEND(S) later do
to its result; a persistent id is a :class:`PersId`. Malformed, truncated or oversized input
raises :class:`PickleError` (fail closed), as do opcodes whose meaning depends on the loading
process (EXT*, out-of-band buffers) and STACK_GLOBAL operands that are not literal strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckptguard._errors import PickleError
from ckptguard._gc import gc_paused
from ckptguard._grammar import a_or_an
from ckptguard._pickle._analysis import DEFAULT_LIMITS, PickleLimits
from ckptguard._pickle._reader import (
    F64,
    I32,
    MISSING,
    U32,
    WALK_ERRORS,
    Reader,
    dispatch_table,
    map_name,
)


class Py2Str:
    """A protocol 0-2 ``str`` (STRING, BINSTRING, SHORT_BINSTRING) that is not ASCII: its
    bytes, which loaders read differently (torch.load: UTF-8 text, failing on other bytes;
    ``encoding='latin1'`` (numpy.load, torch.load of Python 2 files): latin-1 text, which an
    array or numpy scalar takes back as its data bytes). ASCII ones are plain ``str``."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw


def py2_str(raw: bytes) -> str | Py2Str:
    return raw.decode("ascii") if raw.isascii() else Py2Str(raw)


@dataclass(frozen=True)
class Global:
    """A global as the real unpickler would resolve it (after ``fix_imports``)."""

    module: str
    name: str

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False)
class TList:
    items: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class TTuple:
    items: tuple[Any, ...] = ()


@dataclass(eq=False)
class TDict:
    items: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(eq=False)
class TSet:
    items: list[Any] = field(default_factory=list)
    frozen: bool = False


@dataclass(eq=False)
class Call:
    """``func(*args, **kwargs)`` and what the pickle did to the result afterwards."""

    func: Any  # usually a Global; anything else is an indirect call
    args: Any  # usually a TTuple
    kwargs: Any = None  # a TDict for NEWOBJ_EX, else None
    op: str = "REDUCE"  # REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ
    state: Any = None  # the BUILD argument (``has_state`` tells None from no BUILD)
    has_state: bool = False
    dictitems: list[tuple[Any, Any]] = field(default_factory=list)  # SETITEM(S) on the result
    listitems: list[Any] = field(default_factory=list)  # APPEND(S) on the result


@dataclass(eq=False)
class PersId:
    """A persistent id (``BINPERSID``/``PERSID``): a reference to data outside the pickle."""

    pid: Any


Node = Any  # None | bool | int | float | str | bytes | Global | TList | ... (documentation)


@dataclass(frozen=True)
class Tree:
    root: Any
    end: int  # offset just past STOP
    protocol: int


def _persistent(pid: Any) -> Any:
    """What BINPERSID leaves on the stack: a :class:`PersId`, except for torch's legacy
    ``('module', <class>, file, source)`` id (whole-model pickles), whose ``persistent_load``
    returns the class itself (the source text is only compared, never run)."""
    parts = pid.items if type(pid) is TTuple else ()
    if len(parts) >= 2 and parts[0] in ("module", b"module") and type(parts[1]) is Global:
        return parts[1]
    return PersId(pid)


class _Builder(Reader):
    """The tree builder: the shared reader's data opcodes, with tree nodes for values, and
    the semantic opcodes below (``load_<name>``, dispatched by :meth:`Reader.step`)."""

    def __init__(
        self, data: Any, start: int, where: str, limits: PickleLimits, exact: bool = False
    ) -> None:
        super().__init__(data, start, where, limits)
        self.keep_len = limits.max_string  # a tree keeps every string it accepts
        self.items = 0  # container items added so far (bounded by max_stack)
        self.exact = exact or self.exact_only()

    def count_items(self, n: int) -> None:
        self.items += n
        if self.items > self.limits.max_stack:
            self.over_limit(f"more than {self.limits.max_stack} container items")

    def py2str(self, raw: bytes | None) -> Any:
        if raw is None:  # over the bound: text() refuses it
            return self.text(raw, "utf-8")
        return py2_str(bytes(raw))

    def new_tuple(self, items: tuple[Any, ...]) -> TTuple:
        return TTuple(items)

    def glob(self, module: str, name: str) -> Global:
        key = map_name(module, name) if self.proto < 3 else (module, name)
        return Global(*key)

    def setitems(self, target: Any, items: list[Any]) -> None:
        if len(items) % 2:
            self.fail("SETITEMS with an odd number of items")
        pairs = list(zip(items[::2], items[1::2], strict=True))
        self.count_items(len(pairs))
        if type(target) is TDict:
            target.items.extend(pairs)
        elif type(target) is Call:
            target.dictitems.extend(pairs)
        else:
            self.fail(
                f"SETITEM(S) on {a_or_an(_kind(target))}: only dicts and built objects take items"
            )

    def appends(self, target: Any, items: list[Any]) -> None:
        self.count_items(len(items))
        if type(target) is TList:
            target.items.extend(items)
        elif type(target) is Call:
            target.listitems.extend(items)
        else:
            self.fail(
                f"APPEND(S) on {a_or_an(_kind(target))}: only lists and built objects take items"
            )

    def run(self) -> Tree:
        try:
            return self.run_exact() if self.exact else self._run()
        except WALK_ERRORS as exc:  # fail closed on anything the walk did not anticipate
            raise self.malformed(exc) from None

    def _run(self) -> Tree:
        """The fast opcode loop: frequent opcodes inline, every opcode with all checks in
        :meth:`Reader.step` (the exact path, :meth:`Reader.run_exact`, takes every opcode there).

        A frequent opcode whose preconditions do not hold (truncated argument, empty stack,
        not a dict, ...) is not handled inline: it falls through to :meth:`Reader.step`, which
        fails with the diagnosis. Bounds are checked every 1024 opcodes
        (:meth:`Reader.check_bounds`). The scanner's VM (``_vm._Walker._run``) has a loop of
        the same shape on purpose: the two push different values (tree nodes here,
        usage-tracking symbols there), and a shared loop would cost both the calls that
        inlining saves (2.1-2.7x here on state dicts; benchmarks/bench_walkers.py).
        """
        limits = self.limits
        max_stack = limits.max_stack
        max_memo = limits.max_memo
        max_marks = limits.max_marks
        max_string = limits.max_string
        data = self.data
        size = self.size
        memo = self.memo
        metastack = self.metastack
        u32 = U32
        i32 = I32
        persid = _persistent
        f64 = F64
        tdict = TDict
        ttuple = TTuple
        tlist = TList
        call = Call
        missing = MISSING
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
                self.check_bounds(ops)
            if op == 0x71:  # BINPUT
                if pos + 2 <= size and stack:
                    memo[data[pos + 1]] = stack[-1]
                    pos += 2
                    continue
            elif op == 0x72:  # LONG_BINPUT
                if pos + 5 <= size and stack and u32(data, pos + 1)[0] <= max_memo:
                    memo[u32(data, pos + 1)[0]] = stack[-1]
                    pos += 5
                    continue
            elif op == 0x58:  # BINUNICODE
                if pos + 5 <= size:
                    end = pos + 5 + u32(data, pos + 1)[0]
                    if end <= size and end - pos - 5 <= max_string:
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
                    if end <= size:
                        try:
                            stack.append(str(data[pos + 2 : end], "utf-8", "surrogatepass"))
                        except UnicodeDecodeError:
                            pass
                        else:
                            pos = end
                            continue
            elif op == 0x68:  # BINGET
                if pos + 2 <= size:
                    v = memo.get(data[pos + 1], missing)
                    if v is not missing:
                        stack.append(v)
                        pos += 2
                        continue
            elif op == 0x6A:  # LONG_BINGET
                if pos + 5 <= size:
                    v = memo.get(u32(data, pos + 1)[0], missing)
                    if v is not missing:
                        stack.append(v)
                        pos += 5
                        continue
            elif op == 0x4B:  # BININT1
                if pos + 2 <= size:
                    stack.append(data[pos + 1])
                    pos += 2
                    continue
            elif op == 0x47:  # BINFLOAT
                if pos + 9 <= size:
                    stack.append(f64(data, pos + 1)[0])
                    pos += 9
                    continue
            elif op == 0x28:  # MARK
                if len(metastack) < max_marks:
                    metastack.append(stack)
                    stack = self.stack = []
                    pos += 1
                    continue
            elif op == 0x75:  # SETITEMS
                if metastack and not len(stack) & 1:
                    below = metastack[-1]
                    pairs = len(stack) // 2
                    if below and type(below[-1]) is tdict and self.items + pairs <= max_stack:
                        items = stack
                        stack = self.stack = metastack.pop()
                        self.items += pairs
                        below[-1].items.extend(zip(items[::2], items[1::2], strict=True))
                        pos += 1
                        continue
            elif op == 0x7D:  # EMPTY_DICT
                stack.append(tdict())
                pos += 1
                continue
            elif op == 0x52:  # REDUCE
                if len(stack) >= 2:
                    args = stack.pop()
                    stack[-1] = call(stack[-1], args, op="REDUCE")
                    pos += 1
                    continue
            elif op == 0x4D:  # BININT2 (tensor sizes and strides)
                if pos + 3 <= size:
                    stack.append(data[pos + 1] | data[pos + 2] << 8)
                    pos += 3
                    continue
            elif op == 0x51:  # BINPERSID (one per storage)
                if stack:
                    stack[-1] = persid(stack[-1])
                    pos += 1
                    continue
            elif op == 0x88:  # NEWTRUE
                stack.append(True)
                pos += 1
                continue
            elif op == 0x89:  # NEWFALSE
                stack.append(False)
                pos += 1
                continue
            elif op == 0x4E:  # NONE
                stack.append(None)
                pos += 1
                continue
            elif op == 0x86:  # TUPLE2
                if len(stack) >= 2:
                    b = stack.pop()
                    stack[-1] = ttuple((stack[-1], b))
                    pos += 1
                    continue
            elif op == 0x85:  # TUPLE1
                if stack:
                    stack[-1] = ttuple((stack[-1],))
                    pos += 1
                    continue
            elif op == 0x29:  # EMPTY_TUPLE
                stack.append(ttuple())
                pos += 1
                continue
            elif op == 0x74:  # TUPLE
                if metastack and self.items + len(stack) <= max_stack:
                    items = stack
                    stack = self.stack = metastack.pop()
                    self.items += len(items)
                    stack.append(ttuple(tuple(items)))
                    pos += 1
                    continue
            elif op == 0x5D:  # EMPTY_LIST
                stack.append(tlist())
                pos += 1
                continue
            elif op == 0x4A:  # BININT
                if pos + 5 <= size:
                    stack.append(i32(data, pos + 1)[0])
                    pos += 5
                    continue
            elif op == 0x94 and stack:  # MEMOIZE
                memo[len(memo)] = stack[-1]
                pos += 1
                continue

            # everything else, and the frequent opcodes when their preconditions fail
            self.op_pos = pos
            self.pos = pos + 1
            self.stack = stack
            self.opcodes = ops
            tree = self.step(op)
            if tree is not None:
                return tree  # type: ignore[no-any-return]
            pos = self.pos
            stack = self.stack
            size = self.size

    # ----------------------------------------------------------------- semantic opcodes
    def finish(self, value: Any) -> Tree:
        return Tree(root=value, end=self.pos, protocol=self.max_proto)

    def load_empty_list(self) -> None:
        self.push(TList())

    def load_list(self) -> None:
        items = self.pop_mark()
        self.count_items(len(items))
        self.push(TList(items))

    def load_empty_dict(self) -> None:
        self.push(TDict())

    def load_dict(self) -> None:
        items = self.pop_mark()
        d = TDict()
        self.setitems(d, items)
        self.push(d)

    def load_empty_set(self) -> None:
        self.push(TSet())

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self.count_items(len(items))
        self.push(TSet(items, frozen=True))

    def load_additems(self) -> None:
        items = self.pop_mark()
        target = self.top()
        if type(target) is not TSet or target.frozen:
            self.fail(f"ADDITEMS on {a_or_an(_kind(target))}")
        self.count_items(len(items))
        target.items.extend(items)

    def load_setitem(self) -> None:
        key, value = self.pop_args(2)
        self.setitems(self.top(), [key, value])

    def load_setitems(self) -> None:
        items = self.pop_mark()
        self.setitems(self.top(), items)

    def load_append(self) -> None:
        value = self.pop()
        self.appends(self.top(), [value])

    def load_appends(self) -> None:
        items = self.pop_mark()
        self.appends(self.top(), items)

    def load_global(self) -> None:
        self.push(self.glob(*self.global_operands("utf-8")))

    def load_stack_global(self) -> None:
        module, name = self.pop_args(2)
        if type(module) is not str or type(name) is not str:
            self.fail("STACK_GLOBAL operands are not literal strings")
        self.push(self.glob(module, name))

    def load_reduce(self) -> None:
        func, args = self.pop_args(2)
        self.push(Call(func, args, op="REDUCE"))

    def load_newobj(self) -> None:
        cls, args = self.pop_args(2)
        self.push(Call(cls, args, op="NEWOBJ"))

    def load_newobj_ex(self) -> None:
        cls, args, kwargs = self.pop_args(3)
        self.push(Call(cls, args, kwargs, op="NEWOBJ_EX"))

    def load_inst(self) -> None:
        g = self.glob(*self.global_operands("ascii"))
        items = self.pop_mark()
        self.push(Call(g, TTuple(tuple(items)), op="INST"))

    def load_obj(self) -> None:
        items = self.pop_mark()
        if not items:
            self.fail("OBJ without a class")
        self.push(Call(items[0], TTuple(tuple(items[1:])), op="OBJ"))

    def load_build(self) -> None:
        state = self.pop()
        target = self.top()
        if type(target) is not Call or target.has_state:
            self.fail(f"BUILD on {a_or_an(_kind(target))}: only a freshly built object takes state")
        target.state, target.has_state = state, True

    def load_binpersid(self) -> None:
        self.push(_persistent(self.pop()))

    def load_persid(self) -> None:
        self.push(PersId(self.text(self.line(), "ascii")))

    def extension(self) -> None:
        self.fail("EXT opcodes load globals from the process's copyreg registry")

    load_ext1 = load_ext2 = load_ext4 = extension

    def buffer(self) -> None:
        self.fail("protocol 5 out-of-band buffers: the data is not in the file")

    load_next_buffer = load_readonly_buffer = buffer


_Builder.dispatch = dispatch_table(_Builder)


def _kind(v: Any) -> str:
    if type(v) is Global:
        return f"global {v.qualified_name}"
    return type(v).__name__.lstrip("T").lower()


def build_tree(
    data: bytes | memoryview | Any,
    *,
    start: int = 0,
    where: str = "pickle",
    limits: PickleLimits = DEFAULT_LIMITS,
    exact: bool = False,
) -> Tree:
    """Turn the pickle stream at ``data[start:]`` into a :class:`Tree`, executing nothing.
    With ``exact=True`` every opcode goes through the dispatch table of named handlers (the
    same tree, slower: for differential tests and benchmarks)."""
    if start < 0 or start > len(data):
        raise PickleError(f"{where}: start offset {start} is outside the data", offset=start)
    with gc_paused():
        return _Builder(data, start, where, limits, exact).run()
