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

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ckptguard._errors import PickleError
from ckptguard._gc import gc_paused
from ckptguard._grammar import a_or_an
from ckptguard._pickle._analysis import DEFAULT_LIMITS, PickleLimits
from ckptguard._pickle._reader import (
    F64,
    HIGHEST_PROTOCOL,
    I32,
    MISSING,
    U16,
    U32,
    WALK_ERRORS,
    Reader,
    map_name,
    parse_float_line,
    parse_int_line,
    parse_long_line,
    parse_memo_line,
)

# Protocol 0-2 ``str`` bytes decode with the loader's encoding; torch.load's is UTF-8 (what a
# converted file must load as), and bytes that are not UTF-8 make it fail.
PY2_STR_ENCODING = "utf-8"


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


class _Builder(Reader):
    def __init__(self, data: Any, start: int, where: str, limits: PickleLimits) -> None:
        super().__init__(data, start, where, limits)
        self.items = 0  # container items added so far (bounded by max_stack)

    def take(self, n: int) -> bytes:
        pos, end = self.pos, self.pos + n
        if n < 0 or end > self.size:
            self.short(f"truncated: needs {n} more bytes, {self.size - pos} left")
        if n > self.limits.max_string:
            self.fail(
                f"{a_or_an(str(n))}-byte string exceeds the limit of {self.limits.max_string}"
            )
        self.pos = end
        return bytes(self.data[pos:end])

    def uint(self, width: int) -> int:
        raw = self.take(width)
        return int.from_bytes(raw, "little")

    def count(self, n: int) -> None:
        self.items += n
        if self.items > self.limits.max_stack:
            self.fail(f"more than {self.limits.max_stack} container items")

    def glob(self, module: str, name: str) -> Global:
        key = map_name(module, name) if self.proto < 3 else (module, name)
        return Global(*key)

    def put(self, idx: int) -> None:
        if idx < 0:
            self.fail("negative memo index")
        self.memo[idx] = self.top()
        if len(self.memo) > self.limits.max_memo:
            self.fail(f"more than {self.limits.max_memo} memo entries")

    def get(self, idx: int) -> None:
        if idx not in self.memo:
            self.fail(f"memo key {idx} not found")
        self.stack.append(self.memo[idx])

    def setitems(self, target: Any, items: list[Any]) -> None:
        if len(items) % 2:
            self.fail("SETITEMS with an odd number of items")
        pairs = list(zip(items[::2], items[1::2], strict=True))
        self.count(len(pairs))
        if type(target) is TDict:
            target.items.extend(pairs)
        elif type(target) is Call:
            target.dictitems.extend(pairs)
        else:
            self.fail(
                f"SETITEM(S) on {a_or_an(_kind(target))}: only dicts and built objects take items"
            )

    def appends(self, target: Any, items: list[Any]) -> None:
        self.count(len(items))
        if type(target) is TList:
            target.items.extend(items)
        elif type(target) is Call:
            target.listitems.extend(items)
        else:
            self.fail(
                f"APPEND(S) on {a_or_an(_kind(target))}: only lists and built objects take items"
            )

    def parse_line(self, parse: Callable[[bytes], Any], what: str) -> Any:
        """A text argument read exactly as CPython's C unpickler reads it."""
        try:
            return parse(self.full_line())
        except ValueError:
            self.fail(f"{what} argument is not a number CPython's unpickler reads")

    def text(self, raw: bytes, encoding: str, errors: str = "strict") -> str:
        try:
            return str(raw, encoding, errors)
        except UnicodeDecodeError as exc:
            self.fail(f"invalid {encoding} text: {exc.reason}")

    def run(self) -> Tree:
        try:
            return self._run()
        except WALK_ERRORS as exc:  # fail closed on anything the walk did not anticipate
            raise self.malformed(exc) from None

    def _run(self) -> Tree:
        """The opcode loop: frequent opcodes inline, every opcode with all checks in :meth:`_op`.

        A frequent opcode whose preconditions do not hold (truncated argument, empty stack,
        not a dict, ...) is not handled inline: it falls through to :meth:`_op`, which fails
        with the diagnosis. Bounds are checked every 1024 opcodes (sizes grow by at most one
        item per opcode); under a limit that small, every opcode takes the exact path. The
        scanner's VM (``_vm._Walker._run``) has a loop of the same shape on purpose: the two
        push different values (tree nodes here, usage-tracking symbols there), and a shared
        loop would cost both the calls that inlining saves.
        """
        limits = self.limits
        max_ops = limits.max_opcodes
        max_stack = limits.max_stack
        max_memo = limits.max_memo
        if min(max_ops, max_stack, max_memo) <= 0x3FF:
            return self._run_exact()
        max_marks = limits.max_marks
        max_string = limits.max_string
        data = self.data
        size = self.size
        memo = self.memo
        metastack = self.metastack
        u32 = U32
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
            if not ops & 0x3FF:
                self.op_pos = pos
                if ops > max_ops:
                    self.fail(f"more than {max_ops} opcodes")
                if len(stack) > max_stack:
                    self.fail(f"more than {max_stack} items on the stack")
                if len(memo) > max_memo:
                    self.fail(f"more than {max_memo} memo entries")
            if op == 0x71:  # BINPUT
                if pos + 2 <= size and stack:
                    memo[data[pos + 1]] = stack[-1]
                    pos += 2
                    continue
            elif op == 0x72:  # LONG_BINPUT
                if pos + 5 <= size and stack:
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
            elif op == 0x94 and stack:  # MEMOIZE
                memo[len(memo)] = stack[-1]
                pos += 1
                continue

            # everything else, and the frequent opcodes when their preconditions fail
            self.op_pos = pos
            self.pos = pos + 1
            self.stack = stack
            tree = self._op(op)
            if tree is not None:
                return tree
            pos = self.pos
            stack = self.stack
            size = self.size

    def _run_exact(self) -> Tree:
        """Every opcode through :meth:`_op`, every bound checked at every opcode."""
        limits = self.limits
        ops = 0
        while True:
            if self.pos == self.frame_end:
                self.leave_frame()
            if self.pos >= self.size:
                self.op_pos = self.pos
                self.fail("truncated: the stream ends before its STOP opcode")
            self.op_pos = self.pos
            op = self.data[self.pos]
            self.pos += 1
            ops += 1
            if ops > limits.max_opcodes:
                self.fail(f"more than {limits.max_opcodes} opcodes")
            if len(self.stack) > limits.max_stack:
                self.fail(f"more than {limits.max_stack} items on the stack")
            tree = self._op(op)
            if tree is not None:
                return tree

    def _op(self, op: int) -> Tree | None:
        """One opcode (its byte already read), with every check; a Tree at STOP."""
        limits = self.limits
        stack = self.stack
        if op == 0x71:  # BINPUT
            self.put(self.uint(1))
        elif op == 0x72:  # LONG_BINPUT
            self.put(self.uint(4))
        elif op == 0x70:  # PUT
            self.put(self.parse_line(parse_memo_line, "PUT"))
        elif op == 0x94:  # MEMOIZE
            self.put(len(self.memo))
        elif op == 0x68:  # BINGET
            self.get(self.uint(1))
        elif op == 0x6A:  # LONG_BINGET
            self.get(self.uint(4))
        elif op == 0x67:  # GET
            self.get(self.parse_line(parse_memo_line, "GET"))
        elif op == 0x58:  # BINUNICODE
            stack.append(self.text(self.take(self.uint(4)), "utf-8", "surrogatepass"))
        elif op == 0x8C:  # SHORT_BINUNICODE
            stack.append(self.text(self.take(self.uint(1)), "utf-8", "surrogatepass"))
        elif op == 0x8D:  # BINUNICODE8
            stack.append(self.text(self.take(self.uint(8)), "utf-8", "surrogatepass"))
        elif op == 0x55:  # SHORT_BINSTRING
            stack.append(self.text(self.take(self.uint(1)), PY2_STR_ENCODING))
        elif op == 0x54:  # BINSTRING
            (n,) = U32(self.take(4), 0)  # unsigned, as CPython reads it
            stack.append(self.text(self.take(n), PY2_STR_ENCODING))
        elif op == 0x53:  # STRING
            raw = self.line()  # quoted exactly: no whitespace around the quotes
            if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
                self.fail("STRING argument is not a quoted string")
            stack.append(self.text(codecs.escape_decode(raw[1:-1])[0], PY2_STR_ENCODING))
        elif op == 0x56:  # UNICODE
            stack.append(self.text(self.line(), "raw-unicode-escape"))
        elif op == 0x43:  # SHORT_BINBYTES
            stack.append(self.take(self.uint(1)))
        elif op == 0x42:  # BINBYTES
            stack.append(self.take(self.uint(4)))
        elif op in (0x8E, 0x96):  # BINBYTES8, BYTEARRAY8 (a bytearray is data like bytes)
            stack.append(self.take(self.uint(8)))
        elif op == 0x4B:  # BININT1
            stack.append(self.uint(1))
        elif op == 0x4D:  # BININT2
            stack.append(U16(self.take(2), 0)[0])
        elif op == 0x4A:  # BININT
            stack.append(I32(self.take(4), 0)[0])
        elif op == 0x49:  # INT
            stack.append(self.parse_line(parse_int_line, "INT"))
        elif op == 0x4C:  # LONG
            stack.append(self.parse_line(parse_long_line, "LONG"))
        elif op == 0x8A:  # LONG1
            stack.append(int.from_bytes(self.take(self.uint(1)), "little", signed=True))
        elif op == 0x8B:  # LONG4
            (n,) = I32(self.take(4), 0)
            if n < 0 or n > limits.max_const_len:
                self.fail(f"LONG4 of {n} bytes")
            stack.append(int.from_bytes(self.take(n), "little", signed=True))
        elif op == 0x47:  # BINFLOAT
            stack.append(F64(self.take(8), 0)[0])
        elif op == 0x46:  # FLOAT
            stack.append(self.parse_line(parse_float_line, "FLOAT"))
        elif op == 0x4E:  # NONE
            stack.append(None)
        elif op == 0x88:  # NEWTRUE
            stack.append(True)
        elif op == 0x89:  # NEWFALSE
            stack.append(False)
        elif op == 0x28:  # MARK
            if len(self.metastack) >= limits.max_marks:
                self.fail(f"more than {limits.max_marks} nested MARKs")
            self.metastack.append(stack)
            self.stack = []
        elif op == 0x29:  # EMPTY_TUPLE
            stack.append(TTuple())
        elif op == 0x85:  # TUPLE1
            stack.append(TTuple((self.pop(),)))
        elif op == 0x86:  # TUPLE2
            b = self.pop()
            stack.append(TTuple((self.pop(), b)))
        elif op == 0x87:  # TUPLE3
            c = self.pop()
            b = self.pop()
            stack.append(TTuple((self.pop(), b, c)))
        elif op == 0x74:  # TUPLE
            items = self.pop_mark()
            self.count(len(items))
            self.stack.append(TTuple(tuple(items)))
        elif op == 0x5D:  # EMPTY_LIST
            stack.append(TList())
        elif op == 0x6C:  # LIST
            items = self.pop_mark()
            self.count(len(items))
            self.stack.append(TList(items))
        elif op == 0x7D:  # EMPTY_DICT
            stack.append(TDict())
        elif op == 0x64:  # DICT
            items = self.pop_mark()
            d = TDict()
            self.setitems(d, items)
            self.stack.append(d)
        elif op == 0x8F:  # EMPTY_SET
            stack.append(TSet())
        elif op == 0x91:  # FROZENSET
            items = self.pop_mark()
            self.count(len(items))
            self.stack.append(TSet(items, frozen=True))
        elif op == 0x90:  # ADDITEMS
            items = self.pop_mark()
            target = self.top()
            if type(target) is not TSet or target.frozen:
                self.fail(f"ADDITEMS on {a_or_an(_kind(target))}")
            self.count(len(items))
            target.items.extend(items)
        elif op == 0x73:  # SETITEM
            v = self.pop()
            k = self.pop()
            self.setitems(self.top(), [k, v])
        elif op == 0x75:  # SETITEMS
            items = self.pop_mark()
            self.setitems(self.top(), items)
        elif op == 0x61:  # APPEND
            v = self.pop()
            self.appends(self.top(), [v])
        elif op == 0x65:  # APPENDS
            items = self.pop_mark()
            self.appends(self.top(), items)
        elif op == 0x63:  # GLOBAL
            module = self.text_name()
            stack.append(self.glob(module, self.text_name()))
        elif op == 0x93:  # STACK_GLOBAL
            name = self.pop()
            module = self.pop()
            if type(module) is not str or type(name) is not str:
                self.fail("STACK_GLOBAL operands are not literal strings")
            self.stack.append(self.glob(module, name))
        elif op == 0x52:  # REDUCE
            args = self.pop()
            func = self.pop()
            self.stack.append(Call(func, args, op="REDUCE"))
        elif op == 0x81:  # NEWOBJ
            args = self.pop()
            cls = self.pop()
            self.stack.append(Call(cls, args, op="NEWOBJ"))
        elif op == 0x92:  # NEWOBJ_EX
            kwargs = self.pop()
            args = self.pop()
            cls = self.pop()
            self.stack.append(Call(cls, args, kwargs, op="NEWOBJ_EX"))
        elif op == 0x69:  # INST
            module = self.text_name("ascii")
            g = self.glob(module, self.text_name("ascii"))
            items = self.pop_mark()
            self.stack.append(Call(g, TTuple(tuple(items)), op="INST"))
        elif op == 0x6F:  # OBJ
            items = self.pop_mark()
            if not items:
                self.fail("OBJ without a class")
            self.stack.append(Call(items[0], TTuple(tuple(items[1:])), op="OBJ"))
        elif op == 0x62:  # BUILD
            state = self.pop()
            target = self.top()
            if type(target) is not Call or target.has_state:
                self.fail(
                    f"BUILD on {a_or_an(_kind(target))}: only a freshly built object takes state"
                )
            target.state, target.has_state = state, True
        elif op == 0x51:  # BINPERSID
            self.stack.append(PersId(self.pop()))
        elif op == 0x50:  # PERSID
            stack.append(PersId(self.text(self.line(), "ascii")))
        elif op == 0x30:  # POP
            if stack:
                stack.pop()
            else:
                self.pop_mark()
        elif op == 0x31:  # POP_MARK
            self.pop_mark()
        elif op == 0x32:  # DUP
            stack.append(self.top())
        elif op == 0x80:  # PROTO
            proto = self.uint(1)
            if proto > HIGHEST_PROTOCOL:
                self.fail(f"unsupported pickle protocol {proto}")
            self.proto = proto
            self.max_proto = max(self.max_proto, proto)
        elif op == 0x95:  # FRAME
            n = self.uint(8)
            if n > self.data_end - self.pos:
                self.fail(f"truncated: {a_or_an(str(n))}-byte frame exceeds the data")
            problem = self.start_frame(n)
            if problem is not None:
                self.fail(problem)
        elif op == 0x2E:  # STOP
            root = self.pop()
            problem = self.stop_problem()
            if problem is not None:
                self.fail(problem)
            return Tree(root=root, end=self.pos, protocol=self.max_proto)
        elif op in (0x82, 0x83, 0x84):
            self.fail("EXT opcodes load globals from the process's copyreg registry")
        elif op in (0x97, 0x98):
            self.fail("protocol 5 out-of-band buffers: the data is not in the file")
        else:
            self.fail(f"invalid opcode 0x{op:02x}")
        return None


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
) -> Tree:
    """Turn the pickle stream at ``data[start:]`` into a :class:`Tree`, executing nothing."""
    if start < 0 or start > len(data):
        raise PickleError(f"{where}: start offset {start} is outside the data", offset=start)
    with gc_paused():
        return _Builder(data, start, where, limits).run()
