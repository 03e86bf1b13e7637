"""Python 2 era pickles, made here (tests only): protocol 0/2 streams whose byte strings are
STRING/BINSTRING/SHORT_BINSTRING, as Python 2 wrote ``str``, and whose numpy arrays carry
their data in such strings (numpy reads them with ``encoding='latin1'``)."""

from __future__ import annotations

import io
import pickle
import struct
from typing import Any, ClassVar


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined,misc]  # the pure-Python pickler
    """Writes ``bytes`` the way Python 2 wrote ``str``: STRING (protocol 0, quoted and escaped)
    or SHORT_BINSTRING/BINSTRING (protocols 1-2), and numpy modules under their Python 2
    name (``numpy.core.multiarray``)."""

    dispatch: ClassVar[dict[Any, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        if self.proto == 0:
            self.write(b"S" + repr(obj)[1:].encode("ascii") + b"\n")
        elif len(obj) < 256:
            self.write(b"U" + bytes([len(obj)]) + obj)
        else:
            self.write(b"T" + struct.pack("<I", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "")
        if module.startswith("numpy._core"):
            qual = name or obj.__qualname__
            module = "numpy.core" + module[len("numpy._core") :]
            self.write(b"c" + module.encode() + b"\n" + qual.encode() + b"\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[type] = save_global


def py2_dumps(obj: Any, protocol: int = 2) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol).dump(obj)
    return buf.getvalue()
