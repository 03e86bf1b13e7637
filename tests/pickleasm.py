"""The one pickle assembler of the tests: build streams opcode by opcode.

Each helper returns the bytes of one or more opcodes; concatenate them and end with ``STOP``
(or use :func:`program`). Every hand-built pickle in the tests is spelled with these names;
only tests of byte-exact operand reading (``tests/_pickle/test_exact_reading.py``) and of
malformed streams keep literal operand bytes. Nothing here loads a pickle.
"""

from __future__ import annotations

import struct

STOP = b"."
MARK = b"("
POP = b"0"
POP_MARK = b"1"
DUP = b"2"
TUPLE = b"t"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
TUPLE3 = b"\x87"
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
EMPTY_LIST = b"]"
EMPTY_SET = b"\x8f"
ADDITEMS = b"\x90"
FROZENSET = b"\x91"
LIST = b"l"
DICT = b"d"
APPEND = b"a"
APPENDS = b"e"
SETITEM = b"s"
SETITEMS = b"u"
REDUCE = b"R"
BUILD = b"b"
NEWOBJ = b"\x81"
NEWOBJ_EX = b"\x92"
OBJ = b"o"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
NONE = b"N"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"
BINPERSID = b"Q"
BINFLOAT = b"G"
INST = b"i"
NEXT_BUFFER = b"\x97"
READONLY_BUFFER = b"\x98"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def frame(n: int) -> bytes:
    """FRAME announcing ``n`` bytes (whether or not that many follow)."""
    return b"\x95" + struct.pack("<Q", n)


def framed(body: bytes, tail: bytes = b"") -> bytes:
    """FRAME holding ``body`` + ``tail`` exactly, then them."""
    return frame(len(body) + len(tail)) + body + tail


def glob(module: str, name: str) -> bytes:
    """GLOBAL (protocol 0 text form, allowed at every protocol)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def inst(module: str, name: str) -> bytes:
    """INST: pops everything since the last MARK as arguments and calls module.name."""
    return b"i" + module.encode() + b"\n" + name.encode() + b"\n"


def ustr(text: str) -> bytes:
    """SHORT_BINUNICODE or BINUNICODE."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def binunicode(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


def binunicode_head(n: int) -> bytes:
    """BINUNICODE's opcode and length only: the next ``n`` bytes (whatever opcodes they also
    spell) become the string."""
    return b"X" + struct.pack("<I", n)


def short_binunicode_head(n: int) -> bytes:
    """SHORT_BINUNICODE's opcode and length only (see :func:`binunicode_head`)."""
    assert n < 256
    return b"\x8c" + bytes([n])


def short_binunicode_raw(raw: bytes) -> bytes:
    """SHORT_BINUNICODE with the given (possibly invalid UTF-8) body bytes."""
    return b"\x8c" + bytes([len(raw)]) + raw


def binstring(raw: bytes) -> bytes:
    """Protocol 1 BINSTRING: a 4-byte length, then the bytes."""
    return b"T" + struct.pack("<I", len(raw)) + raw


def short_binstring(text: str) -> bytes:
    """Protocol 1 SHORT_BINSTRING (latin-1 str)."""
    raw = text.encode("latin-1")
    return b"U" + bytes([len(raw)]) + raw


def string0(text: str) -> bytes:
    """Protocol 0 STRING: a quoted repr on one line."""
    assert "'" not in text and "\n" not in text and "\\" not in text
    return b"S'" + text.encode("latin-1") + b"'\n"


def unicode0(text: str) -> bytes:
    """Protocol 0 UNICODE (raw-unicode-escape, one line)."""
    return b"V" + text.encode("raw-unicode-escape") + b"\n"


def binbytes(data: bytes) -> bytes:
    if len(data) < 256:
        return b"C" + bytes([len(data)]) + data
    return b"B" + struct.pack("<I", len(data)) + data


def binbytes_head(n: int) -> bytes:
    """BINBYTES's opcode and length only (see :func:`binunicode_head`)."""
    return b"B" + struct.pack("<I", n)


def binint1(n: int) -> bytes:
    return b"K" + bytes([n])


def binint2(n: int) -> bytes:
    return b"M" + struct.pack("<H", n)


def binint(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def long1(n: int) -> bytes:
    """LONG1 (LONG4 past 255 bytes): a signed little-endian integer."""
    raw = n.to_bytes((n.bit_length() + 8) // 8 or 1, "little", signed=True)
    if len(raw) > 255:
        return b"\x8b" + len(raw).to_bytes(4, "little") + raw
    return b"\x8a" + bytes([len(raw)]) + raw


def binfloat(x: float) -> bytes:
    return BINFLOAT + struct.pack(">d", x)


def binput(i: int) -> bytes:
    return b"q" + bytes([i])


def binget(i: int) -> bytes:
    return b"h" + bytes([i])


def long_binput(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def long_binget(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def put0(i: int) -> bytes:
    return b"p" + str(i).encode() + b"\n"


def get0(i: int) -> bytes:
    return b"g" + str(i).encode() + b"\n"


def ext1(code: int) -> bytes:
    return b"\x82" + bytes([code])


def ext2(code: int) -> bytes:
    return b"\x83" + struct.pack("<H", code)


def ext4(code: int) -> bytes:
    return b"\x84" + struct.pack("<i", code)


def sglobal(module: str, name: str) -> bytes:
    """STACK_GLOBAL with literal operands (protocol 4)."""
    return ustr(module) + ustr(name) + STACK_GLOBAL


def call(func: bytes, *args: bytes) -> bytes:
    """func(*args) with MARK ... TUPLE REDUCE."""
    return func + MARK + b"".join(args) + TUPLE + REDUCE


def system(command: str, *, protocol: int | None = None) -> bytes:
    """os.system(command) as a whole pickle (protocol 0 text opcodes unless ``protocol``):
    GLOBAL os.system, MARK, STRING command, TUPLE, REDUCE, STOP. Tests never load it outside
    a tmp dir, and ``command`` only ever touches a marker file there."""
    return program(call(glob("os", "system"), string0(command)), protocol=protocol)


def program(*parts: bytes, protocol: int | None = 2) -> bytes:
    """PROTO (unless None) + parts + STOP."""
    head = proto(protocol) if protocol is not None else b""
    return head + b"".join(parts) + STOP
