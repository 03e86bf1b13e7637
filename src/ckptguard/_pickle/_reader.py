"""What both pickle walkers share: the scanner's symbolic unpickler (``_vm``) and convert's
tree builder (``_tree``).

Each keeps its own hand-inlined fast loop for the frequent opcodes, because they give the
opcodes different meanings (usage analysis versus an object graph); this module is everything
else they share: the walk's state, one operand decoder (layouts from :mod:`_opcodes`), one
bound-check rule, the data opcodes as ``load_<name>`` handlers, the dispatch table (``step``),
the exact path (``run_exact``), the stack and its MARKs, CPython's protocol < 3
``fix_imports`` renames, and turning any failure into a :class:`PickleError` that names the
stream and the byte offset (fail closed). It also holds :func:`unframed_stream`, the bytes the
C unpickler reads from a file object.
"""

from __future__ import annotations

import codecs
import math
import re
import struct

from ckptguard._errors import PickleError
from ckptguard._grammar import a_or_an
from ckptguard._pickle._analysis import PickleLimits
from ckptguard._pickle._opcodes import (
    COUNTED,
    EMPTY_TUPLE,
    FIXED,
    FLOAT,
    FRAME,
    INT,
    LINES,
    LONG,
    NAMES,
    NEWFALSE,
    NEWTRUE,
    NO_ARGS,
    NONE,
    STOP,
    TUPLE1,
    TUPLE2,
    TUPLE3,
)

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ClassVar, NoReturn

HIGHEST_PROTOCOL = 5
U16 = struct.Struct("<H").unpack_from
U32 = struct.Struct("<I").unpack_from
I32 = struct.Struct("<i").unpack_from
U64 = struct.Struct("<Q").unpack_from
F64 = struct.Struct(">d").unpack_from

# What a walk over bytes nobody vetted may raise besides Fail: any of them means the stream
# is malformed in a way the walk did not anticipate, which is an error, never a crash.
MALFORMED = (
    ValueError,
    OverflowError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    MemoryError,
    RecursionError,
)


MISSING = object()  # "no such memo entry", for memo.get() in the inlined opcode loops


class Fail(Exception):
    """Internal: the stream is malformed at the current opcode."""


class OverLimit(Fail):
    """Internal: the stream exceeds a bound of ckptguard's (:class:`PickleLimits`) where
    CPython's unpickler reads on: proof of nothing about where ``pickle.load`` fails."""


class Short(Fail):
    """Internal: an argument runs past the end of the data or of the current FRAME.

    Inside a FRAME this is an ambiguity, not (only) a truncation: CPython's C unpickler reads
    a frame into its buffer in one piece, and from a file object without ``peek`` (io.BytesIO,
    torch's zip records and legacy files) it drops what is left of that buffer when an opcode
    needs more, so it reads other bytes than from ``bytes`` (``pickle.loads``)."""


WALK_ERRORS = (Fail, *MALFORMED)  # what Reader.malformed turns into a PickleError


def map_name(module: str, name: str) -> tuple[str, str]:
    """CPython's protocol < 3 fix_imports renames (Python 2 names to Python 3 names)."""
    import _compat_pickle  # noqa: PLC0415 - only protocol 0-2 pickles need it (start-up time)

    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


# C's isspace() in the "C" locale: what strtol() skips before a number.
_C_SPACE = frozenset(b" \t\n\v\f\r")
_DIGITS = {c: i for i, c in enumerate(b"0123456789abcdef")} | {
    c: i + 10 for i, c in enumerate(b"ABCDEF")
}
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1  # C long on the LP64 platforms torch runs on
_FLOAT_TEXT = re.compile(
    rb"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
    re.IGNORECASE,
)


def c_string(line: bytes) -> bytes:
    """What C code sees of a line the unpickler copied (newline kept, NUL-terminated): the bytes
    up to the first NUL."""
    nul = line.find(b"\0")
    return line if nul < 0 else line[:nul]


def _strtol(s: bytes) -> int | None:
    """glibc ``strtol(s, &end, 0)`` as ``load_int`` uses it: the value, or None when it fails
    (out of range, or ``end`` not at the newline or the terminating NUL)."""
    i, n = 0, len(s)
    while i < n and s[i] in _C_SPACE:
        i += 1
    neg = i < n and s[i] == 0x2D
    if i < n and s[i] in b"+-":
        i += 1
    base = 10
    if s[i : i + 1] == b"0":
        base = 8
        if s[i + 1 : i + 2] in (b"x", b"X") and _DIGITS.get(s[i + 2] if i + 2 < n else -1, 99) < 16:
            base = 16
            i += 2
    first = i
    value = 0
    while i < n and _DIGITS.get(s[i], 99) < base:
        value = value * base + _DIGITS[s[i]]
        i += 1
    if i == first:  # no digits: strtol sets end to the start of the string
        return 0 if not s else None  # (an empty C string: end is at its NUL)
    if i < n and s[i] != 0x0A:
        return None
    value = -value if neg else value
    return value if _LONG_MIN <= value <= _LONG_MAX else None


def parse_int_line(line: bytes) -> int:
    """The INT opcode's argument (``line`` with its newline) exactly as CPython's C unpickler
    reads it: ``strtol(s, &end, 0)`` (so ``010`` is 8), else ``int(s, 0)`` on the C string;
    ``00``/``01`` (any 2-character argument worth 0 or 1) are False/True. Raises ValueError."""
    if len(line) < 2:
        raise ValueError("INT argument is empty")
    s = c_string(line)
    x = _strtol(s)
    if x is None:
        return int(s, 0)
    if len(line) == 3 and x in (0, 1):
        return bool(x)
    return x


def parse_long_line(line: bytes) -> int:
    """The LONG opcode's argument (with its newline): an ``L`` before the newline is cut, then
    ``int(s, 0)`` on the C string. Raises ValueError."""
    if len(line) < 2:
        raise ValueError("LONG argument is empty")
    if line[-2] == 0x4C:  # "L"
        line = line[:-2]
    return int(c_string(line), 0)


def parse_float_line(line: bytes) -> float:
    """The FLOAT opcode's argument (with its newline) as ``PyOS_string_to_double``: no spaces,
    no underscores, overflow is an error. Raises ValueError."""
    if len(line) < 2:
        raise ValueError("FLOAT argument is empty")
    s = c_string(line)
    text = s[:-1] if s.endswith(b"\n") else s
    if not _FLOAT_TEXT.fullmatch(text):
        raise ValueError("FLOAT argument is not a number")
    value = float(text)
    if math.isinf(value) and b"inf" not in text.lower():
        raise ValueError("FLOAT argument overflows")
    return value


def parse_memo_line(line: bytes) -> int:
    """A PUT/GET argument (with its newline): ``int(s, 10)`` on the C string."""
    if len(line) < 2:
        raise ValueError("memo key is empty")
    return int(c_string(line), 10)


class Reader:
    """One walk over one pickle stream starting at ``start`` in ``data``: the state, the
    operand decoding and the data opcodes both walkers share.

    ``size`` is where the current read must stop: the end of the data, or the end of the
    FRAME being read (every opcode of a frame must lie wholly inside it; see :class:`Short`).

    **One operand decoder**: every argument is read by :meth:`need` (the one bound check
    against ``size``), :meth:`uint`, :meth:`counted` (a counted string: truncation, then the
    ``max_string`` bound, then ``keep_len``), :meth:`line` and the ``parse_*_line`` functions.
    **One bound-check rule**: :meth:`check_bounds` (opcodes, stack, memo), which the fast loops
    call every 1024 opcodes and :meth:`run_exact` at every opcode.

    The data opcodes (numbers, strings, bytes, tuples, the memo, MARK, POP, DUP, PROTO, FRAME,
    STOP) are the ``load_<name>`` handlers below, written once; the values they push are made
    by the hooks (:meth:`new_tuple`, :meth:`py2str`, :meth:`opaque`, ...) a walker overrides.
    Each walker adds the handlers of its semantic opcodes (globals, calls, BUILD, container
    items, persistent ids, EXT, buffers) and :meth:`finish`; :func:`dispatch_table` collects
    them into the table the slow path (:meth:`step`) dispatches on, as CPython's ``pickle.py``
    does.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], Any]]] = {}  # dispatch_table(each walker)

    def __init__(self, data: Any, start: int, where: str, limits: PickleLimits) -> None:
        self.data = data
        self.pos = start
        self.data_end = len(data)
        self.size = self.data_end
        self.frame_end = -1  # end of the FRAME being read, -1 outside frames
        self.where = where
        self.limits = limits
        self.keep_len = limits.max_const_len  # longer str/bytes arguments become opaque()
        self.proto = 0
        self.max_proto = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.op_pos = start  # offset of the opcode being walked (for messages)
        self.op = 0  # the opcode being walked by step() (handlers shared by opcodes read it)
        self.opcodes = 0  # opcodes walked so far (kept up to date before each slow step)

    # ----------------------------------------------------------------- failures
    def fail(self, problem: str) -> NoReturn:
        raise Fail(problem)

    def over_limit(self, problem: str) -> NoReturn:
        raise OverLimit(problem)

    def short(self, problem: str) -> NoReturn:
        """An argument runs past ``size``: truncated data, or an opcode cut by a FRAME's end."""
        if self.frame_end >= 0:
            raise Short(self.straddle_problem())
        raise Short(problem)

    def straddle_problem(self) -> str:
        return (
            f"the opcode at byte {self.op_pos} runs past the end of its FRAME (byte "
            f"{self.frame_end}): CPython's unpickler reads other bytes from a file object "
            "(io.BytesIO, torch.load) than from bytes (pickle.loads); every FRAME must hold "
            "whole opcodes"
        )

    def error(self, problem: str) -> PickleError:
        return PickleError(
            f"{self.where}: {problem} (opcode at byte {self.op_pos})",
            offset=self.op_pos,
            hint="the file is damaged or was not written by a pickler; re-download or re-export it",
        )

    def malformed(self, exc: Exception) -> PickleError:
        """The error for a failure of the walk (``Fail``, or one of ``MALFORMED``)."""
        if isinstance(exc, Fail):
            err = self.error(str(exc))
            err.over_limit = isinstance(exc, OverLimit)
            return err
        return self.error(f"malformed pickle ({type(exc).__name__}: {exc})")

    # ----------------------------------------------------------------- the bound-check rule
    def exact_only(self) -> bool:
        """Whether a limit is too small for the fast loops, which check bounds every 1024
        opcodes (sizes grow by at most one item per opcode): then every opcode goes through
        :meth:`run_exact`."""
        limits = self.limits
        return min(limits.max_opcodes, limits.max_stack, limits.max_memo) <= BOUNDS_PERIOD

    def check_bounds(self, ops: int) -> None:
        """The one bound check of a walk, after ``ops`` opcodes (``op_pos`` set)."""
        limits = self.limits
        if ops > limits.max_opcodes:
            self.over_limit(f"more than {limits.max_opcodes} opcodes")
        if len(self.stack) > limits.max_stack:
            self.over_limit(f"more than {limits.max_stack} items on the stack")
        if len(self.memo) > limits.max_memo:
            self.over_limit(f"more than {limits.max_memo} memo entries")

    # ----------------------------------------------------------------- the slow path
    def step(self, op: int) -> Any:
        """One opcode through the dispatch table (``op_pos`` at it, ``pos`` just past it):
        the walk's result at STOP, else None. An opcode that runs past the end of its FRAME is
        a :meth:`frame_problem`; a walker that reads on re-reads it as ``pickle.loads`` does."""
        handler = self.dispatch.get(op)
        if handler is None:
            self.fail(f"invalid opcode 0x{op:02x}")
        self.op = op
        start = self.pos
        try:
            return handler(self)
        except Short:
            if self.frame_end < 0:
                raise
            self.frame_problem(self.straddle_problem())
            self.leave_frame()
            self.pos = start
            return handler(self)

    def run_exact(self) -> Any:
        """Every opcode through :meth:`step`, every bound checked at every opcode."""
        ops = 0
        while True:
            pos = self.pos
            self.op_pos = pos
            if pos == self.frame_end:
                self.leave_frame()
            if pos >= self.size:
                self.fail("truncated: the stream ends before its STOP opcode")
            ops += 1
            self.check_bounds(ops)
            self.pos = pos + 1
            self.opcodes = ops
            result = self.step(self.data[pos])
            if result is not None:
                return result

    # ----------------------------------------------------------------- frames
    def start_frame(self, n: int) -> str | None:
        """A FRAME of ``n`` bytes starts at ``pos``; returns the problem if it is ambiguous."""
        problem = None
        if self.frame_end >= 0 and self.op_pos < self.frame_end:
            problem = (
                f"a FRAME at byte {self.op_pos} starts inside the frame that ends at byte "
                f"{self.frame_end}: nested frames are read differently by CPython's unpickler "
                "from a file object and from bytes"
            )
        self.frame_end = self.pos + n
        self.size = self.frame_end
        return problem

    def leave_frame(self) -> None:
        self.frame_end = -1
        self.size = self.data_end

    def stop_problem(self) -> str | None:
        """STOP was read (``pos`` is just past it): the problem if it leaves data in its frame."""
        if self.frame_end > self.pos:
            return (
                f"STOP at byte {self.op_pos} is followed by {self.frame_end - self.pos} more "
                f"bytes of its FRAME (ending at byte {self.frame_end}): CPython's unpickler "
                "skips them when reading from a file object, so the next read starts elsewhere"
            )
        return None

    # ----------------------------------------------------------------- operand decoding
    def need(self, n: int, what: str) -> int:
        """The one bound check of an argument: ``n`` more bytes at ``pos``; returns ``pos``
        and moves past them."""
        pos = self.pos
        if n < 0 or pos + n > self.size:
            self.short(f"truncated: needs {n} more bytes for {what}, {self.size - pos} left")
        self.pos = pos + n
        return pos

    def uint(self, width: int) -> int:
        """An unsigned little-endian integer of ``width`` bytes (lengths, memo keys, codes)."""
        pos = self.need(width, f"{a_or_an(str(width))}-byte argument")
        return int.from_bytes(self.data[pos : pos + width], "little")

    def fixed(self) -> int:
        """The current opcode's fixed-width unsigned argument (its width from ``FIXED``)."""
        return self.uint(FIXED[self.op])

    def count(self) -> int:
        """The current opcode's count (its width and sign from ``COUNTED``)."""
        width, signed, _ = COUNTED[self.op]
        pos = self.need(width, "a length")
        return int.from_bytes(self.data[pos : pos + width], "little", signed=signed)

    def counted(self, n: int, keep: int) -> bytes | None:
        """The ``n`` bytes of a counted argument (a string, bytes, a LONG4): truncation first
        (the real unpickler fails too), then ckptguard's ``max_string`` bound (it reads on),
        then None for an argument longer than ``keep``, skipped, not copied (a huge string
        costs no memory)."""
        pos = self.need(n, "a counted argument")
        if n > self.limits.max_string:
            self.over_limit(
                f"{a_or_an(str(n))}-byte string exceeds the limit of {self.limits.max_string}"
            )
        return None if n > keep else bytes(self.data[pos : pos + n])

    def line(self) -> bytes:
        """A newline-terminated text argument, without its newline."""
        pos = self.pos
        end = self.data.find(b"\n", pos, self.size)
        if end < 0:
            self.short("truncated: a text argument has no terminating newline")
        self.pos = end + 1
        return bytes(self.data[pos:end])

    def full_line(self) -> bytes:
        """A newline-terminated text argument, with its newline (as C's readline gives it)."""
        return self.line() + b"\n"

    def parse_line(self, parse: Callable[[bytes], Any], what: str) -> Any:
        """A text argument read exactly as CPython's C unpickler reads it."""
        try:
            return parse(self.full_line())
        except ValueError:
            self.fail(f"{what} argument is not a number CPython's unpickler reads")

    def text_name(self, encoding: str = "utf-8") -> str:
        """A GLOBAL (UTF-8) or INST (ASCII) operand: a non-empty newline-terminated name."""
        raw = self.line()
        if not raw:
            self.fail("a GLOBAL/INST name is empty: the real unpickler fails")
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            self.fail(f"a GLOBAL/INST name is not valid {encoding}: the real unpickler fails")

    def global_operands(self, encoding: str) -> tuple[str, str]:
        """GLOBAL's (UTF-8) or INST's (ASCII) module and name."""
        module = self.text_name(encoding)
        return module, self.text_name(encoding)

    def text(self, raw: bytes | None, encoding: str, errors: str = "strict") -> Any:
        """A str argument decoded as the unpickler decodes it (an opaque value past
        ``keep_len``)."""
        if raw is None or len(raw) > self.keep_len:
            return self.opaque("str")
        try:
            return str(raw, encoding, errors)
        except UnicodeDecodeError as exc:
            self.fail(f"invalid {encoding} text: {exc.reason}")

    def ext_code(self) -> int:
        """EXT1/EXT2/EXT4's registry code: unsigned for EXT1/EXT2, signed for EXT4 (C's
        calc_binint extends BININT4's sign bit); a code <= 0 makes the unpickler fail."""
        code = self.fixed()
        if code >= 1 << 31:
            code -= 1 << 32
        if code <= 0:
            self.fail("EXT code must be positive")
        return code

    # ----------------------------------------------------------------- the stack
    def pop(self) -> Any:
        stack = self.stack
        if not stack:
            self.fail("stack underflow")
        return stack.pop()

    def pop_args(self, n: int) -> list[Any]:
        """The top ``n`` values, removed, in the order they were pushed."""
        stack = self.stack
        if len(stack) < n:
            self.fail("stack underflow")
        if not n:
            return []  # (stack[-0:] is all of it)
        args = stack[-n:]
        del stack[-n:]
        return args

    def top(self) -> Any:
        if not self.stack:
            self.fail("stack underflow")
        return self.stack[-1]

    def pop_mark(self) -> list[Any]:
        if not self.metastack:
            self.fail("an opcode needs a MARK but none is open")
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def push(self, v: Any) -> None:
        self.stack.append(v)

    # ----------------------------------------------------------------- value hooks
    def opaque(self, kind: str) -> Any:
        """The value of a ``kind`` constant too long to keep; by default a failure."""
        self.fail(f"{a_or_an(kind)} argument longer than {self.limits.max_const_len} bytes")

    def py2str(self, raw: bytes | None) -> Any:
        """A protocol 0-2 ``str`` (STRING, BINSTRING, SHORT_BINSTRING) from its bytes, decoded
        with the loader's encoding: UTF-8 (torch.load's) by default."""
        return self.text(raw, "utf-8")

    def new_tuple(self, items: tuple[Any, ...]) -> Any:
        return items

    def count_items(self, n: int) -> None:
        """``n`` items go into a container built from a MARK (a walker may bound them)."""

    def memoized(self, v: Any) -> None:
        """``v`` was stored in the memo."""

    def reused(self, v: Any) -> Any:
        """``v`` is pushed again (GET, DUP); returns it."""
        return v

    def discard(self, values: Any) -> None:
        """``values`` are thrown away (POP, POP_MARK, left on the stack at STOP)."""

    def frame_problem(self, problem: str) -> None:
        """A FRAME that does not hold exactly whole opcodes; by default a failure."""
        self.fail(problem)

    def finish(self, value: Any) -> Any:
        """The walk's result at STOP, from the pickle's value."""
        raise NotImplementedError

    # ----------------------------------------------------------------- data opcodes
    def load_proto(self) -> None:
        proto = self.fixed()
        if proto > HIGHEST_PROTOCOL:
            self.fail(f"unsupported pickle protocol {proto}")
        self.proto = proto
        self.max_proto = max(self.max_proto, proto)

    def load_frame(self) -> None:
        n = self.fixed()
        if n > self.data_end - self.pos:
            self.fail(f"truncated: {a_or_an(str(n))}-byte frame exceeds the data")
        problem = self.start_frame(n)
        if problem is not None:
            self.frame_problem(problem)

    def load_stop(self) -> Any:
        value = self.pop()
        problem = self.stop_problem()
        if problem is not None:
            self.frame_problem(problem)
        return self.finish(value)

    def load_mark(self) -> None:
        if len(self.metastack) >= self.limits.max_marks:
            self.over_limit(f"more than {self.limits.max_marks} nested MARKs")
        self.metastack.append(self.stack)
        self.stack = []

    def load_pop(self) -> None:
        if self.stack:
            self.discard((self.stack.pop(),))
        else:
            self.discard(self.pop_mark())

    def load_pop_mark(self) -> None:
        self.discard(self.pop_mark())

    def load_dup(self) -> None:
        self.push(self.reused(self.top()))

    # the memo: CPython's C unpickler allocates a memo table up to the highest index
    def memo_put(self, idx: int) -> None:
        limit = self.limits.max_memo
        if idx < 0:
            self.fail("negative memo index")
        if idx > limit:
            self.over_limit(f"memo index {idx} exceeds the limit of {limit}")
        v = self.top()
        self.memoized(v)
        self.memo[idx] = v
        if len(self.memo) > limit:
            self.over_limit(f"more than {limit} memo entries")

    def memo_get(self, idx: int) -> None:
        v = self.memo.get(idx, MISSING)
        if v is MISSING:
            self.fail(f"memo key {idx} not found")
        self.push(self.reused(v))

    def load_binput(self) -> None:  # BINPUT, LONG_BINPUT: a 1- or 4-byte key
        self.memo_put(self.fixed())

    def load_put(self) -> None:
        self.memo_put(self.parse_line(parse_memo_line, "PUT"))

    def load_memoize(self) -> None:
        self.memo_put(len(self.memo))

    def load_binget(self) -> None:  # BINGET, LONG_BINGET
        self.memo_get(self.fixed())

    def load_get(self) -> None:
        self.memo_get(self.parse_line(parse_memo_line, "GET"))

    load_long_binput = load_binput
    load_long_binget = load_binget

    # constants
    def load_none(self) -> None:  # NONE, NEWTRUE, NEWFALSE
        self.push(_CONSTANTS[self.op])

    def load_int(self) -> None:  # INT, LONG, FLOAT: a number in text, as C reads it
        parse, what = _NUMBER_LINES[self.op]
        self.push(self.parse_line(parse, what))

    def load_binint1(self) -> None:  # BININT1, BININT2: unsigned
        self.push(self.fixed())

    def load_binint(self) -> None:
        pos = self.need(4, "BININT")
        self.push(I32(self.data, pos)[0])

    def load_binfloat(self) -> None:
        pos = self.need(8, "BINFLOAT")
        self.push(F64(self.data, pos)[0])

    def load_long1(self) -> None:  # LONG1, LONG4: a signed little-endian integer
        n = self.count()
        if n < 0:
            self.fail("LONG4 with a negative length")
        # opaque past max_const_len: CPython's int-to-text conversions are quadratic
        raw = self.counted(n, self.limits.max_const_len)
        self.push(self.opaque("int") if raw is None else int.from_bytes(raw, "little", signed=True))

    load_newtrue = load_newfalse = load_none
    load_long = load_float = load_int
    load_binint2 = load_binint1
    load_long4 = load_long1

    # text and bytes
    def load_binunicode(self) -> None:  # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
        self.push(self.text(self.counted(self.count(), self.keep_len), "utf-8", "surrogatepass"))

    def load_unicode(self) -> None:
        self.push(self.text(self.line(), "raw-unicode-escape"))

    def load_binstring(self) -> None:  # SHORT_BINSTRING, BINSTRING
        self.push(self.py2str(self.counted(self.count(), self.keep_len)))

    def load_string(self) -> None:
        raw = self.line()  # quoted exactly: no whitespace around the quotes
        if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
            self.fail("STRING argument is not a quoted string")
        self.push(self.py2str(codecs.escape_decode(raw[1:-1])[0]))

    def load_binbytes(self) -> None:  # SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
        raw = self.counted(self.count(), self.keep_len)  # (a bytearray is data like bytes)
        self.push(self.opaque("bytes") if raw is None else raw)

    load_short_binunicode = load_binunicode8 = load_binunicode
    load_short_binstring = load_binstring
    load_short_binbytes = load_binbytes8 = load_bytearray8 = load_binbytes

    # tuples
    def load_tuple1(self) -> None:  # EMPTY_TUPLE, TUPLE1, TUPLE2, TUPLE3
        self.push(self.new_tuple(tuple(self.pop_args(_TUPLE_SIZES[self.op]))))

    def load_tuple(self) -> None:
        items = self.pop_mark()
        self.count_items(len(items))
        self.push(self.new_tuple(tuple(items)))

    load_empty_tuple = load_tuple2 = load_tuple3 = load_tuple1


_CONSTANTS = {NONE: None, NEWTRUE: True, NEWFALSE: False}
_NUMBER_LINES: dict[int, tuple[Callable[[bytes], Any], str]] = {
    INT: (parse_int_line, "INT"),
    LONG: (parse_long_line, "LONG"),
    FLOAT: (parse_float_line, "FLOAT"),
}
_TUPLE_SIZES = {EMPTY_TUPLE: 0, TUPLE1: 1, TUPLE2: 2, TUPLE3: 3}
BOUNDS_PERIOD = 0x3FF  # the fast loops check bounds when the opcode count & this is 0


def dispatch_table(cls: type[Reader]) -> dict[int, Callable[[Any], Any]]:
    """``cls``'s handler for each opcode it reads: its method ``load_<name>`` (the names of
    :mod:`_opcodes`, lower-cased). An opcode without one is refused by :meth:`Reader.step`."""
    table = {}
    for code, name in NAMES.items():
        handler = getattr(cls, f"load_{name.lower()}", None)
        if handler is not None:
            table[code] = handler
    return table


PREFETCH = 8192  # the C unpickler peeks this far ahead in a file object that has peek()


class Unframed:
    """One reading of a pickle by the C unpickler from a file object (see unframed_stream)."""

    __slots__ = ("end", "small_frames", "stream")

    def __init__(self, stream: bytes, end: int, small_frames: int) -> None:
        self.stream = stream  # the bytes it reads, FRAME opcodes left out
        self.end = end  # where it leaves the file after STOP
        self.small_frames = small_frames  # frames under PREFETCH bytes it met


def unframed_stream(data: Any, start: int, linear: int = 0) -> Unframed:
    """The bytes CPython's C unpickler reads for one pickle from a file object without ``peek``
    (io.BytesIO: torch's zip records and legacy files), FRAME opcodes left out, and where that
    file is left after STOP. Where it reads like ``pickle.loads`` this is the stream itself;
    with FRAMEs that do not hold whole opcodes it is not: a frame is read in one piece and
    what is left of it is dropped when an opcode needs more (readinto-based byte strings
    excepted), and whatever follows STOP in its frame is skipped. Ends early (truncated) where
    the unpickler would fail to read.

    From a file object with ``peek`` (an opened file), a frame under PREFETCH bytes that the
    file's buffer shows whole is read in place (as pickle.loads reads it), any other one as
    io.BytesIO reads it; which depends on where the buffer's edges fall. ``linear`` chooses:
    bit k set reads the k-th such small frame in place."""
    size = len(data)
    out = bytearray()
    fp = start  # the file position
    lo = hi = 0  # the unconsumed part of the buffer (a frame read in one piece)
    small = 0  # frames under PREFETCH bytes met so far

    def read(n: int, into: bool = False) -> bytes | None:
        nonlocal fp, lo, hi
        if hi - lo >= n:
            lo += n
            return bytes(data[lo - n : lo])
        head = b""
        if into:  # readinto: the buffer's rest, then the file
            head = bytes(data[lo:hi])
            n -= hi - lo
        lo = hi = 0
        if fp + n > size:
            return None
        fp += n
        return head + bytes(data[fp - n : fp])

    def readline() -> bytes | None:
        nonlocal fp, lo, hi
        nl = data.find(b"\n", lo, hi) if hi > lo else -1
        if nl >= 0:
            line = bytes(data[lo : nl + 1])
            lo = nl + 1
            return line
        lo = hi = 0
        nl = data.find(b"\n", fp)
        if nl < 0:
            return None
        line = bytes(data[fp : nl + 1])
        fp = nl + 1
        return line

    def done() -> Unframed:
        return Unframed(bytes(out), fp, small)

    while True:
        op = read(1)
        if op is None:
            return done()
        code = op[0]
        if code == FRAME:  # read the frame in one piece (from the buffer if it is there)
            raw = read(8)
            if raw is None:
                return done()
            n = int.from_bytes(raw, "little")
            if hi - lo < n:
                lo = hi = 0
                if fp + n > size:
                    return done()
                in_place = n < PREFETCH and linear >> small & 1
                small += n < PREFETCH
                if not in_place:
                    lo, hi = fp, fp + n
                    fp += n
            continue
        out += op
        if code == STOP:  # the rest of the buffer is dropped
            return done()
        if code in NO_ARGS:
            continue
        parts: list[bytes | None] = []
        if code in FIXED:
            parts.append(read(FIXED[code]))
        elif code in COUNTED:
            width, signed, into = COUNTED[code]
            raw = read(width)
            parts.append(raw)
            if raw is not None:
                n = int.from_bytes(raw, "little", signed=signed)
                if n < 0 or n > size:
                    out += raw
                    return done()
                parts.append(read(n, into))
        elif code in LINES:
            parts.extend(readline() for _ in range(LINES[code]))
        else:  # an opcode the unpickler refuses
            return done()
        for p in parts:
            if p is None:
                return done()
            out += p
