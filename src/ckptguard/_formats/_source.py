"""Byte sources read by ranges: how the format readers read a file they cannot map (a remote
object).

A :class:`ByteSource` has a ``size`` and ``read(offset, length)``. Local files need no source:
the readers read their ``mmap`` (or ``bytes``) directly, so the local scan path is unchanged.
:class:`SourceBuffer` adapts a source to the few buffer operations the readers use (``len``,
indexing, slicing, ``find``/``rfind``): every byte range is fetched once, exactly, and only when
a reader asks for it (the zip end records and central directory, the local headers, the pickle
members; for legacy and plain pickles the pickle stream), so tensor records are never read.
Fetched ranges are kept in a sparse mapping of the object's size; the symbolic unpickler
reads a real mapping of it (``analyze_pickle`` hands a ``SourceBuffer`` to
:meth:`SourceBuffer.analyze_pickle`), after the stream's bytes were fetched.

Why the pickle walk on a partly fetched mapping is exact: the unpickler reads a stream strictly
forward (an opcode, then its argument) and reads no byte past the opcode it fails on. Bytes not
yet fetched read as zeros, and a zero byte is no pickle opcode: a walk that runs into them fails.
So a walk over the fetched prefix ``[0, P)`` that succeeds and ends by ``P`` read only fetched
bytes, and, the mapping having the object's true length, it is the walk of the whole object
(bounds proportional to the file included). Any failure fetches a longer prefix (doubling) and
walks again, up to the whole object; a walk whose FRAMEs are ambiguous (read otherwise by a file
object) is only trusted on the whole object.
"""

from __future__ import annotations

import bisect
import mmap

from ckptguard._pickle._analysis import PickleSource
from ckptguard._scan_rules import PICKLE_FRAME_AMBIGUITY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Protocol, overload

    from ckptguard._pickle._analysis import PickleAnalysis, PickleLimits

    class ByteSource(Protocol):
        """What a range-read object offers: its size, and exact reads of byte ranges."""

        @property
        def size(self) -> int: ...

        def read(self, offset: int, length: int) -> bytes:
            """Exactly ``length`` bytes from ``offset`` (raises when it cannot)."""
            ...

        def read_many(self, ranges: list[tuple[int, int]]) -> list[bytes]:
            """:meth:`read` for each ``(offset, length)``, possibly concurrently."""
            ...


# A single byte asked for (an opcode scan over bytes not fetched yet) fetches this much.
_INDEX_READAHEAD = 4096
# The first prefix fetched for a pickle walk, and how far ``find`` reads at a time.
_FIRST_PREFIX = 64 << 10
_FIND_CHUNK = 64 << 10
# ``prefetch`` joins two ranges apart by at most this many bytes that are already fetched.
_REREAD = 512


class SourceBuffer(PickleSource):
    """A read-only, byte-indexed view of a :class:`ByteSource` that fetches what is read."""

    def __init__(self, source: ByteSource) -> None:
        self.source = source
        self.size = source.size
        self.bytes_read = 0
        self._starts: list[int] = []  # disjoint fetched intervals, sorted
        self._ends: list[int] = []
        self._file: IO[bytes] | None = None
        self._mm = _sparse_map(self.size) if self.size else None
        if self.size and self._mm is None:
            import tempfile  # noqa: PLC0415 - start-up time: local scans never get here

            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
            self._file.truncate(self.size)  # sparse: only fetched ranges take space
            self._mm = mmap.mmap(self._file.fileno(), self.size)

    def close(self) -> None:
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> SourceBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ fetching
    def missing(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The gaps of ``[start, stop)`` not fetched yet."""
        gaps = []
        i = bisect.bisect_right(self._ends, start)
        pos = start
        while pos < stop and i < len(self._starts):
            s, e = self._starts[i], self._ends[i]
            if s >= stop:
                break
            if s > pos:
                gaps.append((pos, s))
            pos = max(pos, e)
            i += 1
        if pos < stop:
            gaps.append((pos, stop))
        return gaps

    def _store(self, start: int, data: bytes) -> None:
        stop = start + len(data)
        assert self._mm is not None
        self._mm[start:stop] = data
        self.bytes_read += len(data)
        i = bisect.bisect_left(self._ends, start)
        j = bisect.bisect_right(self._starts, stop)
        if i < j:
            start = min(start, self._starts[i])
            stop = max(stop, self._ends[j - 1])
        self._starts[i:j] = [start]
        self._ends[i:j] = [stop]

    def add(self, start: int, data: bytes) -> None:
        """Bytes the source already received (the first response's body): counted, kept."""
        data = data[: max(0, self.size - start)]
        if data and self.missing(start, start + len(data)):
            self._store(start, data)

    def fetch(self, start: int, stop: int) -> None:
        """Make ``[start, stop)`` (clamped to the object) available, reading only the gaps."""
        start, stop = max(0, start), min(self.size, stop)
        if start >= stop:
            return
        gaps = self.missing(start, stop)
        if len(gaps) == 1:
            s, e = gaps[0]
            self._store(s, self._exact(s, e - s, self.source.read(s, e - s)))
        elif gaps:
            self._read_gaps(gaps)

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch several ``[start, stop)`` ranges at once (concurrently where the source can)."""
        gaps: list[tuple[int, int]] = []
        for s, e in sorted(
            {g for a, b in ranges for g in self.missing(max(0, a), min(self.size, b))}
        ):
            if gaps and (
                s <= gaps[-1][1]  # touching or overlapping
                # or apart by a few bytes already fetched (a local header between a data
                # descriptor and the extra field): one request reads them again, no new byte
                or (s - gaps[-1][1] <= _REREAD and not self.missing(gaps[-1][1], s))
            ):
                gaps[-1] = (gaps[-1][0], max(e, gaps[-1][1]))
            else:
                gaps.append((s, e))
        if gaps:
            self._read_gaps(gaps)

    def _read_gaps(self, gaps: list[tuple[int, int]]) -> None:
        datas = self.source.read_many([(s, e - s) for s, e in gaps])
        for (s, e), data in zip(gaps, datas, strict=True):
            self._store(s, self._exact(s, e - s, data))

    @staticmethod
    def _exact(start: int, length: int, data: bytes) -> bytes:
        if len(data) != length:  # the source must say why; never hand on a short read
            raise OSError(f"short read: {len(data)} of {length} bytes at offset {start}")
        return data

    # ------------------------------------------------------------ buffer protocol
    def __len__(self) -> int:
        return self.size

    if TYPE_CHECKING:

        @overload
        def __getitem__(self, key: int) -> int: ...
        @overload
        def __getitem__(self, key: slice) -> bytes: ...

    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.size)
            if step != 1:
                raise ValueError("SourceBuffer slices have no step")
            if start >= stop:
                return b""
            self.fetch(start, stop)
            assert self._mm is not None
            return self._mm[start:stop]
        if key < 0:
            key += self.size
        if not 0 <= key < self.size:
            raise IndexError("SourceBuffer index out of range")
        if self.missing(key, key + 1):
            self.fetch(key, key + _INDEX_READAHEAD)
        assert self._mm is not None
        return self._mm[key]

    def find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        end = self.size if end is None else min(end, self.size)
        pos = max(0, start)
        while pos < end:
            stop = min(end, pos + _FIND_CHUNK)
            self.fetch(pos, stop)
            assert self._mm is not None
            found = self._mm.find(sub, start, stop)
            if found >= 0:
                return found
            if stop == end:
                break
            pos = max(pos, stop - len(sub) + 1)
        return -1

    def rfind(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        end = self.size if end is None else min(end, self.size)
        self.fetch(start, end)
        if self._mm is None:
            return -1
        return self._mm.rfind(sub, start, end)

    def startswith(self, prefix: bytes | tuple[bytes, ...]) -> bool:
        prefixes = (prefix,) if isinstance(prefix, bytes) else prefix
        head = self[: max(len(p) for p in prefixes)]
        return head.startswith(prefixes)

    # ---------------------------------------------------------------- pickle walks
    def analyze_pickle(
        self, *, start: int, where: str, limits: PickleLimits, fold_value: bool
    ) -> PickleAnalysis:
        """``analyze_pickle`` of the stream at ``start``, fetching only as much of the object
        as the walk reads (see the module docstring for why the result is exact)."""
        from ckptguard._errors import PickleError  # noqa: PLC0415
        from ckptguard._pickle import analyze_pickle  # noqa: PLC0415

        if self._mm is None:
            raise PickleError(f"{where}: start offset {start} is outside the data", offset=start)
        prefix = min(self.size, max(_FIRST_PREFIX, 2 * start))
        while True:
            self.fetch(start, prefix)
            whole = prefix >= self.size
            try:
                result = analyze_pickle(
                    self._mm, start=start, where=where, limits=limits, fold_value=fold_value
                )
            except PickleError:
                if whole:
                    raise
            else:
                trusted = result.end <= prefix and not result.other_ends
                if whole or (trusted and not _ambiguous(result)):
                    return result
            prefix = min(self.size, 2 * prefix)


# Linux's MAP_NORESERVE (the mmap module does not export it): an anonymous mapping the size of
# a large object, of which only the fetched pages ever take memory.
_MAP_NORESERVE = 0x4000


def _sparse_map(size: int) -> mmap.mmap | None:
    """An anonymous, zero-filled, private mapping of ``size`` bytes (pages are only allocated
    where written), or None where the platform refuses one (a sparse temporary file then)."""
    import sys  # noqa: PLC0415

    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    if not flags:
        return None
    if sys.platform.startswith("linux"):
        flags |= _MAP_NORESERVE
    try:
        return mmap.mmap(-1, size, flags=flags)
    except (OSError, OverflowError, ValueError):
        return None


def _ambiguous(result: PickleAnalysis) -> bool:
    return any(f.rule == PICKLE_FRAME_AMBIGUITY for f in result.findings)
