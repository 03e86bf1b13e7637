"""A streaming zip writer for torch archives: small records from memory, big ones copied.

Records are stored (method 0) with their data aligned to 64 bytes like ``torch.save`` does (an
``FB`` extra field pads the local header), so ``torch.load(mmap=True)`` works. Zip64 fields are
written when an offset or size needs them. Copies use ``os.copy_file_range`` (the kernel moves
the bytes; memory use does not depend on the record size) with a chunked read/write fallback.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO

from ckptguard._record import Record, set_field

ALIGN = 64
# Copies start at the same offset modulo 64 KiB in SRC and DST, and the first copy call stops
# at a 64 KiB boundary: the kernel then moves whole 64 KiB runs into large page-cache folios.
# Congruent only modulo the page size, the same copy measured ~45% slower (0.37 s vs 0.25 s
# per GiB, ext4, Linux 6.18).
_COPY_ALIGN = 1 << 16
_PAGE = 4096
_CHUNK = 8 << 20
_MAX32 = 0xFFFFFFFF
# Sizes and offsets from this value on are written as zip64 fields (tests lower it to check the
# zip64 layout without writing 4 GiB).
_ZIP64_AT = _MAX32


class Written(Record):
    __slots__ = ("crc", "csize", "method", "name", "offset", "size")
    name: str
    method: int
    crc: int
    csize: int
    size: int
    offset: int

    def __init__(  # noqa: PLR0917 - mirrors the fields
        self, name: str, method: int, crc: int, csize: int, size: int, offset: int
    ) -> None:
        set_field(self, "name", name)
        set_field(self, "method", method)
        set_field(self, "crc", crc)
        set_field(self, "csize", csize)
        set_field(self, "size", size)
        set_field(self, "offset", offset)


class ZipWriter:
    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.entries: list[Written] = []
        self.pos = f.tell()

    @staticmethod
    def header(name: str, method: int, crc: int, csize: int, size: int, *, pad: int) -> bytes:
        """A local header whose "FB" padding extra field holds ``pad`` bytes."""
        raw = name.encode("utf-8")
        big = size >= _ZIP64_AT or csize >= _ZIP64_AT
        extra = struct.pack("<HHQQ", 1, 16, size, csize) if big else b""
        extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB" padding, like torch
        hdr = struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            45 if big else 20,
            0x800,
            method,
            0,
            0x21,
            crc,
            _MAX32 if big else csize,
            _MAX32 if big else size,
            len(raw),
            len(extra),
        )
        return hdr + raw + extra

    @staticmethod
    def header_size(name: str, csize: int, size: int) -> int:
        """Bytes of a local header without padding."""
        big = size >= _ZIP64_AT or csize >= _ZIP64_AT
        return 30 + len(name.encode("utf-8")) + (20 if big else 0) + 4

    @staticmethod
    def max_pad(csize: int, size: int) -> int:
        """The most padding a local header can hold: its extra fields (the zip64 one, the "FB"
        one's 4-byte head and the padding) are at most 0xFFFF bytes together."""
        big = size >= _ZIP64_AT or csize >= _ZIP64_AT
        return 0xFFFF - 4 - (20 if big else 0)

    def _local(
        self, name: str, method: int, crc: int, csize: int, *, size: int, like: int | None = None
    ) -> None:
        base = self.header_size(name, csize, size)
        pad = (-(self.pos + base)) % ALIGN
        if like is not None and like % ALIGN == 0:
            # same offset modulo 64 KiB as in the source (see _COPY_ALIGN); where that padding
            # does not fit in the header (its top few bytes), same offset modulo the page size
            pad = (like - (self.pos + base)) % _COPY_ALIGN
            if pad > self.max_pad(csize, size):
                pad -= -(-(pad - self.max_pad(csize, size)) // _PAGE) * _PAGE
        hdr = self.header(name, method, crc, csize, size, pad=pad)
        self.f.write(hdr)
        self.entries.append(Written(name, method, crc, csize, size, self.pos))
        self.pos += len(hdr)

    def add_span(self, src_fd: int, items: list[tuple[str, int, int, int, int, int]]) -> None:
        """Copy records that lie in SRC one after the other, each gap between two of them at
        least as large as our local header, with ONE copy of the whole span; then overwrite each
        gap with the next record's header (its padding fills the gap exactly). ``items``:
        (name, src_offset, method, crc, csize, size), sorted by src_offset. One large copy runs
        at the kernel's full page-copy speed; many 64 MiB copies are measurably slower."""
        first = items[0]
        self._local(first[0], first[2], first[3], first[4], size=first[5], like=first[1])
        base_dst, base_src = self.pos, first[1]
        end_src = items[-1][1] + items[-1][4]
        self.f.flush()
        _copy(src_fd, self.f.fileno(), base_src, base_dst, end_src - base_src)
        prev_end = base_src + first[4]
        for name, off, method, crc, csize, size in items[1:]:
            gap = off - prev_end
            pad = gap - self.header_size(name, csize, size)
            hdr = self.header(name, method, crc, csize, size, pad=pad)
            hdr_dst = base_dst + (prev_end - base_src)
            os.pwrite(self.f.fileno(), hdr, hdr_dst)
            self.entries.append(Written(name, method, crc, csize, size, hdr_dst))
            prev_end = off + csize
        self.pos = base_dst + (end_src - base_src)
        self.f.seek(self.pos)

    @classmethod
    def spans(
        cls, items: list[tuple[str, int, int, int, int, int]]
    ) -> list[list[tuple[str, int, int, int, int, int]]]:
        """Group records (sorted by source offset) into runs :meth:`add_span` can copy."""
        runs: list[list[tuple[str, int, int, int, int, int]]] = []
        for it in sorted(items, key=lambda x: x[1]):
            if runs:
                last = runs[-1][-1]
                gap = it[1] - (last[1] + last[4])
                pad = gap - cls.header_size(it[0], it[4], it[5])
                if 0 <= pad <= cls.max_pad(it[4], it[5]):
                    runs[-1].append(it)
                    continue
            runs.append([it])
        return runs

    def add_bytes(self, name: str, data: bytes | memoryview) -> Written:
        crc = zlib.crc32(data)
        self._local(name, 0, crc, len(data), size=len(data))
        self.f.write(data)
        self.pos += len(data)
        return self.entries[-1]

    def add_copy(
        self,
        name: str,
        src_fd: int,
        offset: int,
        *,
        method: int,
        crc: int | None,
        csize: int,
        size: int,
    ) -> Written:
        """Copy ``csize`` raw bytes from ``src_fd`` at ``offset``. With ``crc`` None the CRC is
        computed while copying (by reading); otherwise the bytes move without being read."""
        if crc is None:
            if method != 0:
                raise ValueError("a CRC is needed for compressed records")
            crc = _crc_of(src_fd, offset, csize)
        self._local(name, method, crc, csize, size=size, like=offset)
        self.f.flush()
        _copy(src_fd, self.f.fileno(), offset, self.pos, csize)
        self.pos += csize
        self.f.seek(self.pos)
        return self.entries[-1]

    def close(self) -> None:
        cd_start = self.pos
        parts: list[bytes] = []
        for e in self.entries:
            raw = e.name.encode("utf-8")
            need64 = e.size >= _ZIP64_AT or e.csize >= _ZIP64_AT or e.offset >= _ZIP64_AT
            extra = struct.pack("<HHQQQ", 1, 24, e.size, e.csize, e.offset) if need64 else b""
            parts.append(
                struct.pack(
                    "<4sHHHHHHIIIHHHHHII",
                    b"PK\x01\x02",
                    45,
                    45 if need64 else 20,
                    0x800,
                    e.method,
                    0,
                    0x21,
                    e.crc,
                    _MAX32 if need64 else e.csize,
                    _MAX32 if need64 else e.size,
                    len(raw),
                    len(extra),
                    0,
                    0,
                    0,
                    0,
                    _MAX32 if need64 else e.offset,
                )
                + raw
                + extra
            )
        cd = b"".join(parts)
        self.f.write(cd)
        cd_end = cd_start + len(cd)
        n = len(self.entries)
        if n >= 0xFFFF or cd_start >= _ZIP64_AT or len(cd) >= _ZIP64_AT:
            self.f.write(
                struct.pack(
                    "<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), cd_start
                )
            )
            self.f.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, cd_end, 1))
            self.f.write(
                struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, _MAX32, _MAX32, 0)
            )
        else:
            self.f.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(cd), cd_start, 0))
        self.f.flush()


def _crc_of(fd: int, offset: int, n: int) -> int:
    crc = 0
    while n > 0:
        chunk = os.pread(fd, min(_CHUNK, n), offset)
        if not chunk:
            raise OSError("unexpected end of file while reading a storage")
        crc = zlib.crc32(chunk, crc)
        offset += len(chunk)
        n -= len(chunk)
    return crc


def _copy(src: int, dst: int, src_off: int, dst_off: int, n: int) -> None:
    copy_range = getattr(os, "copy_file_range", None)
    # up to the next 64 KiB boundary first, then whole aligned runs (see _COPY_ALIGN)
    step = (-src_off) % _COPY_ALIGN or (1 << 30)
    while n > 0 and copy_range is not None:
        try:
            done = copy_range(src, dst, min(n, step), src_off, dst_off)
        except OSError:
            break  # cross-device on old kernels, unsupported filesystems: fall back
        if done <= 0:
            break
        step = 1 << 30
        src_off += done
        dst_off += done
        n -= done
    while n > 0:
        chunk = os.pread(src, min(_CHUNK, n), src_off)
        if not chunk:
            raise OSError("unexpected end of file while copying a storage")
        os.pwrite(dst, chunk, dst_off)
        src_off += len(chunk)
        dst_off += len(chunk)
        n -= len(chunk)
