"""Fetch a zip archive's structure in few round trips: the end records, the central
directory, then every local header in two concurrent batches (fixed part and name, then the
extra field whose length only the local header tells, and the 6-byte .npy magic probe the zip
reader makes at the start of each stored member).

These are hints for :class:`~ckptguard._formats._source.SourceBuffer`: the zip reader then walks
and validates the same records itself, from the fetched ranges. Nothing here decides anything;
what does not parse is left to the reader (which fails closed). Of member data (tensor
records) only the 6-byte probe is ever part of a batch.
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ckptguard._formats._source import SourceBuffer

_EOCD = b"PK\x05\x06"
_LOC64 = b"PK\x06\x07"
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_PROBE = 6  # len(NPY_MAGIC)
_TAIL = 22 + 0xFFFF  # the end record and the longest comment: what every zip reader searches


def zip_header_ranges(buf: SourceBuffer) -> None:
    size = len(buf)
    buf.fetch(size - _TAIL, size)
    eocd = buf.rfind(_EOCD, max(0, size - _TAIL))
    if eocd < 0:
        return
    cd_size, cd_offset = struct.unpack("<II", buf[eocd + 12 : eocd + 20])
    if eocd >= 20 and buf[eocd - 20 : eocd - 16] == _LOC64:
        (eocd64,) = struct.unpack("<Q", buf[eocd - 12 : eocd - 4])
        if 0 <= eocd64 <= size - 56:
            cd_size, cd_offset = struct.unpack("<QQ", buf[eocd64 + 40 : eocd64 + 56])
    if cd_offset + cd_size > size:
        return
    cd = buf[cd_offset : cd_offset + cd_size]
    # (local header offset, name length, stored?, compressed size if a descriptor follows)
    members: list[tuple[int, int, bool, int | None]] = []
    pos = 0
    while pos + _CENTRAL.size <= len(cd) and len(members) < 1_000_000:
        fields = _CENTRAL.unpack_from(cd, pos)
        if fields[0] != b"PK\x01\x02":
            break
        flags, method, csize = fields[3], fields[4], fields[8]
        nlen, elen, clen, offset = fields[10], fields[11], fields[12], fields[16]
        if offset == 0xFFFFFFFF:
            offset = _zip64_offset(cd[pos + 46 + nlen : pos + 46 + nlen + elen], fields)
        if offset is not None and offset + 30 + nlen <= cd_offset:
            described = csize if flags & 0x8 and csize != 0xFFFFFFFF else None
            members.append((offset, nlen, method == 0, described))
        pos += 46 + nlen + elen + clen
    aligned = _torch_aligned(buf, members)
    first = []
    for off, nlen, stored, described in members:
        guess = _aligned_data(off, nlen) if aligned else None
        if guess is None or guess + _PROBE > cd_offset:
            first.append((off, off + 30 + nlen))
            continue
        # torch.save pads each local header so that the data starts 64-byte aligned: the
        # header, its padding and the probe in one range, and the data descriptor too
        first.append((off, guess + (_PROBE if stored else 0)))
        if described is not None and guess + described < cd_offset:
            first.append((guess + described, min(guess + described + 24, cd_offset)))
    buf.prefetch(first)
    second = []
    for off, nlen, stored, described in members:
        name_end = off + 30 + nlen
        elen = int.from_bytes(buf[off + 28 : off + 30], "little")
        data = name_end + elen
        if elen and data <= cd_offset:
            second.append((name_end, data))
        if stored and data + _PROBE <= cd_offset:
            # the zip reader checks whether each member starts like a .npy file (numpy.load
            # would open it as one): the first 6 bytes of a stored member, no more
            second.append((data, data + _PROBE))
        if described is not None and data + described < cd_offset:
            # flag bit 3: the data descriptor after the member's data (its signature, CRC and
            # sizes: at most 24 bytes, then the next local header or the central directory)
            second.append((data + described, min(data + described + 24, cd_offset)))
    buf.prefetch(second)


def _aligned_data(off: int, nlen: int) -> int | None:
    """Where torch's writer (inline_container.cc, getPadding) puts a member's data: after the
    header, the name and a padding extra field, aligned to 64 bytes (archives under 4 GiB)."""
    if off >= 0xFFFFFFFF:
        return None
    start = off + 30 + nlen + 4
    return start + (-start) % 64


def _torch_aligned(buf: SourceBuffer, members: list[tuple[int, int, bool, int | None]]) -> bool:
    """Whether the first member (its header is in the first bytes fetched) is laid out the way
    torch writes: then the others are fetched on that assumption, and any member it does not
    hold for is fetched exactly in the second batch (for such a member, up to 68 bytes of its
    data may have been read)."""
    if not members or members[0][0] != 0 or buf.missing(0, 30 + members[0][1]):
        return False
    off, nlen = members[0][0], members[0][1]
    elen = int.from_bytes(buf[off + 28 : off + 30], "little")
    return off + 30 + nlen + elen == _aligned_data(off, nlen)


def _zip64_offset(extra: bytes, fields: tuple[int, ...]) -> int | None:
    """The local header offset from a zip64 extra field (after the sizes it also holds)."""
    pos = 0
    while pos + 4 <= len(extra):
        hid, hlen = struct.unpack_from("<HH", extra, pos)
        if hid == 1:
            skip = 8 * ((fields[9] == 0xFFFFFFFF) + (fields[8] == 0xFFFFFFFF))
            body = extra[pos + 4 : pos + 4 + hlen]
            if skip + 8 <= len(body):
                return int.from_bytes(body[skip : skip + 8], "little")
            return None
        pos += 4 + hlen
    return None
