"""Write the output model as a protocol-2 pickle that stock weights-only loading reads.

Only opcodes torch's weights-only unpickler implements are written (no FRAME, MEMOIZE,
BINBYTES, ADDITEMS, LONG4, STACK_GLOBAL), and only globals from its table. bytes are written
the way protocol 2 does (``_codecs.encode(text, 'latin1')``), sets as ``builtins.set(list)``.
Shared values are written once and fetched from the memo (BINPUT/BINGET), so tensors,
containers and long strings that were shared stay shared (and the output proportional to SRC).
"""

from __future__ import annotations

import io
import struct
from typing import Any

from ckptguard._convert._values import OCall, OGlobal, OOpaque, OSet, OStorage, weights_only_globals
from ckptguard._errors import UsageError

_BATCH = 1000
# Strings at least this long are memoized like containers: one the source shares (a key used
# in a million dicts, fetched from its memo with two bytes each time) is written once, so the
# output stays proportional to the source.
_SHARED_TEXT = 64
_MAX_DEPTH = 1000
_U32 = struct.Struct("<I").pack
_F64 = struct.Struct(">d").pack


class _Emitter:
    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.w = self.out.write
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []  # keeps memoized objects alive (ids stay unique)
        self.globals: dict[tuple[str, str], int] = {}
        self.allowed = weights_only_globals()

    def put(self, obj: Any) -> None:
        idx = len(self.memo) + len(self.globals)
        self.memo[id(obj)] = idx
        self.keep.append(obj)
        self._put(idx)

    def _put(self, idx: int) -> None:
        self.w(b"q" + bytes([idx]) if idx < 256 else b"r" + struct.pack("<I", idx))

    def get(self, idx: int) -> None:
        self.w(b"h" + bytes([idx]) if idx < 256 else b"j" + struct.pack("<I", idx))

    def glob(self, g: OGlobal) -> None:
        if g.qualified_name not in self.allowed:  # defensive: the converter never makes these
            raise UsageError(f"internal: {g.qualified_name} is not in the weights-only table")
        key = (g.module, g.name)
        idx = self.globals.get(key)
        if idx is not None:
            self.get(idx)
            return
        self.w(b"c" + g.module.encode() + b"\n" + g.name.encode() + b"\n")
        idx = len(self.memo) + len(self.globals)
        self.globals[key] = idx
        self._put(idx)

    def text(self, s: str) -> None:
        if len(s) >= _SHARED_TEXT:  # written once, then fetched from the memo
            idx = self.memo.get(id(s))
            if idx is not None:
                self.get(idx)
                return
            raw = s.encode("utf-8", "surrogatepass")
            self.w(b"X" + _U32(len(raw)) + raw)
            self.put(s)
            return
        raw = s.encode("utf-8", "surrogatepass")
        self.w(b"X" + _U32(len(raw)) + raw)

    def integer(self, v: int) -> None:
        if 0 <= v < 256:
            self.w(b"K" + bytes([v]))
        elif 0 <= v < 65536:
            self.w(b"M" + struct.pack("<H", v))
        elif -(2**31) <= v < 2**31:
            self.w(b"J" + struct.pack("<i", v))
        else:
            n = (v.bit_length() + 8) // 8
            raw = v.to_bytes(n, "little", signed=True)
            self.w(b"\x8a" + bytes([n]) + raw)

    def call(self, g: OGlobal, args: tuple[Any, ...], depth: int) -> None:
        self.glob(g)
        self.tuple_(args, depth)
        self.w(b"R")

    def tuple_(self, items: tuple[Any, ...], depth: int) -> None:
        if not items:
            self.w(b")")
            return
        if len(items) > 3:
            self.w(b"(")
        for v in items:
            self.save(v, depth + 1)
        self.w({1: b"\x85", 2: b"\x86", 3: b"\x87"}.get(len(items), b"t"))

    def setitems(self, pairs: list[tuple[Any, Any]], depth: int) -> None:
        # str keys and float/str values (metrics, histories) are written inline: the same
        # bytes as save() writes for them, without a call per item
        w = self.w
        save = self.save
        for i in range(0, len(pairs), _BATCH):
            w(b"(")
            for k, v in pairs[i : i + _BATCH]:
                if type(k) is str and len(k) < _SHARED_TEXT:
                    raw = k.encode("utf-8", "surrogatepass")
                    w(b"X" + _U32(len(raw)) + raw)
                else:
                    save(k, depth + 1)
                t = type(v)
                if t is float:
                    w(b"G" + _F64(v))
                elif t is str and len(v) < _SHARED_TEXT:
                    raw = v.encode("utf-8", "surrogatepass")
                    w(b"X" + _U32(len(raw)) + raw)
                else:
                    save(v, depth + 1)
            w(b"u")

    def appends(self, items: list[Any], depth: int) -> None:
        for i in range(0, len(items), _BATCH):
            self.w(b"(")
            for v in items[i : i + _BATCH]:
                self.save(v, depth + 1)
            self.w(b"e")

    def save(self, v: Any, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise UsageError(f"the structure is nested more than {_MAX_DEPTH} levels deep")
        t = type(v)
        if v is None:
            self.w(b"N")
        elif t is bool:
            self.w(b"\x88" if v else b"\x89")
        elif t is int:
            self.integer(v)
        elif t is float:
            self.w(b"G" + _F64(v))
        elif t is str:
            self.text(v)
        elif id(v) in self.memo:
            self.get(self.memo[id(v)])
        elif t is bytes:
            self.call(OGlobal("_codecs", "encode"), (v.decode("latin-1"), "latin1"), depth)
            self.put(v)
        elif t is complex:
            self.call(OGlobal("builtins", "complex"), (v.real, v.imag), depth)
            self.put(v)
        elif t is tuple:
            self.tuple_(v, depth)
            self.put(v)
        elif t is list:
            self.w(b"]")
            self.put(v)
            self.appends(v, depth)
        elif t is dict:
            self.w(b"}")
            self.put(v)
            self.setitems(list(v.items()), depth)
        elif t is OSet:
            self.call(OGlobal("builtins", "set"), (list(v.items),), depth)
            self.put(v)
        elif t is OGlobal:
            self.glob(v)
        elif t is OStorage:
            self.w(b"(")
            self.text("storage")
            self.glob(v.storage_class)
            self.text(v.key)
            self.text(v.location)
            self.integer(v.numel)
            self.w(b"tQ")
            self.put(v)
        elif t is OCall:
            self.glob(v.func)
            self.tuple_(v.args, depth)
            self.w(b"\x81" if v.op == "NEWOBJ" else b"R")
            self.put(v)
            if v.dictitems:
                self.setitems(v.dictitems, depth)
            if v.has_state:
                self.save(v.state, depth + 1)
                self.w(b"b")
        elif t is OOpaque:
            raise UsageError(f"internal: cannot write an unconverted value ({v.what})")
        else:
            raise UsageError(f"internal: cannot write a {t.__name__}")


def emit_pickle(root: Any) -> bytes:
    """The protocol-2 pickle of ``root`` (an output-model value)."""
    e = _Emitter()
    e.w(b"\x80\x02")
    e.save(root, 0)
    e.w(b".")
    return e.out.getvalue()
