"""The zip64 layout of what convert writes, checked without writing 4 GiB."""

from __future__ import annotations

import argparse
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ckptguard import convert
from ckptguard._convert import _zipwrite as ZW


def source(path: Path) -> tuple[Path, dict[str, Any]]:
    """A checkpoint that needs converting, with storage records of a few KiB (copied in one
    span) and a numpy array (a new record)."""
    obj = {
        "model": {f"w{i}": torch.randn(3000 + 500 * i) for i in range(4)},
        "args": argparse.Namespace(lr=0.1),
        "step": np.int64(7),
        "hist": np.arange(2000, dtype=np.float32),
    }
    torch.save(obj, path)
    return path, obj


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
