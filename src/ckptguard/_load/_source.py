"""The bytes of one file being loaded: an in-memory copy, or an open descriptor read with pread.

Everything ``ckptguard.load`` reads after the scan comes through a :class:`Source` at offsets
the scan validated: nothing is read by name, by a second parser, or from a reopened path
(except the one mapping ``mmap=True`` asks for, made from the same open file).
"""

from __future__ import annotations

import os
import zlib
from typing import Any

from ckptguard._errors import CorruptCheckpointError

# A deflated record is inflated in pieces of this size.
_CHUNK = 1 << 20


class Source:
    """Reads at absolute offsets; a short read is a :class:`CorruptCheckpointError`."""

    def __init__(self, name: str, size: int, data: bytes | None = None, fd: int = -1) -> None:
        self.name = name
        self.size = size
        self.data = data  # the whole file, when it was read into memory
        self.fd = fd  # else an open descriptor (owned by the caller)

    def _short(self, offset: int, n: int) -> CorruptCheckpointError:
        return CorruptCheckpointError(
            f"the file ends before byte {offset + n} (it was truncated while loading)",
            path=self.name,
            hint=f"ckptguard scan {self.name}",
        )

    def read(self, offset: int, n: int) -> bytes:
        if self.data is not None:
            out = self.data[offset : offset + n]
        else:
            out = _pread_all(self.fd, offset, n)
        if len(out) != n:
            raise self._short(offset, n)
        return out

    def read_into(self, offset: int, view: memoryview) -> None:
        """Fill ``view`` (a writable byte view) with the bytes at ``offset``."""
        n = view.nbytes
        if self.data is not None:
            if offset + n > len(self.data):
                raise self._short(offset, n)
            view[:] = memoryview(self.data)[offset : offset + n]
            return
        done = 0
        while done < n:
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got <= 0:
                raise self._short(offset, n)
            done += got

    def inflate_into(self, offset: int, csize: int, view: memoryview, what: str) -> None:
        """Raw-deflate ``csize`` bytes at ``offset`` into exactly ``view`` (or fail closed)."""
        d = zlib.decompressobj(-15)
        n, done, pos, end = view.nbytes, 0, offset, offset + csize
        try:
            while True:
                if d.unconsumed_tail:
                    raw = d.unconsumed_tail
                elif pos < end:
                    raw = self.read(pos, min(_CHUNK, end - pos))
                    pos += len(raw)
                else:
                    break
                out = d.decompress(raw, min(_CHUNK, n - done + 1))
                if done + len(out) > n:
                    raise _bad(self.name, what)
                view[done : done + len(out)] = out
                done += len(out)
                if d.eof:
                    break
        except zlib.error:
            raise _bad(self.name, what) from None
        if done != n:
            raise _bad(self.name, what)


def _bad(name: str, what: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"{what} does not inflate to its declared size", path=name, hint=f"ckptguard scan {name}"
    )


def _pread_all(fd: int, offset: int, n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        n -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def writable_bytes(tensor: Any) -> memoryview:
    """A writable byte view of a contiguous CPU tensor's memory."""
    return memoryview(tensor.numpy()).cast("B")
