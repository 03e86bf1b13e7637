"""What both pickle walkers share: the scanner's symbolic unpickler (``_vm``) and convert's
tree builder (``_tree``).

Each keeps its own opcode loop, because they give the opcodes different meanings (usage
analysis versus an object graph); this module is the reading underneath: the walk's state,
bounds-checked text arguments, the stack and its MARKs, CPython's protocol < 3 ``fix_imports``
renames, and turning any failure into a :class:`PickleError` that names the stream and the
byte offset (fail closed).
"""

from __future__ import annotations

import math
import re
import struct

from ckptguard._errors import PickleError
from ckptguard._pickle._analysis import PickleLimits

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import Any, NoReturn

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
    """One walk over one pickle stream starting at ``start`` in ``data``.

    ``size`` is where the current read must stop: the end of the data, or the end of the
    FRAME being read (every opcode of a frame must lie wholly inside it; see :class:`Short`).
    """

    def __init__(self, data: Any, start: int, where: str, limits: PickleLimits) -> None:
        self.data = data
        self.pos = start
        self.data_end = len(data)
        self.size = self.data_end
        self.frame_end = -1  # end of the FRAME being read, -1 outside frames
        self.where = where
        self.limits = limits
        self.proto = 0
        self.max_proto = 0
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.op_pos = start  # offset of the opcode being walked (for messages)

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

    def text_name(self, encoding: str = "utf-8") -> str:
        """A GLOBAL (UTF-8) or INST (ASCII) operand: a non-empty newline-terminated name."""
        raw = self.line()
        if not raw:
            self.fail("a GLOBAL/INST name is empty: the real unpickler fails")
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            self.fail(f"a GLOBAL/INST name is not valid {encoding}: the real unpickler fails")

    def pop(self) -> Any:
        stack = self.stack
        if not stack:
            self.fail("stack underflow")
        return stack.pop()

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


# Opcode argument layouts, for :func:`unframed_stream`: fixed widths, counted data (width of
# the count, signed, read with readinto), text lines.
_FIXED = {
    0x80: 1, 0x4A: 4, 0x4B: 1, 0x4D: 2, 0x68: 1, 0x6A: 4, 0x71: 1, 0x72: 4, 0x47: 8,
    0x82: 1, 0x83: 2, 0x84: 4,
}  # fmt: skip
_COUNTED = {
    0x8A: (1, True, False), 0x8B: (4, True, False),  # LONG1, LONG4
    0x54: (4, False, False), 0x55: (1, False, False),  # BINSTRING, SHORT_BINSTRING
    0x58: (4, False, False), 0x8C: (1, False, False), 0x8D: (8, False, False),  # unicode
    0x42: (4, False, True), 0x43: (1, False, True),  # BINBYTES, SHORT_BINBYTES
    0x8E: (8, False, True), 0x96: (8, False, True),  # BINBYTES8, BYTEARRAY8
}  # fmt: skip
_LINES = {0x49: 1, 0x4C: 1, 0x46: 1, 0x53: 1, 0x56: 1, 0x67: 1, 0x70: 1, 0x50: 1, 0x63: 2, 0x69: 2}
_NO_ARGS = frozenset(
    b"().012NQRabdelostu}]\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98"
)


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
        if code == 0x95:  # FRAME: read the frame in one piece (from the buffer if it is there)
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
        if code == 0x2E:  # STOP: the rest of the buffer is dropped
            return done()
        if code in _NO_ARGS:
            continue
        parts: list[bytes | None] = []
        if code in _FIXED:
            parts.append(read(_FIXED[code]))
        elif code in _COUNTED:
            width, signed, into = _COUNTED[code]
            raw = read(width)
            parts.append(raw)
            if raw is not None:
                n = int.from_bytes(raw, "little", signed=signed)
                if n < 0 or n > size:
                    out += raw
                    return done()
                parts.append(read(n, into))
        elif code in _LINES:
            parts.extend(readline() for _ in range(_LINES[code]))
        else:  # an opcode the unpickler refuses
            return done()
        for p in parts:
            if p is None:
                return done()
            out += p
