"""convert's read-back check: a damaged temporary file (truncated, bytes appended, bytes
flipped in the zip structure, in data.pkl or in a copied storage record, a misplaced copy) is
refused, never renamed over DST, and removed.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ckptguard import CorruptCheckpointError, convert
from ckptguard._convert import _pipeline as C
from ckptguard._convert import _zipwrite as ZW
from ckptguard._formats._extracted import Member
from ckptguard._formats._zip import read_members
from tests._convert.sources import source


def members(fd: int) -> dict[str, Member]:
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
        return {m.name: m for m in read_members(mm)}


def flip(fd: int, at: int) -> None:
    os.pwrite(fd, bytes([os.pread(fd, 1, at)[0] ^ 0xFF]), at)


def biggest(fd: int) -> Member:
    return max((m for n, m in members(fd).items() if "/data/" in n), key=lambda m: m.size)


DAMAGE: dict[str, Callable[[int], None]] = {
    "truncated": lambda fd: os.ftruncate(fd, os.fstat(fd).st_size - 10),
    "cut_in_a_record": lambda fd: os.ftruncate(fd, biggest(fd).data_offset + 100),
    "bytes_appended": lambda fd: os.pwrite(fd, b"\0" * 7, os.fstat(fd).st_size),
    "local_header": lambda fd: flip(fd, biggest(fd).header_offset + 31),
    "central_directory_crc": lambda fd: flip(fd, _central_crc_offset(fd)),
    "data_pkl": lambda fd: flip(fd, members(fd)["archive/data.pkl"].data_offset + 20),
    "record_head": lambda fd: flip(fd, biggest(fd).data_offset),
    "record_tail": lambda fd: flip(fd, biggest(fd).end_offset - 1),
    "record_tail_zeroed": lambda fd: os.pwrite(fd, b"\0" * 64, biggest(fd).end_offset - 64),
}


def _central_crc_offset(fd: int) -> int:
    """Where the CRC of the biggest record's central directory entry is."""
    target = biggest(fd).name.encode()
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm:
        eocd = len(mm) - 22
        assert mm[eocd : eocd + 4] == b"PK\x05\x06"
        at = struct.unpack_from("<I", mm, eocd + 16)[0]
        while mm[at : at + 4] == b"PK\x01\x02":
            nlen, elen, clen = struct.unpack_from("<HHH", mm, at + 28)
            if mm[at + 46 : at + 46 + nlen] == target:
                return at + 16
            at += 46 + nlen + elen + clen
    raise AssertionError("no central directory entry found")


def no_leftovers(directory: Path) -> None:
    assert [p.name for p in directory.iterdir() if p.name.startswith(".ckptguard")] == []


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_output_is_refused_and_never_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    src, _ = source(tmp_path / "src.pt")
    real = C._write_archive

    def damaged(out: Any, *args: Any) -> Any:
        written = real(out, *args)
        out.flush()
        DAMAGE[kind](out.fileno())
        return written

    monkeypatch.setattr(C, "_write_archive", damaged)
    dst = tmp_path / "dst.pt"
    dst.write_bytes(b"old")
    with pytest.raises(CorruptCheckpointError, match="did not verify"):
        convert(src, dst, force=True)
    assert dst.read_bytes() == b"old"
    no_leftovers(tmp_path)


def test_a_misplaced_copy_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, _ = source(tmp_path / "src.pt")
    real = ZW._copy

    def off_by_one(src_fd: int, dst_fd: int, src_off: int, dst_off: int, n: int) -> None:
        real(src_fd, dst_fd, src_off + 1, dst_off, n - 1)

    monkeypatch.setattr(ZW, "_copy", off_by_one)
    with pytest.raises(CorruptCheckpointError, match="differ from the source"):
        convert(src, tmp_path / "dst.pt")
    assert not (tmp_path / "dst.pt").exists()
    no_leftovers(tmp_path)


def test_the_undamaged_output_passes(tmp_path: Path) -> None:
    src, obj = source(tmp_path / "src.pt")
    convert(src, tmp_path / "dst.pt")
    out = torch.load(tmp_path / "dst.pt")
    assert torch.equal(out["model"]["w3"], obj["model"]["w3"])
    assert np.array_equal(out["hist"].numpy(), obj["hist"])
