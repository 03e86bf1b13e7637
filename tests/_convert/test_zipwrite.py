"""The zip writer: the zip64 layout of what convert writes (checked without writing 4 GiB) and
the padding that places copied records at their source offset modulo 64 KiB."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ckptguard import convert
from ckptguard._convert import _zipwrite as ZW
from tests._convert.sources import source


def test_zip64_fields_read_back_with_zipfile_and_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zip64 local and central extra fields and the zip64 end records, as a > 4 GiB file has
    them, without writing 4 GiB: every size and offset from 1 KiB on is written as zip64."""
    monkeypatch.setattr(ZW, "_ZIP64_AT", 1024)
    src, obj = source(tmp_path / "src.pt")
    dst = tmp_path / "dst.pt"
    convert(src, dst)  # the read-back check (strict reader) passes too
    raw = dst.read_bytes()
    assert b"PK\x06\x06" in raw and b"PK\x06\x07" in raw  # zip64 end record and locator
    with zipfile.ZipFile(dst) as z:
        assert z.testzip() is None  # every member's CRC
        infos = {i.filename: i for i in z.infolist()}
        big = infos["archive/data/0"]
        assert struct.unpack_from("<H", big.extra)[0] == 1  # central zip64 extra field
        local = raw[big.header_offset : big.header_offset + 30]
        assert struct.unpack_from("<II", local, 18) == (0xFFFFFFFF, 0xFFFFFFFF)
        assert z.read("archive/byteorder") == b"little"
    for mmap_ in (False, True):
        out = torch.load(dst, mmap=mmap_)
        for k, t in obj["model"].items():
            assert torch.equal(out["model"][k], t)
        assert np.array_equal(out["hist"].numpy(), obj["hist"])
        assert out["step"] == 7 and out["args"] == {"lr": 0.1}


@pytest.mark.parametrize("zip64_at", [0xFFFFFFFF, 1])
def test_padding_fits_the_extra_field(monkeypatch: pytest.MonkeyPatch, zip64_at: int) -> None:
    """A record placed at its source offset modulo 64 KiB needs up to 0xFFFF bytes of padding,
    but a header's extra fields (the FB head, the zip64 field) hold at most 0xFFFF bytes: then
    the writer keeps the source offset modulo 4 KiB instead."""
    monkeypatch.setattr(ZW, "_ZIP64_AT", zip64_at)
    name, size = "archive/data/0", 4096
    base = ZW.ZipWriter.header_size(name, size, size)
    max_pad = ZW.ZipWriter.max_pad(size, size)
    for pos in range(64):  # where the header starts
        for pad in range((-(pos + base)) % 64, 1 << 16, 64):  # every padding that can be needed
            if 1024 <= pad < (1 << 16) - 256:
                continue
            like = 3 * (1 << 16) + pos + base + pad
            buf = io.BytesIO(b"x" * pos)
            buf.seek(pos)
            ZW.ZipWriter(buf)._local(name, 0, 0, size, size=size, like=like)
            data_at = len(buf.getvalue())
            assert data_at % 64 == 0 and data_at % 4096 == like % 4096
            assert struct.unpack_from("<H", buf.getvalue(), pos + 28)[0] <= 0xFFFF
            assert (data_at % (1 << 16) == like % (1 << 16)) == (pad <= max_pad)


def test_records_join_one_copy_only_when_the_gap_header_can_pad_it() -> None:
    name = "archive/data/1"
    hdr = ZW.ZipWriter.header_size(name, 100, 100)
    for pad, runs in ((0, 1), (100, 1), (ZW.ZipWriter.max_pad(100, 100), 1), (0xFFFF, 2), (-1, 2)):
        first = ("archive/data/0", 0, 0, 0, 100, 100)
        second = (name, 100 + hdr + pad, 0, 0, 100, 100)
        assert len(ZW.ZipWriter.spans([first, second])) == runs
