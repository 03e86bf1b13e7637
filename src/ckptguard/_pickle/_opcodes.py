"""The pickle opcodes by name (the same names as CPython's ``pickle`` and ``pickletools``).

Outside the two hand-inlined fast loops (``_vm._Walker._run``, ``_tree._Builder._run``, which
compare with literals for speed and name each opcode in a comment), opcodes are referred to by
these names; :data:`NAMES` maps a byte to its name, from which :func:`_reader.dispatch_table`
finds each walker's ``load_<name>`` handler.
"""

from __future__ import annotations

INT = 0x49  # 'I'
BININT = 0x4A  # 'J'
BININT1 = 0x4B  # 'K'
BININT2 = 0x4D  # 'M'
LONG = 0x4C  # 'L'
LONG1 = 0x8A  # '\x8a'
LONG4 = 0x8B  # '\x8b'
STRING = 0x53  # 'S'
BINSTRING = 0x54  # 'T'
SHORT_BINSTRING = 0x55  # 'U'
BINBYTES = 0x42  # 'B'
SHORT_BINBYTES = 0x43  # 'C'
BINBYTES8 = 0x8E  # '\x8e'
BYTEARRAY8 = 0x96  # '\x96'
NEXT_BUFFER = 0x97  # '\x97'
READONLY_BUFFER = 0x98  # '\x98'
NONE = 0x4E  # 'N'
NEWTRUE = 0x88  # '\x88'
NEWFALSE = 0x89  # '\x89'
UNICODE = 0x56  # 'V'
SHORT_BINUNICODE = 0x8C  # '\x8c'
BINUNICODE = 0x58  # 'X'
BINUNICODE8 = 0x8D  # '\x8d'
FLOAT = 0x46  # 'F'
BINFLOAT = 0x47  # 'G'
EMPTY_LIST = 0x5D  # ']'
APPEND = 0x61  # 'a'
APPENDS = 0x65  # 'e'
LIST = 0x6C  # 'l'
EMPTY_TUPLE = 0x29  # ')'
TUPLE = 0x74  # 't'
TUPLE1 = 0x85  # '\x85'
TUPLE2 = 0x86  # '\x86'
TUPLE3 = 0x87  # '\x87'
EMPTY_DICT = 0x7D  # '}'
DICT = 0x64  # 'd'
SETITEM = 0x73  # 's'
SETITEMS = 0x75  # 'u'
EMPTY_SET = 0x8F  # '\x8f'
ADDITEMS = 0x90  # '\x90'
FROZENSET = 0x91  # '\x91'
POP = 0x30  # '0'
DUP = 0x32  # '2'
MARK = 0x28  # '('
POP_MARK = 0x31  # '1'
GET = 0x67  # 'g'
BINGET = 0x68  # 'h'
LONG_BINGET = 0x6A  # 'j'
PUT = 0x70  # 'p'
BINPUT = 0x71  # 'q'
LONG_BINPUT = 0x72  # 'r'
MEMOIZE = 0x94  # '\x94'
EXT1 = 0x82  # '\x82'
EXT2 = 0x83  # '\x83'
EXT4 = 0x84  # '\x84'
GLOBAL = 0x63  # 'c'
STACK_GLOBAL = 0x93  # '\x93'
REDUCE = 0x52  # 'R'
BUILD = 0x62  # 'b'
INST = 0x69  # 'i'
OBJ = 0x6F  # 'o'
NEWOBJ = 0x81  # '\x81'
NEWOBJ_EX = 0x92  # '\x92'
PROTO = 0x80  # '\x80'
STOP = 0x2E  # '.'
FRAME = 0x95  # '\x95'
PERSID = 0x50  # 'P'
BINPERSID = 0x51  # 'Q'


NAMES: dict[int, str] = {
    code: name for name, code in list(globals().items()) if name.isupper() and type(code) is int
}

# Operand layouts, declared once for every reader of operands (the walkers' shared reader,
# ``_reader.unframed_stream``); tests/_pickle/test_walkers.py checks them against pickletools
# and the C unpickler.
FIXED: dict[int, int] = {  # a fixed-width argument: its width in bytes
    PROTO: 1, FRAME: 8, BININT: 4, BININT1: 1, BININT2: 2, BINFLOAT: 8,
    BINGET: 1, LONG_BINGET: 4, BINPUT: 1, LONG_BINPUT: 4, EXT1: 1, EXT2: 2, EXT4: 4,
}  # fmt: skip
# A counted argument: (width of its count, whether the count is signed, whether the C unpickler
# reads the data with readinto). BINSTRING's count is unsigned to the C unpickler (pickletools
# says signed); LONG1's is unsigned (it was read signed here: a LONG1 of 128 bytes or more
# ended the io.BytesIO reading of a stream early).
COUNTED: dict[int, tuple[int, bool, bool]] = {
    LONG1: (1, False, False), LONG4: (4, True, False),
    SHORT_BINSTRING: (1, False, False), BINSTRING: (4, False, False),
    SHORT_BINUNICODE: (1, False, False), BINUNICODE: (4, False, False),
    BINUNICODE8: (8, False, False),
    SHORT_BINBYTES: (1, False, True), BINBYTES: (4, False, True),
    BINBYTES8: (8, False, True), BYTEARRAY8: (8, False, True),
}  # fmt: skip
LINES: dict[int, int] = {  # newline-terminated arguments: how many
    INT: 1, LONG: 1, FLOAT: 1, STRING: 1, UNICODE: 1, GET: 1, PUT: 1, PERSID: 1,
    GLOBAL: 2, INST: 2,
}  # fmt: skip
NO_ARGS = frozenset(NAMES) - FIXED.keys() - COUNTED.keys() - LINES.keys()
