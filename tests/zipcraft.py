"""A hand-rolled zip writer for tests: every header field can be made to lie.

``build_zip`` lays out local headers, data (and data descriptors), the central directory and
the end records exactly as told, so that tests can produce the archive tricks readers disagree
on (duplicate names, local/central mismatches, overlaps, prefixes, comments, zip64, ...).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, replace

STORED, DEFLATED = 0, 8
FLAG_ENCRYPTED = 0x1
FLAG_DESCRIPTOR = 0x8


@dataclass
class Entry:
    name: str
    data: bytes
    method: int = STORED
    flags: int = 0
    zip64: bool = False  # sizes and offset in a zip64 extra field (0xFFFFFFFF in the headers)
    # lies (None: tell the truth)
    local_name: str | None = None
    local_method: int | None = None
    local_flags: int | None = None
    crc: int | None = None  # CRC written in both headers
    local_crc: int | None = None
    size: int | None = None  # uncompressed size written in both headers
    descriptor_crc: int | None = None
    offset: int | None = None  # central directory's local-header offset (default: real one)
    extra: bytes = b""
    central_version: int | None = None  # "version needed to extract" in the directory
    external_attr: int = 0  # the directory's external attributes (0x10: the DOS directory bit)


@dataclass
class Layout:
    entries: list[Entry]
    prefix: bytes = b""  # bytes before the first local header (offsets not adjusted)
    adjust_prefix: bool = False  # ... or adjusted, like a self-extracting archive
    comment: bytes = b""
    suffix: bytes = b""  # bytes after the end record
    central: list[int] | None = None  # which entries the central directory lists, in order
    count_delta: int = 0  # lie about the number of entries in the end record
    zip64_end: bool = False
    between: dict[int, bytes] = field(default_factory=dict)  # bytes after entry i's data


def _compress(e: Entry) -> bytes:
    if e.method == DEFLATED:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return c.compress(e.data) + c.flush()
    return e.data


def build_zip(layout: Layout) -> bytes:
    out = bytearray(layout.prefix)
    base = len(layout.prefix) if layout.adjust_prefix else 0
    records = []
    for i, e in enumerate(layout.entries):
        comp = _compress(e)
        crc = zlib.crc32(e.data) if e.crc is None else e.crc
        usize = len(e.data) if e.size is None else e.size
        csize = len(comp)
        offset = len(out) - len(layout.prefix) + base
        flags = e.flags
        local_flags = flags if e.local_flags is None else e.local_flags
        name = e.name.encode()
        lname = (e.local_name if e.local_name is not None else e.name).encode()
        descriptor = bool(flags & FLAG_DESCRIPTOR)
        l_crc = 0 if descriptor else (crc if e.local_crc is None else e.local_crc)
        l_c, l_u = (0, 0) if descriptor else (csize, usize)
        lextra = e.extra
        if e.zip64 and not descriptor:
            lextra = struct.pack("<HHQQ", 1, 16, usize, csize) + lextra
            l_c = l_u = 0xFFFFFFFF
        out += struct.pack(
            "<4sHHHHHIIIHH",
            b"PK\x03\x04",
            45 if e.zip64 else 20,
            local_flags,
            e.method if e.local_method is None else e.local_method,
            0,
            0x21,
            l_crc,
            l_c,
            l_u,
            len(lname),
            len(lextra),
        )
        out += lname + lextra + comp
        if descriptor:
            d_crc = crc if e.descriptor_crc is None else e.descriptor_crc
            out += struct.pack("<4sIII", b"PK\x07\x08", d_crc, csize, usize)
        out += layout.between.get(i, b"")
        records.append(
            (e, name, flags, crc, csize, usize, offset if e.offset is None else e.offset)
        )
    cd_start = len(out) - len(layout.prefix) + base
    cd = bytearray()
    order = layout.central if layout.central is not None else range(len(records))
    for i in order:
        e, name, flags, crc, csize, usize, offset = records[i]
        extra = e.extra
        c_c, c_u, c_off = csize, usize, offset
        if e.zip64:
            extra = struct.pack("<HHQQQ", 1, 24, usize, csize, offset) + extra
            c_c = c_u = c_off = 0xFFFFFFFF
        cd += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            45 if e.zip64 else 20,
            e.central_version if e.central_version is not None else 45 if e.zip64 else 20,
            flags,
            e.method,
            0,
            0x21,
            crc,
            c_c,
            c_u,
            len(name),
            len(extra),
            0,
            0,
            0,
            e.external_attr,
            c_off,
        )
        cd += name + extra
    out += cd
    n = len(order) + layout.count_delta
    if layout.zip64_end:
        eocd64_at = len(out) - len(layout.prefix) + base
        out += struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, len(cd), cd_start)
        out += struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd64_at, 1)
        out += struct.pack(
            "<4sHHHHIIH",
            b"PK\x05\x06",
            0,
            0,
            0xFFFF,
            0xFFFF,
            0xFFFFFFFF,
            0xFFFFFFFF,
            len(layout.comment),
        )
    else:
        out += struct.pack(
            "<4sHHHHIIH", b"PK\x05\x06", 0, 0, n, n, len(cd), cd_start, len(layout.comment)
        )
    out += layout.comment + layout.suffix
    return bytes(out)


def torch_entries(data_pkl: bytes, *, prefix: str = "archive", **kw: object) -> list[Entry]:
    """The members of a minimal torch.save archive (data.pkl first, as torch writes it)."""
    data = Entry(f"{prefix}/data.pkl", data_pkl)
    data = replace(data, **kw)  # type: ignore[arg-type]
    return [
        data,
        Entry(f"{prefix}/byteorder", b"little"),
        Entry(f"{prefix}/version", b"3\n"),
    ]
