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
# Storages at least this large are read straight into their memory; smaller ones are copied
# out of a window of the file read in one call (a checkpoint can hold 100,000 tiny tensors).
_DIRECT = 1 << 20
_WINDOW = 4 << 20


class Source:
    """Reads at absolute offsets; a short read is a :class:`CorruptCheckpointError`."""

    def __init__(
        self, name: str, size: int, data: bytes | None = None, fd: int = -1, base: int = 0
    ) -> None:
        self.name = name
        self.size = size
        self.data = data  # the whole file, when it was read into memory
        self.fd = fd  # else an open descriptor (owned by the caller)
        # With a descriptor: the bytes are ``[base, base + size)`` of that file (an item inside
        # a container, e.g. a DCP shard); nothing outside that range is ever read.
        self.base = base
        self._window = b""
        self._window_start = 0

    def _short(self, offset: int, n: int) -> CorruptCheckpointError:
        return CorruptCheckpointError(
            f"the file ends before byte {offset + n} (it was truncated while loading)",
            path=self.name,
            hint=f"ckptguard scan {self.name}",
        )

    def read(self, offset: int, n: int) -> bytes:
        if self.data is not None:
            out = self.data[offset : offset + n]
        elif offset < 0 or n < 0 or offset + n > self.size:
            raise self._short(offset, n)
        else:
            out = _pread_all(self.fd, self.base + offset, n)
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
        if offset < 0 or offset + n > self.size:
            raise self._short(offset, n)
        done, at = 0, self.base + offset
        while done < n:
            got = os.preadv(self.fd, [view[done:]], at + done)
            if got <= 0:
                raise self._short(offset, n)
            done += got

    def storage(self, torch: Any, offset: int, n: int) -> Any:
        """A new CPU storage holding the ``n`` bytes at ``offset``; like the storages torch.load
        makes from zip records, it has its own memory and cannot be resized."""
        if n == 0:
            return torch.empty(0, dtype=torch.uint8).untyped_storage()[0:0]
        if self.data is not None:
            buf, at = self.data, offset
            if offset + n > len(buf):
                raise self._short(offset, n)
        elif n >= _DIRECT:
            t = torch.empty(n, dtype=torch.uint8)
            self.read_into(offset, memoryview(t.numpy()))
            return t.untyped_storage()[0:n]
        else:
            buf, at = self._windowed(offset, n)
        copy = torch.UntypedStorage.from_buffer(
            buf, "native", offset=at, count=n, dtype=torch.uint8
        )
        return copy[0:n]

    def _windowed(self, offset: int, n: int) -> tuple[bytes, int]:
        start = self._window_start
        if not (start <= offset and offset + n <= start + len(self._window)):
            self._window = self.read(offset, max(n, min(_WINDOW, self.size - offset)))
            self._window_start = start = offset
        return self._window, offset - start

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
