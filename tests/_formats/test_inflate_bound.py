"""A deflated pickle member is bounded before it is inflated, and inflating never produces more
than the declared size (a member that lies about its size is caught, in bounded memory)."""

from __future__ import annotations

import time
from pathlib import Path

import ckptguard
from ckptguard import FileVerdict
from ckptguard._formats._common import INFLATE_FLOOR, INFLATE_MAX, inflate_limit
from tests.pickleasm import EMPTY_DICT, program
from tests.zipcraft import DEFLATED, Layout, build_zip
from tests.zipcraft import torch_entries as T

BENIGN = program(EMPTY_DICT)


def _scan(tmp_path: Path, data: bytes) -> ckptguard.FileReport:
    path = tmp_path / "bomb.pt"
    path.write_bytes(data)
    return ckptguard.scan(path).files[0]


def test_the_limit_grows_with_the_compressed_size_up_to_a_cap() -> None:
    assert inflate_limit(10) == INFLATE_FLOOR
    assert INFLATE_FLOOR < inflate_limit(1 << 20) < INFLATE_MAX
    assert inflate_limit(1 << 40) == INFLATE_MAX


def test_a_pickle_declaring_4_gib_is_refused_before_inflating(tmp_path: Path) -> None:
    """The bomb of the issue: data.pkl declares (and would deflate to) 4 GiB. Deflating 4 GiB
    is too slow for a test, so the member's zip64 records declare 4 GiB for a small stream: a
    reader that trusted the declared size would allocate 4 GiB before finding out."""
    entries = T(BENIGN, method=DEFLATED, zip64=True, size=4 << 30)  # in both zip64 extras
    archive = build_zip(Layout(entries, zip64_end=True))
    start = time.perf_counter()
    rep = _scan(tmp_path, archive)
    assert time.perf_counter() - start < 5
    assert rep.verdict is FileVerdict.ERROR
    assert rep.findings[0].rule == "zip-inflate-limit", rep.findings


def test_a_high_ratio_pickle_member_is_refused(tmp_path: Path) -> None:
    """An honest declared size, but 64 MiB inflated from a few KiB: over the ratio bound."""
    big = program(EMPTY_DICT) + b"\0" * (64 << 20)
    rep = _scan(tmp_path, build_zip(Layout(T(big, method=DEFLATED))))
    assert rep.verdict is FileVerdict.ERROR
    assert rep.findings[0].rule == "zip-inflate-limit"


def test_a_member_that_inflates_past_its_declared_size_is_caught(tmp_path: Path) -> None:
    data = BENIGN + b"\0" * (8 << 20)
    archive = build_zip(Layout(T(data, method=DEFLATED, size=len(BENIGN))))
    rep = _scan(tmp_path, archive)
    assert rep.verdict is FileVerdict.ERROR
    assert "inflates to a different size" in rep.findings[0].message


def test_a_deflated_pickle_under_the_bound_is_read(tmp_path: Path) -> None:
    rep = _scan(tmp_path, build_zip(Layout(T(BENIGN, method=DEFLATED))))
    assert rep.verdict is FileVerdict.SAFE


def test_compressed_npz_numeric_data_is_checked_not_held(tmp_path: Path) -> None:
    """numpy.savez_compressed members: the header is inflated alone; numeric data is only
    verified (streamed), so an array far over the pickle bound is still read; a damaged one
    is an error."""
    np = __import__("numpy")
    path = tmp_path / "c.npz"
    np.savez_compressed(path, a=np.zeros(INFLATE_FLOOR // 4 + 1024, dtype=np.float64))
    assert ckptguard.scan(path).files[0].verdict is FileVerdict.SAFE
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    data[central + 16] ^= 0xFF  # the CRC, in the directory and (below) the local header
    data[data.find(b"PK\x03\x04") + 14] ^= 0xFF
    path.write_bytes(bytes(data))
    assert ckptguard.scan(path).files[0].verdict is FileVerdict.ERROR
