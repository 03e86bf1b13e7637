"""A strict zip reader that sees an archive the way PyTorch's reader does, or refuses it.

Python's ``zipfile`` and PyTorch's miniz-based reader tolerate different irregularities
(prepended data, duplicate names, local headers that disagree with the central directory,
overlapping members, ...). A file where the two could see different content is an attack
surface, so every such irregularity is a :class:`CorruptCheckpointError` here.
"""

from __future__ import annotations

import struct
import zlib

from ckptguard._scan_rules import ZIP_DIRECTORY_ATTRIBUTE

from ._common import Buffer, corrupt, inflate
from ._extracted import Member

_EOCD = b"PK\x05\x06"
_EOCD64 = b"PK\x06\x06"
_LOC64 = b"PK\x06\x07"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF
_CENTRAL_STRUCT = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LOCAL_STRUCT = struct.Struct("<4sHHHHHIIIHH")
_EOCD_STRUCT = struct.Struct("<4sHHHHIIH")
_EOCD64_STRUCT = struct.Struct("<4sQHHIIQQQQ")
_LOC64_STRUCT = struct.Struct("<4sIQI")
_FLAG_ENCRYPTED = 0x1
_FLAG_DESCRIPTOR = 0x8
_FLAG_UTF8 = 0x800
_DOS_DIRECTORY = 0x10  # external attributes: the MS-DOS directory bit (miniz honours it)
# Bits a reader may treat differently: encryption, patched data, strong encryption, masked headers
_FLAGS_REFUSED = 0x1 | 0x20 | 0x40 | 0x2000
_STORED, _DEFLATED = 0, 8
# zipfile refuses members that declare a higher "version needed to extract" (6.3); PyTorch
# ignores the field, so such a member is one the two would not both read.
_MAX_EXTRACT_VERSION = 63
_MAX_ENTRIES = 1_000_000


def _u16(buf: Buffer, off: int) -> int:
    return int.from_bytes(buf[off : off + 2], "little")


def _find_eocd(buf: Buffer) -> int:
    size = len(buf)
    lo = max(0, size - _EOCD_SIZE - _MAX_COMMENT)
    candidates = []
    pos = buf.rfind(_EOCD, lo)
    while pos >= 0:
        if pos + _EOCD_SIZE <= size and pos + _EOCD_SIZE + _u16(buf, pos + 20) == size:
            candidates.append(pos)
        pos = buf.rfind(_EOCD, lo, pos + 3) if pos > lo else -1
    if not candidates:
        raise corrupt(
            "no zip end-of-central-directory record at the end of the file: the archive is "
            "truncated or has data appended",
            hint="re-download the file; if it was copied, compare its size with the original",
        )
    if len(candidates) > 1:
        raise corrupt("two zip end-of-central-directory records: readers disagree on which is real")
    last = buf.rfind(_EOCD, lo)
    if last != candidates[0]:
        raise corrupt("a zip end-of-central-directory signature is hidden in the archive comment")
    return candidates[0]


def _zip64_extra(extra: bytes, need: list[str], values: dict[str, int], name: str) -> None:
    """Parse extra fields; fill the 64-bit values the zip64 record (id 1) must provide."""
    pos = 0
    seen: set[int] = set()
    while pos < len(extra):
        if pos + 4 > len(extra):
            raise corrupt(f"zip member {name!r} has a truncated extra field")
        hid, hlen = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + hlen]
        if len(body) != hlen:
            raise corrupt(f"zip member {name!r} has an extra field running past its header")
        if hid in seen:
            raise corrupt(f"zip member {name!r} repeats extra field 0x{hid:04x}")
        seen.add(hid)
        if hid == 0x0001:
            off = 0
            for field_name in need:
                width = 4 if field_name == "disk" else 8
                if off + width > len(body):
                    raise corrupt(f"zip member {name!r} has a short zip64 extra field")
                values[field_name] = int.from_bytes(body[off : off + width], "little")
                off += width
            need = []
        pos += 4 + hlen
    if need:
        raise corrupt(f"zip member {name!r} needs a zip64 extra field it does not have")


def _decode_name(raw: bytes, flags: int) -> str:
    if b"\x00" in raw:
        raise corrupt(f"zip member name {raw!r} contains a NUL byte (zipfile truncates it there)")
    try:
        name = raw.decode("utf-8") if flags & _FLAG_UTF8 else raw.decode("ascii")
    except UnicodeDecodeError:
        raise corrupt(
            f"zip member name {raw!r} is not valid UTF-8/ASCII: readers would decode it differently"
        ) from None
    if not name or "\\" in name or name[0] == "/" or (".." in name and ".." in name.split("/")):
        raise corrupt(f"zip member name {name!r} is not a plain relative path")
    return name


def read_members(buf: Buffer) -> list[Member]:
    """Validate the whole archive structure and return its members in central order."""
    size = len(buf)
    eocd = _find_eocd(buf)
    _, disk, cd_disk, n_this, n_total, cd_size, cd_offset, _ = _EOCD_STRUCT.unpack(
        buf[eocd : eocd + _EOCD_SIZE]
    )
    cd_end_expected = eocd
    loc = eocd - _LOC64_STRUCT.size
    if loc >= 0 and buf[loc : loc + 4] == _LOC64:
        _, loc_disk, eocd64_off, n_disks = _LOC64_STRUCT.unpack(buf[loc : loc + 20])
        if loc_disk != 0 or n_disks not in (0, 1):
            raise corrupt("multi-disk zip archives are not supported")
        if eocd64_off != loc - _EOCD64_STRUCT.size:
            raise corrupt(
                "the zip64 locator does not point just before itself: inconsistent archive"
            )
        rec = buf[eocd64_off : eocd64_off + _EOCD64_STRUCT.size]
        sig, rec_size, _, _, d64, cd64, n_this64, n_total64, cd_size64, cd_offset64 = (
            _EOCD64_STRUCT.unpack(rec)
        )
        if sig != _EOCD64 or rec_size != _EOCD64_STRUCT.size - 12:
            raise corrupt("the zip64 end-of-central-directory record is missing or malformed")
        for small, big, full in (
            (n_this, n_this64, 0xFFFF),
            (n_total, n_total64, 0xFFFF),
            (cd_size, cd_size64, 0xFFFFFFFF),
            (cd_offset, cd_offset64, 0xFFFFFFFF),
        ):
            if small not in (big, full):
                raise corrupt("the zip and zip64 end records disagree")
        disk, cd_disk = d64, cd64
        n_this, n_total, cd_size, cd_offset = n_this64, n_total64, cd_size64, cd_offset64
        cd_end_expected = eocd64_off
    elif 0xFFFF in (n_this, n_total) or 0xFFFFFFFF in (cd_size, cd_offset):
        raise corrupt("the zip end record needs a zip64 record that is missing")
    if disk != 0 or cd_disk != 0 or n_this != n_total:
        raise corrupt("multi-disk zip archives are not supported")
    if n_total > _MAX_ENTRIES:
        raise corrupt(f"the archive claims {n_total} members: too many to be a checkpoint")
    if cd_offset + cd_size != cd_end_expected:
        raise corrupt(
            "the zip central directory does not end where the end record says: data was "
            "prepended or inserted (zipfile and PyTorch would read different members)"
        )
    members = _read_central(buf, cd_offset, cd_size, n_total)
    _check_layout(members, cd_offset, size)
    return members


def _read_central(buf: Buffer, cd_offset: int, cd_size: int, n_total: int) -> list[Member]:
    cd = bytes(buf[cd_offset : cd_offset + cd_size])
    cd_len = len(cd)
    entry = _CENTRAL_STRUCT.size
    unpack = _CENTRAL_STRUCT.unpack_from
    members: list[Member] = []
    names: set[str] = set()
    pos = 0
    for _ in range(n_total):
        if pos + entry > cd_len:
            raise corrupt("the zip central directory is shorter than its entry count says")
        (
            sig, _made, need, flags, method, _t, _d, crc, csize, usize,
            nlen, elen, clen, disk, _iattr, eattr, offset,
        ) = unpack(cd, pos)  # fmt: skip
        if sig != _CENTRAL:
            raise corrupt("a zip central directory entry has a bad signature")
        start = pos + entry
        raw_name = cd[start : start + nlen]
        pos = start + nlen + elen + clen
        if pos > cd_len:
            raise corrupt("a zip central directory entry runs past the directory")
        name = _decode_name(raw_name, flags)
        if name in names:
            raise corrupt(
                f"zip member {name!r} appears twice: zipfile and PyTorch would load different "
                "copies"
            )
        names.add(name)
        if (eattr & _DOS_DIRECTORY and name[-1] != "/") or (name[-1] == "/" and usize):
            # miniz (torch) takes the DOS directory bit for a directory and then "extracts" it
            # without writing (torch reads uninitialised memory); zipfile reads the data
            raise corrupt(
                f"zip member {name!r} is a directory by its DOS attribute or its name but holds "
                "a file's data, or the other way round: zipfile and PyTorch read it differently",
                rule=ZIP_DIRECTORY_ATTRIBUTE,
            )
        if flags & _FLAGS_REFUSED:
            raise corrupt(f"zip member {name!r} is encrypted or uses unsupported flag bits")
        if method != _STORED and method != _DEFLATED:  # noqa: PLR1714 - hot loop
            raise corrupt(f"zip member {name!r} uses compression method {method}")
        if need & 0xFF > _MAX_EXTRACT_VERSION:
            raise corrupt(
                f"zip member {name!r} needs zip version {(need & 0xFF) / 10:.1f} to extract: "
                "Python's zipfile (and the scanners built on it) refuses such archives while "
                "PyTorch reads them"
            )
        if elen or 0xFFFFFFFF in (usize, csize, offset) or disk == 0xFFFF:
            need = [
                k
                for k, v, full in (
                    ("size", usize, 0xFFFFFFFF),
                    ("csize", csize, 0xFFFFFFFF),
                    ("offset", offset, 0xFFFFFFFF),
                    ("disk", disk, 0xFFFF),
                )
                if v == full
            ]
            values = {"size": usize, "csize": csize, "offset": offset, "disk": disk}
            _zip64_extra(cd[start + nlen : start + nlen + elen], need, values, name)
            usize, csize, offset, disk = (
                values["size"], values["csize"], values["offset"], values["disk"],
            )  # fmt: skip
        if disk != 0:
            raise corrupt(f"zip member {name!r} is on another disk")
        members.append(_check_local(buf, name, raw_name, flags, method, crc, csize, usize, offset))
    if pos != cd_len:
        raise corrupt("the zip central directory holds more bytes than its entries")
    return members


def _check_local(  # noqa: PLR0917 - a hot path: positional arguments are the cheap ones
    buf: Buffer,
    name: str,
    raw_name: bytes,
    flags: int,
    method: int,
    crc: int,
    csize: int,
    usize: int,
    off: int,
) -> Member:
    if method == _STORED and csize != usize:
        raise corrupt(f"stored zip member {name!r} has different compressed and real sizes")
    if off + _LOCAL_STRUCT.size > len(buf):
        raise corrupt(f"zip member {name!r}: local header outside the file")
    sig, _ver, lflags, lmethod, _t, _d, lcrc, lcsize, lusize, nlen, elen = _LOCAL_STRUCT.unpack(
        buf[off : off + 30]
    )  # a slice: buf may be read by ranges
    if sig != _LOCAL:
        raise corrupt(f"zip member {name!r}: no local header where the central directory points")
    lname = buf[off + 30 : off + 30 + nlen]
    if lname != raw_name:
        raise corrupt(
            f"zip member {name!r}: the local header names {bytes(lname)!r} (zipfile and PyTorch "
            "disagree on such archives)"
        )
    if lflags != flags or lmethod != method:
        raise corrupt(f"zip member {name!r}: local header flags/method differ from the directory")
    data_offset = off + 30 + nlen + elen
    end = data_offset + csize
    if not flags & _FLAG_DESCRIPTOR:
        lvals = {"size": lusize, "csize": lcsize}
        need = [k for k, v in (("size", lusize), ("csize", lcsize)) if v == 0xFFFFFFFF]
        if need:
            _zip64_extra(bytes(buf[off + 30 + nlen : data_offset]), need, lvals, name)
        if lcrc != crc or lvals["size"] != usize or lvals["csize"] != csize:
            raise corrupt(f"zip member {name!r}: local header sizes/CRC differ from the directory")
    else:
        end = _check_descriptor(buf, name, end, crc, csize, usize)
    if end > len(buf):
        raise corrupt(f"zip member {name!r} runs past the end of the file (truncated)")
    return Member(name, method, flags, crc, csize, usize, off, data_offset, end)


_DESCRIPTOR32 = struct.Struct("<III")
_DESCRIPTOR64 = struct.Struct("<IQQ")


def _check_descriptor(  # noqa: PLR0917 - hot path
    buf: Buffer, name: str, pos: int, crc: int, csize: int, usize: int
) -> int:
    """Validate the data descriptor after a member written with flag bit 3."""
    if buf[pos : pos + 4] == _DESCRIPTOR:
        pos += 4
    for layout in (_DESCRIPTOR32, _DESCRIPTOR64):
        if pos + layout.size <= len(buf) and layout.unpack(buf[pos : pos + layout.size]) == (
            crc,
            csize,
            usize,
        ):
            return pos + layout.size
    raise corrupt(f"zip member {name!r}: its data descriptor disagrees with the directory")


def _check_layout(members: list[Member], cd_offset: int, size: int) -> None:
    """Members must tile the bytes before the central directory exactly: no overlaps (one set
    of bytes read as two members), and no unaccounted bytes (data before the first member,
    which zipfile and PyTorch read differently, or a member hidden between listed ones, which
    streaming readers see and directory readers do not)."""
    prev_end, prev_name = 0, ""
    for m in sorted(members, key=lambda m: m.header_offset):
        if m.header_offset < prev_end:
            raise corrupt(
                f"zip members {prev_name!r} and {m.name!r} overlap: one set of bytes read as two "
                "members"
            )
        if m.header_offset > prev_end:
            if not prev_name:
                raise corrupt(
                    "data before the first zip member: zipfile and PyTorch read it differently"
                )
            raise corrupt(
                f"{m.header_offset - prev_end} bytes between zip members {prev_name!r} and "
                f"{m.name!r} belong to no listed member (a hidden member?)"
            )
        prev_end, prev_name = m.end_offset, m.name
    if prev_end > cd_offset:
        raise corrupt(f"zip member {prev_name!r} overlaps the central directory")
    if members and prev_end < cd_offset:
        raise corrupt(
            f"{cd_offset - prev_end} bytes after the last zip member {prev_name!r} belong to no "
            "listed member (a hidden member?)"
        )


def verify_member(buf: Buffer, m: Member, chunk: int = 1 << 20) -> None:
    """Check that a deflated member inflates to its declared size and CRC, in bounded memory.

    Stored members hold their bytes as they are (torch maps them); a deflated member that
    does not inflate is a file torch.load refuses, so it must not pass as safe.
    """
    d = zlib.decompressobj(-15)
    crc, total = 0, 0
    pos, end = m.data_offset, m.data_offset + m.compressed_size
    try:
        while pos < end or d.unconsumed_tail:
            if d.unconsumed_tail:
                raw = d.unconsumed_tail
            else:
                raw = bytes(buf[pos : min(end, pos + chunk)])
                pos += len(raw)
            out = d.decompress(raw, chunk)
            total += len(out)
            crc = zlib.crc32(out, crc)
            if total > m.size or d.eof:
                break
    except zlib.error as exc:
        raise corrupt(f"zip member {m.name!r} is not valid deflate data ({exc})") from None
    if total != m.size or not d.eof or d.unconsumed_tail or pos != end:
        raise corrupt(
            f"zip member {m.name!r} inflates to a different size than its header says: the "
            "file is damaged"
        )
    if crc != m.crc:
        raise corrupt(f"zip member {m.name!r} fails its CRC check: the file is damaged")


def member_head(buf: Buffer, m: Member, n: int) -> bytes:
    """The first ``n`` bytes of a member's content (fewer when shorter or broken)."""
    if m.method != _DEFLATED:
        return bytes(buf[m.data_offset : m.data_offset + min(n, m.size)])
    d = zlib.decompressobj(-15)
    pos, end, out = m.data_offset, m.data_offset + m.compressed_size, b""
    try:
        while len(out) < n and not d.eof:
            if d.unconsumed_tail:
                chunk = d.unconsumed_tail
            elif pos < end:
                chunk = bytes(buf[pos : min(end, pos + 64)])
                pos += len(chunk)
            else:
                break
            out += d.decompress(chunk, n - len(out))
    except zlib.error:
        return out  # verify_member reports the broken member
    return out[:n]


def read_member(buf: Buffer, m: Member, *, verify_crc: bool = True) -> bytes:
    """The decompressed bytes of a member, CRC-checked."""
    raw = bytes(buf[m.data_offset : m.data_offset + m.compressed_size])
    data = inflate(raw, m.size, m.name) if m.method == _DEFLATED else raw
    if verify_crc and zlib.crc32(data) != m.crc:
        raise corrupt(f"zip member {m.name!r} fails its CRC check: the file is damaged")
    return data
